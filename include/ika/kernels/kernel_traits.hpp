// SPDX-License-Identifier: MIT
#pragma once

#include <concepts>
#include <type_traits>

#include "ika/core/tensor_view.hpp"

namespace ika {

// How the engine's tile product combines two prepared rows.
enum class pairwise_op {
  dot,        // s = Σ_f a_f b_f: a register-blocked micro-GEMM (rbf, dot, random Fourier)
  l1_distance // s = Σ_f |a_f - b_f|: the same panels, a different inner operation (laplacian)
};

// A kernel policy is a small parameter struct (what the user writes) whose bind<T>(heads, D)
// returns the bound form the engines call. The bound form's hooks:
//   feature_dim()                      F, the length of a prepared row
//   prepare_query(h, x, features)      writes F features of query row x for head h, returns the
//   prepare_key(h, x, features)        row's own log-domain term (double), e.g. -|x|²/2σ² for rbf
//   log_kernel(s)                      epilogue: log κ from the pairwise result s (scalar or batch)
// and, when kernel_value_form is true, kernel_value(s) = κ̂(s) ≤ 1 + ε, used for the exp-free
// path: weight = κ̂(s) · exp(b_j − max b).
// Optional: when queries and keys share one feature map, `rows_per_block` and
// prepare_rows(h, rows, n, features, terms) prepare n <= rows_per_block rows per call (features
// with row stride F), so the map can run as a small GEMM.
namespace detail {

template <class Kernel, class T>
constexpr void check_kernel_policy() {
  static_assert(requires { Kernel::pairwise; },
                "ika kernel policy: missing 'static constexpr pairwise_op pairwise'");
  static_assert(requires { Kernel::head_dependent; },
                "ika kernel policy: missing 'static constexpr bool head_dependent' (features depend on the head?)");
  static_assert(requires { Kernel::kernel_value_form; },
                "ika kernel policy: missing 'static constexpr bool kernel_value_form' (exp-free weights?)");
  static_assert(requires(const Kernel& k) { k.template bind<T>(index_t{}, index_t{}); },
                "ika kernel policy: missing hook 'template <class T> bind(index_t heads, index_t dim) const'");
  using bound = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  static_assert(requires(const bound& b) { { b.feature_dim() } -> std::convertible_to<index_t>; },
                "ika kernel policy: bound kernel lacks hook 'feature_dim()'");
  static_assert(requires(const bound& b, index_t h, const T* x, T* f) { b.prepare_query(h, x, f); },
                "ika kernel policy: bound kernel lacks hook 'prepare_query(head, row, features)'");
  static_assert(requires(const bound& b, index_t h, const T* x, T* f) { b.prepare_key(h, x, f); },
                "ika kernel policy: bound kernel lacks hook 'prepare_key(head, row, features)'");
  static_assert(requires(const bound& b, T s) { b.log_kernel(s); },
                "ika kernel policy: bound kernel lacks hook 'log_kernel(score)'");
  static_assert(!Kernel::kernel_value_form || requires(const bound& b, T s) { b.kernel_value(s); },
                "ika kernel policy: kernel_value_form is true but the bound kernel lacks hook 'kernel_value(score)'");
}

} // namespace detail
} // namespace ika
