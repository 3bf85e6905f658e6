// SPDX-License-Identifier: MIT
// A kernel policy without 'pairwise' (how the tile product combines two prepared rows).
// expect-error: ika kernel policy: missing 'static constexpr pairwise_op pairwise'
#include "common.hpp"

// A user-written kernel: log κ(q, k) = q·k / D.
struct user_kernel {
#ifdef IKA_COMPILE_FAIL_FIXED
  static constexpr ika::pairwise_op pairwise = ika::pairwise_op::dot;
#endif
  static constexpr bool head_dependent = false;
  static constexpr bool kernel_value_form = false;

  template <class T>
  struct bound {
    ika::index_t dim;

    ika::index_t feature_dim() const { return dim; }
    double prepare_query(ika::index_t, const T* x, T* features) const {
      for (ika::index_t d = 0; d < dim; ++d) features[d] = x[d] / T(dim);
      return 0;
    }
    double prepare_key(ika::index_t, const T* x, T* features) const {
      for (ika::index_t d = 0; d < dim; ++d) features[d] = x[d];
      return 0;
    }
    template <class V>
    V log_kernel(const V& s) const { return s; }
  };

  template <class T>
  bound<T> bind(ika::index_t /*heads*/, ika::index_t dim) const { return {dim}; }
};

int main() { compile_fail::run(ika::log_kernel(user_kernel{})); }
