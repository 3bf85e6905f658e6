// SPDX-License-Identifier: MIT
// A kernel policy whose bind is not const (the engine binds a const policy).
// expect-error: ika kernel policy: missing hook 'template <class T> bind(index_t heads, index_t dim) const'
#include "common.hpp"

// A user-written kernel: log κ(q, k) = q·k / D.
struct user_kernel {
  static constexpr ika::pairwise_op pairwise = ika::pairwise_op::dot;
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
#ifdef IKA_COMPILE_FAIL_FIXED
  bound<T> bind(ika::index_t /*heads*/, ika::index_t dim) const { return {dim}; }
#else
  bound<T> bind(ika::index_t /*heads*/, ika::index_t dim) { return {dim}; }
#endif
};

int main() { compile_fail::run(ika::log_kernel(user_kernel{})); }
