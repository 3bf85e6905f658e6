// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <concepts>
#include <limits>
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
// Optional: kernels whose key features are the key row itself (rbf, dot product, laplacian)
// declare `static constexpr bool key_features_are_rows = true` and give the key row terms of a
// block, key_terms(h, rows, n, terms): the engines then reduce the terms of several keys together,
// and the decode engine scores the key rows in place instead of copying them.
namespace detail {

template <class Bound>
inline constexpr bool key_features_are_rows = requires { requires Bound::key_features_are_rows; };

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
  static_assert(!key_features_are_rows<bound> ||
                    requires(const bound& b, const T* const* x, double* t) { b.key_terms(index_t{}, x, index_t{}, t); },
                "ika kernel policy: key_features_are_rows is true but the bound kernel lacks hook "
                "'key_terms(head, rows, n, terms)'");
}


// Kernels with the optional block hook prepare several rows per call (their feature map is then
// a small GEMM); others are called row by row. Both engines prepare rows through these.
template <class Bound, class T>
inline constexpr bool has_row_block_hook = requires(const Bound& k, const T* const* x, T* f, double* t) {
  k.prepare_rows(index_t{}, x, index_t{}, f, t);
  Bound::rows_per_block;
};

template <class Bound, class T>
inline constexpr index_t row_block_size = [] {
  if constexpr (has_row_block_hook<Bound, T>) return index_t(Bound::rows_per_block);
  else return index_t(1);
}();

// Keys prepared per call in the key passes: a few SIMD groups when only the terms are computed.
template <class Bound, class T>
inline constexpr index_t key_block_size = [] {
  if constexpr (key_features_are_rows<Bound>) return index_t(16);
  else return row_block_size<Bound, T>;
}();

// Optional hooks key_term_square_scale() (kernel) and magnitude_square_scale() (norm): the key's
// row term is a·|k|² and its magnitude c·|k|², both reduced by the same block sums (NaN when the
// bound form is not of that shape, e.g. an Lp norm with p ≠ 2). When a + c == 0 the two cancel
// exactly (rbf with the L2 magnitude: softmax) and the key passes skip both reductions; their
// emitted term is then 0, which is what their sum is for every finite key.
template <class Bound, class BoundNorm>
bool key_terms_cancel(const Bound& kernel, const BoundNorm& norm) {
  if constexpr (requires { kernel.key_term_square_scale(); norm.magnitude_square_scale(); })
    return kernel.key_term_square_scale() + norm.magnitude_square_scale() == 0;
  else return false;
}

// The norm's optional block hook magnitudes(rows, n, out), same reason.
template <class BoundNorm, class T>
inline constexpr bool has_magnitude_block_hook = requires(const BoundNorm& norm, const T* const* x, double* out) {
  norm.magnitudes(x, index_t{}, out);
};

// Features (row stride F) and log-domain row terms of n <= row_block_size rows. Inlined: the
// split-key engine calls it once per key (3-5 % of a decode call when it was a call).
template <class T, class Bound>
IKA_ALWAYS_INLINE void prepare_rows(const Bound& kernel, index_t F, index_t h, const T* const* x, index_t n,
                                    T* features, double* terms, bool queries) {
  if constexpr (has_row_block_hook<Bound, T>) {
    kernel.prepare_rows(h, x, n, features, terms);
  } else {
    for (index_t r = 0; r < n; ++r)
      terms[r] = queries ? kernel.prepare_query(h, x[r], features + r * F) : kernel.prepare_key(h, x[r], features + r * F);
  }
}

// Requests a row of n values toward L1 (one prefetch per cache line).
template <class T>
IKA_ALWAYS_INLINE void prefetch_row(const T* row, index_t n) {
  constexpr index_t per_line = index_t(64 / sizeof(T));
  for (index_t d = 0; d < n; d += per_line) __builtin_prefetch(row + d);
}

// The feature passes request the next block's rows [r0, r1) while they map this one: a feature map
// is hundreds of cycles per row, enough to hide the rows' loads from L3 or DRAM, which the hardware
// prefetcher does not foresee across rows (bench/results/blocking/row_prefetch_panel_pack/).
template <class RowOf>
IKA_ALWAYS_INLINE void prefetch_rows(RowOf row_of, index_t r0, index_t r1, index_t row_length) {
  for (index_t r = r0; r < r1; ++r) prefetch_row(row_of(r), row_length);
}

// μ of rows x[0..n): the norm's block hook when it has one, else row by row
template <class BoundNorm, class T>
IKA_ALWAYS_INLINE void block_magnitudes(const BoundNorm& norm, const T* const* x, index_t n, double* out) {
  if constexpr (has_magnitude_block_hook<BoundNorm, T>) norm.magnitudes(x, n, out);
  else
    for (index_t r = 0; r < n; ++r) out[r] = double(norm.magnitude(x[r]));
}

// Key rows [j0, j1) prepared in blocks of key_block_size (scratch holds that many rows of F), for
// the engines' key passes: calls
// emit(j, features, term) with the key's features (row stride F, in scratch) and its log-domain term
// (kernel row term + magnitude), or emit(j, nullptr, -inf) for the padding rows j >= k_len. When
// the kernel's key features are the rows, scratch may be null: the features emitted are the rows.
// The next block's rows (row_length values each) are prefetched; row_length 0: the caller does.
template <class T, class Bound, class BoundNorm, class RowOf, class Emit>
void prepare_key_rows(const Bound& kernel, const BoundNorm& norm, index_t F, index_t h, index_t k_len, index_t j0,
                      index_t j1, RowOf row_of, index_t row_length, T* scratch, Emit emit) {
  constexpr index_t block = key_block_size<Bound, T>;
  const bool cancel = key_terms_cancel(kernel, norm);
  for (index_t jb = j0; jb < j1; jb += block) {
    const T* x[block];
    double terms[block], magnitudes[block];
    const index_t n = std::clamp<index_t>(k_len - jb, 0, std::min(block, j1 - jb));
    for (index_t r = 0; r < n; ++r) x[r] = row_of(jb + r);
    if (row_length > 0) prefetch_rows(row_of, jb + block, std::min({jb + 2 * block, j1, k_len}), row_length);
    if (n > 0) {
      if constexpr (key_features_are_rows<Bound>) {
        if (scratch != nullptr)
          for (index_t r = 0; r < n; ++r) std::copy(x[r], x[r] + F, scratch + r * F);
        if (!cancel) kernel.key_terms(h, x, n, terms);
      } else {
        prepare_rows(kernel, F, h, x, n, scratch, terms, /*queries=*/false);
      }
      if (!cancel) block_magnitudes(norm, x, n, magnitudes);
    }
    for (index_t j = jb; j < std::min(jb + block, j1); ++j) {
      const index_t r = j - jb;
      if (r < n) emit(j, scratch != nullptr ? scratch + r * F : x[r], cancel ? 0.0 : terms[r] + magnitudes[r]);
      else emit(j, static_cast<const T*>(nullptr), -std::numeric_limits<double>::infinity());
    }
  }
}

} // namespace detail
} // namespace ika
