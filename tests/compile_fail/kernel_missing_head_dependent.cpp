// SPDX-License-Identifier: MIT
// A kernel policy without 'head_dependent'.
// expect-error: ika kernel policy: missing 'static constexpr bool head_dependent'
#include "common.hpp"

// A user-written kernel: log κ(q, k) = q·k / D.
struct user_kernel {
  static constexpr ika::pairwise_op pairwise = ika::pairwise_op::dot;
#ifdef IKA_COMPILE_FAIL_FIXED
  static constexpr bool head_dependent = false;
#endif
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
