// SPDX-License-Identifier: MIT
// Control: correct user-written policies (a cosine-similarity kernel, and user_policies.hpp's
// kernel and mask with no defect) compile, in float and double, so the harness is able to pass
// and the hooks named by the other cases suffice.
// expect-success
#include "user_policies.hpp"

#include <cmath>

// log κ(q, k) = scale · cos∠(q, k): unit-normalised rows, then a dot product.
struct cosine_similarity {
  double scale = 10;

  static constexpr ika::pairwise_op pairwise = ika::pairwise_op::dot;
  static constexpr bool head_dependent = false;
  static constexpr bool kernel_value_form = false;

  template <class T>
  struct bound {
    ika::index_t dim;
    T scale;

    ika::index_t feature_dim() const { return dim; }
    double prepare_query(ika::index_t, const T* x, T* features) const { return normalise(x, features, scale); }
    double prepare_key(ika::index_t, const T* x, T* features) const { return normalise(x, features, T(1)); }
    double normalise(const T* x, T* features, T factor) const {
      T sum = 0;
      for (ika::index_t d = 0; d < dim; ++d) sum += x[d] * x[d];
      const T inverse = sum > 0 ? factor / std::sqrt(sum) : T(0);
      for (ika::index_t d = 0; d < dim; ++d) features[d] = x[d] * inverse;
      return 0; // no per-row term
    }
    template <class V>
    V log_kernel(const V& s) const { return s; }
  };

  template <class T>
  bound<T> bind(ika::index_t /*heads*/, ika::index_t dim) const { return {dim, T(scale)}; }
};

int main() {
  using compile_fail::B, compile_fail::H, compile_fail::L, compile_fail::D;
  compile_fail::run(ika::log_kernel(cosine_similarity{}) + ika::magnitude(ika::lp{2.0}) +
                    ika::mask(compile_fail::first_keys{3}));
  compile_fail::run(ika::log_kernel(compile_fail::user_kernel{}) + ika::mask(compile_fail::first_keys{2}));
  std::vector<double> q(B * H * L * D, 0.25), k = q, v = q, o = q, lse(B * H * L);
  ika::attention<ika::independent_heads>(
      ika::bhld(q.data(), B, H, L, D), ika::bhld(k.data(), B, H, L, D), ika::bhld(v.data(), B, H, L, D),
      ika::bhld(o.data(), B, H, L, D), ika::log_kernel(cosine_similarity{4.0}) + ika::mask(ika::causal{}),
      {.lse = ika::bhl(lse.data(), B, H, L)});
}
