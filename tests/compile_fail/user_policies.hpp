// SPDX-License-Identifier: MIT
// The user-written policies of the compile-fail cases: one kernel and one mask, each complete
// unless the case defines one defect macro before including this header:
//   kernel: IKA_USER_KERNEL_DEFECT_MISSING_PAIRWISE, _MISSING_HEAD_DEPENDENT,
//           _VALUE_FORM_WITHOUT_KERNEL_VALUE, _MISSING_FEATURE_DIM, _MISSING_PREPARE_QUERY,
//           _MISSING_PREPARE_KEY, _MISSING_LOG_KERNEL, _MISSING_BIND (spelled make),
//           _BIND_NOT_CONST, _KEY_ROWS_WITHOUT_KEY_TERMS;
//   mask:   IKA_USER_MASK_DEFECT_MISSING_TILE, _MISSING_APPLY, _MISSING_BIAS, _MISSING_BIND.
// One policy for all cases, so each case differs from a correct policy by its one defect only.
// -DIKA_COMPILE_FAIL_FIXED cancels the defect: the case repaired must compile.
#pragma once

#include "common.hpp"

#include <limits>

#ifdef IKA_COMPILE_FAIL_FIXED
#undef IKA_USER_KERNEL_DEFECT_MISSING_PAIRWISE
#undef IKA_USER_KERNEL_DEFECT_MISSING_HEAD_DEPENDENT
#undef IKA_USER_KERNEL_DEFECT_VALUE_FORM_WITHOUT_KERNEL_VALUE
#undef IKA_USER_KERNEL_DEFECT_MISSING_FEATURE_DIM
#undef IKA_USER_KERNEL_DEFECT_MISSING_PREPARE_QUERY
#undef IKA_USER_KERNEL_DEFECT_MISSING_PREPARE_KEY
#undef IKA_USER_KERNEL_DEFECT_MISSING_LOG_KERNEL
#undef IKA_USER_KERNEL_DEFECT_MISSING_BIND
#undef IKA_USER_KERNEL_DEFECT_BIND_NOT_CONST
#undef IKA_USER_KERNEL_DEFECT_KEY_ROWS_WITHOUT_KEY_TERMS
#undef IKA_USER_MASK_DEFECT_MISSING_TILE
#undef IKA_USER_MASK_DEFECT_MISSING_APPLY
#undef IKA_USER_MASK_DEFECT_MISSING_BIAS
#undef IKA_USER_MASK_DEFECT_MISSING_BIND
#endif

namespace compile_fail {

// A user-written kernel: log κ(q, k) = q·k / D.
struct user_kernel {
#ifndef IKA_USER_KERNEL_DEFECT_MISSING_PAIRWISE
  static constexpr ika::pairwise_op pairwise = ika::pairwise_op::dot;
#endif
#ifndef IKA_USER_KERNEL_DEFECT_MISSING_HEAD_DEPENDENT
  static constexpr bool head_dependent = false;
#endif
#ifdef IKA_USER_KERNEL_DEFECT_VALUE_FORM_WITHOUT_KERNEL_VALUE
  static constexpr bool kernel_value_form = true; // and no kernel_value(score) below
#else
  static constexpr bool kernel_value_form = false;
#endif

  template <class T>
  struct bound {
    ika::index_t dim;

#ifndef IKA_USER_KERNEL_DEFECT_MISSING_FEATURE_DIM
    ika::index_t feature_dim() const { return dim; }
#endif
#ifndef IKA_USER_KERNEL_DEFECT_MISSING_PREPARE_QUERY
    double prepare_query(ika::index_t, const T* x, T* features) const {
      for (ika::index_t d = 0; d < dim; ++d) features[d] = x[d] / T(dim);
      return 0;
    }
#endif
#ifndef IKA_USER_KERNEL_DEFECT_MISSING_PREPARE_KEY
    double prepare_key(ika::index_t, const T* x, T* features) const {
      for (ika::index_t d = 0; d < dim; ++d) features[d] = x[d];
      return 0;
    }
#endif
#ifdef IKA_USER_KERNEL_DEFECT_KEY_ROWS_WITHOUT_KEY_TERMS
    static constexpr bool key_features_are_rows = true; // and no key_terms(head, rows, n, terms)
#endif
#ifndef IKA_USER_KERNEL_DEFECT_MISSING_LOG_KERNEL
    template <class V>
    V log_kernel(const V& s) const { return s; }
#endif
  };

  template <class T>
#if defined(IKA_USER_KERNEL_DEFECT_MISSING_BIND)
  bound<T> make(ika::index_t /*heads*/, ika::index_t dim) const { return {dim}; }
#elif defined(IKA_USER_KERNEL_DEFECT_BIND_NOT_CONST)
  bound<T> bind(ika::index_t /*heads*/, ika::index_t dim) { return {dim}; }
#else
  bound<T> bind(ika::index_t /*heads*/, ika::index_t dim) const { return {dim}; }
#endif
};

// A user-written mask: every query sees the first n keys only.
struct first_keys {
  ika::index_t n;

  struct bound {
    ika::index_t n;

#ifndef IKA_USER_MASK_DEFECT_MISSING_TILE
    ika::tile_state tile(ika::index_t, ika::index_t, ika::index_t, ika::index_t, ika::index_t j0, ika::index_t j1) const {
      if (j0 >= n) return ika::tile_state::empty;
      return j1 <= n ? ika::tile_state::full : ika::tile_state::partial;
    }
#endif
#ifndef IKA_USER_MASK_DEFECT_MISSING_APPLY
    template <class T>
    void apply(ika::index_t, ika::index_t, ika::index_t, ika::index_t j0, ika::index_t count, T* logits) const {
      for (ika::index_t j = 0; j < count; ++j)
        if (j0 + j >= n) logits[j] = -std::numeric_limits<T>::infinity();
    }
#endif
#ifndef IKA_USER_MASK_DEFECT_MISSING_BIAS
    double bias(ika::index_t, ika::index_t, ika::index_t, ika::index_t j) const {
      return j < n ? 0.0 : -std::numeric_limits<double>::infinity();
    }
#endif
  };

#ifndef IKA_USER_MASK_DEFECT_MISSING_BIND
  bound bind(const ika::attention_shape&) const { return {n}; }
#endif
};

} // namespace compile_fail
