// SPDX-License-Identifier: MIT
#pragma once

// The fused CPU engine. Per call:
//   1. key pass (parallel over batch × head × key tile): every key row is mapped once to its
//      features, written into panels of NR keys laid out [feature][key] for the micro-kernel,
//      with its log-domain term b_j = (kernel row term) + μ(k_j); values are packed row-major
//      and zero-padded to a multiple of the SIMD width.
//   2. query pass (parallel over batch × head × query tile, a fixed partition): query features,
//      then for every key tile and every block of MR query rows
//        tile product  S = F_q · F_kᵀ   (register-blocked micro-kernel over the panels)
//        epilogue      log κ(S) + b_j + masks, online softmax (running max and sum)
//        accumulate    O += P · V        (a second micro-kernel)
//      and finally O / Σ, log-sum-exp. Extra memory is O(L) per head; nothing is Lq × Lk.
// Each output row is computed by one task in a fixed order, so results are bitwise identical
// for any number of threads.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ika/core/aligned_buffer.hpp"
#include "ika/core/attention_args.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/cpu/cache_size.hpp"
#include "ika/cpu/thread_team.hpp"
#include "ika/heads/heads.hpp"
#include "ika/kernels/kernel_traits.hpp"
#include "ika/masks/mask_traits.hpp"
#include "ika/simd/simd.hpp"

namespace ika::detail {

template <class T>
struct engine_blocking {
  static constexpr index_t W = index_t(simd::width<T>);
  static constexpr index_t NR = 2 * W;                                  // keys per panel
  static constexpr index_t MR = simd::vector_registers >= 32 ? 12 : 6; // query rows per micro-tile
  // query rows per tile: each tile streams its head's packed keys and values through L2 once, so
  // when they outgrow half of L2 a tile takes 4× as many rows, making that stream 4× rarer
  // (bench/results/pytorch/intel_paired/)
  static constexpr index_t query_tile = 4 * MR, wide_query_tile = 16 * MR;
  // fewest wide tiles per thread of the call's team; below it the narrow tiles balance better
  static constexpr index_t wide_tiles_per_thread = 4;
  static constexpr index_t key_tile = 512; // a multiple of NR for every T and ISA (bench/results/blocking/)
  static_assert(key_tile % NR == 0);

  // The query tile of a call whose heads each pack `head_bytes` of key features and values, with
  // `wide_tiles` tiles in all at the wide size, for a team of `team` threads.
  static index_t query_rows(std::size_t head_bytes, index_t wide_tiles, int team) {
    return head_bytes > l2_cache_bytes() / 2 && wide_tiles >= wide_tiles_per_thread * team ? wide_query_tile
                                                                                            : query_tile;
  }
};

template <class BoundMask>
inline constexpr bool is_sparse_mask = requires { BoundMask::sparse; };

template <class BoundMask>
inline constexpr bool mask_hides_only = requires {
  requires BoundMask::hides_only;
};

// ---- masks, all of them at once -------------------------------------------------------------

template <class... Bound>
struct mask_set {
  std::tuple<Bound...> masks;

  static constexpr bool has_sparse = (is_sparse_mask<Bound> || ...);
  // every term is 0 or −inf (mask_traits.hpp: hides_only)
  static constexpr bool hides_only = (mask_hides_only<Bound> && ...);

  tile_state tile(index_t b, index_t h, index_t i0, index_t i1, index_t j0, index_t j1) const {
    tile_state result = tile_state::full;
    bool empty = false;
    std::apply(
        [&](const auto&... m) {
          (([&] {
             const tile_state s = m.tile(b, h, i0, i1, j0, j1);
             if (s == tile_state::empty) empty = true;
             else if (s == tile_state::partial) result = tile_state::partial;
           }()),
           ...);
        },
        masks);
    return empty ? tile_state::empty : result;
  }
  template <class T>
  void apply(index_t b, index_t h, index_t i, index_t j0, index_t n, T* logits) const {
    std::apply([&](const auto&... m) { (m.apply(b, h, i, j0, n, logits), ...); }, masks);
  }
  // An upper bound (exclusive) on the keys that rows [i0, i1) may see: the smallest one given by
  // the masks with the optional hook key_end(b, h, i0, i1); `all` when none has it.
  index_t key_end(index_t b, index_t h, index_t i0, index_t i1, index_t all) const {
    index_t end = all;
    std::apply(
        [&](const auto&... m) {
          (([&] {
             if constexpr (requires { m.key_end(b, h, i0, i1); }) end = std::min(end, m.key_end(b, h, i0, i1));
           }()),
           ...);
        },
        masks);
    return end;
  }
  // Position of the graph mask, which drives the sparse path.
  static constexpr std::size_t first_sparse_index() {
    constexpr bool sparse[] = {is_sparse_mask<Bound>..., false};
    std::size_t i = 0;
    while (!sparse[i]) ++i;
    return i;
  }
};

// ---- micro-kernels --------------------------------------------------------------------------
// Out of line on purpose: each is compiled once per (T, operation) and called per panel block,
// instead of being copied into every kernel × norm × mask instantiation of the engine.

// out[c][r] = rows[r][c] for Rows rows (row stride `row_stride`) of `cols` columns. Column by
// column, so each output row is written in whole vectors.
template <index_t Rows, class T>
void transpose_rows(const T* IKA_RESTRICT rows, index_t row_stride, index_t cols, T* IKA_RESTRICT out) {
  for (index_t c = 0; c < cols; ++c)
#pragma GCC unroll 32
    for (index_t r = 0; r < Rows; ++r) out[c * Rows + r] = rows[r * row_stride + c];
}

// panel[f][k] = rows[k][f], f < features, for the NR rows of one panel: storing each key's
// features with stride NR instead took 2.2x as long (bench/results/blocking/row_prefetch_panel_pack/).
template <class T>
void pack_panel(const T* rows, index_t row_stride, index_t features, T* panel) {
  transpose_rows<engine_blocking<T>::NR>(rows, row_stride, features, panel);
}

// Where tile_product puts each MR × NR block of pairwise values S while it is still in registers.
// A policy with one hook, store(col, acc): acc[i][0..1] are rows i of columns [col, col + NR).

// S as it is, rows of stride `stride`.
template <class T>
struct raw_scores {
  T* s;
  index_t stride;
  template <class V, index_t MR>
  IKA_ALWAYS_INLINE void store(index_t col, const V (&acc)[MR][2]) const {
#pragma GCC unroll 16
    for (index_t i = 0; i < MR; ++i) {
      acc[i][0].store_aligned(s + i * stride + col);
      acc[i][1].store_aligned(s + i * stride + col + index_t(V::size));
    }
  }
};

// The softmax epilogue's first pass folded into the stores: logits log κ(S) + b_j, and each row's
// running maximum as a vector in row_max[MR][W] (reduced by the epilogue), so that the scores are
// not loaded and stored once more for it (1.00-1.04x on a softmax call,
// bench/results/blocking/epilogue_fold/). row_max must hold −inf before the first store.
template <class T, class BoundKernel>
struct logit_scores {
  T* s;
  index_t stride;
  const T* bias; // b_j of the tile's first key
  const BoundKernel& kernel;
  T* row_max;
  template <class V, index_t MR>
  IKA_ALWAYS_INLINE void store(index_t col, const V (&acc)[MR][2]) const {
    constexpr index_t W = V::size;
    const V b0 = V::load_aligned(bias + col), b1 = V::load_aligned(bias + col + W);
#pragma GCC unroll 16
    for (index_t i = 0; i < MR; ++i) {
      const V l0 = kernel.log_kernel(acc[i][0]) + b0, l1 = kernel.log_kernel(acc[i][1]) + b1;
      l0.store_aligned(s + i * stride + col);
      l1.store_aligned(s + i * stride + col + W);
      xsimd::max(V::load_aligned(row_max + i * W), xsimd::max(l0, l1)).store_aligned(row_max + i * W);
    }
  }
};

// pairwise(F_q rows, key panels) for MR rows and NR·panel_count keys, handed to `out` panel by
// panel. F_q rows have `features` entries, row stride `fq_stride`; a panel is [features][NR].
template <class T, pairwise_op Op, class Out>
[[gnu::noinline]] void tile_product(const T* IKA_RESTRICT fq, index_t fq_stride, const T* IKA_RESTRICT panels,
                                    index_t panel_count, index_t features, const Out& out) {
  using B = engine_blocking<T>;
  using V = simd::batch<T>;
  constexpr index_t MR = B::MR, NR = B::NR, W = B::W;
  for (index_t p = 0; p < panel_count; ++p) {
    const T* kp = panels + p * features * NR;
    V acc[MR][2];
#pragma GCC unroll 16
    for (index_t i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = V(T(0));
    for (index_t f = 0; f < features; ++f) {
      const V k0 = V::load_aligned(kp + f * NR), k1 = V::load_aligned(kp + f * NR + W);
#pragma GCC unroll 16
      for (index_t i = 0; i < MR; ++i) {
        const V a(fq[i * fq_stride + f]);
        if constexpr (Op == pairwise_op::dot) {
          acc[i][0] = xsimd::fma(a, k0, acc[i][0]);
          acc[i][1] = xsimd::fma(a, k1, acc[i][1]);
        } else {
          acc[i][0] += xsimd::abs(a - k0);
          acc[i][1] += xsimd::abs(a - k1);
        }
      }
    }
    out.store(p * NR, acc);
  }
}

// O[MR][Dv_pad] = alpha_i · O + P[MR][keys] · V[keys][Dv_pad]
template <class T>
[[gnu::noinline]] void accumulate_pv(T* IKA_RESTRICT o, index_t o_stride, const T* IKA_RESTRICT alpha,
                                     const T* IKA_RESTRICT p, index_t p_stride, const T* IKA_RESTRICT v,
                                     index_t v_stride, index_t keys) {
  using B = engine_blocking<T>;
  using V = simd::batch<T>;
  constexpr index_t MR = B::MR, W = B::W;
  index_t c = 0;
  for (; c + 2 * W <= v_stride; c += 2 * W) {
    V acc[MR][2];
#pragma GCC unroll 16
    for (index_t i = 0; i < MR; ++i) {
      const V a(alpha[i]);
      acc[i][0] = V::load_aligned(o + i * o_stride + c) * a;
      acc[i][1] = V::load_aligned(o + i * o_stride + c + W) * a;
    }
    for (index_t j = 0; j < keys; ++j) {
      const V v0 = V::load_aligned(v + j * v_stride + c), v1 = V::load_aligned(v + j * v_stride + c + W);
#pragma GCC unroll 16
      for (index_t i = 0; i < MR; ++i) {
        const V w(p[i * p_stride + j]);
        acc[i][0] = xsimd::fma(w, v0, acc[i][0]);
        acc[i][1] = xsimd::fma(w, v1, acc[i][1]);
      }
    }
#pragma GCC unroll 16
    for (index_t i = 0; i < MR; ++i) {
      acc[i][0].store_aligned(o + i * o_stride + c);
      acc[i][1].store_aligned(o + i * o_stride + c + W);
    }
  }
  if (c < v_stride) { // one vector left
    V acc[MR];
#pragma GCC unroll 16
    for (index_t i = 0; i < MR; ++i) acc[i] = V::load_aligned(o + i * o_stride + c) * V(alpha[i]);
    for (index_t j = 0; j < keys; ++j) {
      const V v0 = V::load_aligned(v + j * v_stride + c);
#pragma GCC unroll 16
      for (index_t i = 0; i < MR; ++i) acc[i] = xsimd::fma(V(p[i * p_stride + j]), v0, acc[i]);
    }
#pragma GCC unroll 16
    for (index_t i = 0; i < MR; ++i) acc[i].store_aligned(o + i * o_stride + c);
  }
}

inline index_t round_up(index_t n, index_t m) { return (n + m - 1) / m * m; }

// s[0:n] = exp(s − shift) in place, returning the sum: the online softmax's weights of one row
// (s aligned, n a multiple of the SIMD width). Shared by the fused and split-key engines.
template <class T>
IKA_ALWAYS_INLINE T exp_shifted_in_place(T* s, index_t n, T shift) {
  using V = simd::batch<T>;
  const V vshift(shift);
  V vsum(T(0));
  for (index_t j = 0; j < n; j += index_t(simd::width<T>)) {
    const V w = simd::exp_nonpositive(V::load_aligned(s + j) - vshift);
    w.store_aligned(s + j);
    vsum += w;
  }
  return simd::reduce_add(vsum);
}

// ---- the engine -----------------------------------------------------------------------------

template <class T, class Heads, class Kernel, class Norm, class... Masks>
class fused_engine {
  using blocking = engine_blocking<T>;
  static constexpr index_t W = blocking::W, NR = blocking::NR, MR = blocking::MR;
  static constexpr index_t KT = blocking::key_tile;
  using bound_kernel = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  using bound_norm = decltype(std::declval<const Norm&>().template bind<T>(index_t{}));
  using masks_type = mask_set<decltype(std::declval<const Masks&>().bind(std::declval<const attention_shape&>()))...>;
  static constexpr T minus_inf = -std::numeric_limits<T>::infinity();
  static constexpr index_t row_block = row_block_size<bound_kernel, T>;
  // exp-free weights only where the visible b_j reach within this of the tile's max: the largest
  // visible factor exp(b_j − max_tile b) ≥ e^-40 (float), and the factors that underflow belong to
  // keys whose weight relative to that one is below e^-47 / ε
  static constexpr T exp_free_range = std::is_same_v<T, float> ? T(40) : T(600);

  void prepare_rows(index_t h, const T* const* x, index_t n, T* features, double* terms, bool queries) const {
    detail::prepare_rows(kernel_, F_, h, x, n, features, terms, queries);
  }

public:
  fused_engine(const attention_shape& shape, const logit_expression<Kernel, Norm, Masks...>& logit)
      : s_(shape), kernel_(logit.kernel.template bind<T>(shape.q_heads, shape.qk_dim)),
        norm_(logit.norm.template bind<T>(shape.qk_dim)),
        masks_{std::apply([&](const auto&... m) { return std::make_tuple(m.bind(shape)...); }, logit.masks)} {
    F_ = kernel_.feature_dim();
    feature_heads_ = Kernel::head_dependent ? s_.q_heads : s_.kv_heads;
    k_pad_ = round_up(s_.k_len, NR);
    key_tiles_ = (s_.k_len + KT - 1) / KT;
    dv_pad_ = round_up(s_.v_dim, W);
  }

  void run(const tensor_view<const T>& q, const tensor_view<const T>& k, const tensor_view<const T>& v,
           const tensor_view<T>& out, const row_stat_view<T>& lse, int threads) {
    if (s_.batch == 0 || s_.q_len == 0) return;
    const std::size_t key_rows = std::size_t(s_.batch * feature_heads_ * k_pad_);
    const auto parts = scratch_arena::parts<fused_engine, T, 5>(
        {key_rows * std::size_t(F_), key_rows, Kernel::kernel_value_form ? key_rows : 0,
         std::size_t(s_.batch * feature_heads_ * std::max<index_t>(key_tiles_, 1)),
         std::size_t(s_.batch * s_.kv_heads * k_pad_ * dv_pad_)});
    key_features_ = parts[0];
    key_bias_ = parts[1];
    key_weight_ = parts[2];
    tile_bias_max_ = parts[3];
    values_ = parts[4];
    const double work = attention_work<bound_kernel>(s_, F_, s_.batch * feature_heads_ * s_.k_len);
    const auto query_tasks = [&](index_t tile) { return s_.batch * s_.q_heads * ((s_.q_len + tile - 1) / tile); };
    const int team = thread_team(threads, work, query_tasks(blocking::query_tile));
    query_tile_ = blocking::query_rows(std::size_t(k_pad_ * (F_ + dv_pad_)) * sizeof(T),
                                       query_tasks(blocking::wide_query_tile), team);
    // one team for both phases: the key pass ends in the worksharing loop's barrier
    run_in_team(team, [&] {
      prepare_keys(k, v);
      attend(q, out, lse);
    });
  }

private:
  // -------- phase 1: key features, key terms, packed values --------
  // Called through run_in_team; the loops are orphaned worksharing constructs.
  void prepare_keys(const tensor_view<const T>& k, const tensor_view<const T>& v) {
    const index_t tiles = std::max<index_t>(key_tiles_, 1);
    const index_t feature_tasks = s_.batch * feature_heads_ * tiles;
    const index_t value_tasks = s_.batch * s_.kv_heads * tiles;
    {
      // features of the kernels that map keys, then each panel's NR keys row by row before packing
      // this thread's buffers, from its scratch arena
      const auto buffers = scratch_arena::parts<key_rows, T, 2>(
          {key_features_are_rows<bound_kernel> ? 0 : std::size_t(key_block_size<bound_kernel, T> * F_), std::size_t(NR * F_)});
      T* const rows = key_features_are_rows<bound_kernel> ? nullptr : buffers[0];
      T* const staged = buffers[1];
#pragma omp for schedule(dynamic, 1) nowait
      for (index_t task = 0; task < feature_tasks; ++task) {
        const index_t t = task % tiles, bh = task / tiles;
        const index_t b = bh / feature_heads_, hf = bh % feature_heads_;
        const index_t hk = Kernel::head_dependent ? Heads::kv_head(hf, s_.q_heads, s_.kv_heads) : hf;
        T* panels = key_features_ + bh * k_pad_ * F_;
        T* bias = key_bias_ + bh * k_pad_;
        const index_t j0 = t * KT, j1 = std::min(j0 + KT, k_pad_); // whole panels: KT and k_pad_ are multiples of NR
        T tile_max = minus_inf;
        prepare_key_rows(kernel_, norm_, F_, hf, s_.k_len, j0, j1, [&](index_t j) { return k.row(b, hk, j); }, k.cols,
                         rows,
                         [&](index_t j, const T* features, double term) {
                           // padding keys: zero features, weight exp(−inf) = 0
                           T* row = staged + (j % NR) * F_;
                           if (features != nullptr) std::copy(features, features + F_, row);
                           else std::fill(row, row + F_, T(0));
                           if (j % NR == NR - 1) pack_panel(staged, F_, F_, panels + (j / NR) * F_ * NR);
                           bias[j] = T(term);
                           tile_max = std::max(tile_max, bias[j]);
                         });
        tile_bias_max_[(bh * tiles + t)] = tile_max;
        if constexpr (Kernel::kernel_value_form)
          for (index_t j = j0; j < j1; ++j)
            key_weight_[(bh * k_pad_ + j)] = j < s_.k_len ? std::exp(bias[j] - tile_max) : T(0);
      }
#pragma omp for schedule(dynamic, 1)
      for (index_t task = 0; task < value_tasks; ++task) {
        const index_t t = task % tiles, bh = task / tiles;
        const index_t b = bh / s_.kv_heads, hk = bh % s_.kv_heads;
        T* packed = values_ + bh * k_pad_ * dv_pad_;
        for (index_t j = t * KT; j < std::min(t * KT + KT, k_pad_); ++j) {
          T* dst = packed + j * dv_pad_;
          if (j < s_.k_len) {
            const T* src = v.row(b, hk, j);
            std::copy(src, src + s_.v_dim, dst);
            std::fill(dst + s_.v_dim, dst + dv_pad_, T(0));
          } else {
            std::fill(dst, dst + dv_pad_, T(0));
          }
        }
      }
    }
  }

  // -------- phase 2: query tiles --------
  // one thread's buffers of the query tiles, from its scratch arena
  struct workspace {
    T *fq, *scores, *o, *alpha, *mask_terms, *row_max, *row_sum, *row_term, *score_max;
  };
  workspace thread_workspace() const {
    const std::size_t QT(query_tile_);
    const auto p = scratch_arena::parts<workspace, T, 9>(
        {QT * std::size_t(F_), std::size_t(MR * KT), QT * std::size_t(dv_pad_), MR, KT, QT, QT, QT, MR * W});
    return {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8]};
  }

  void attend(const tensor_view<const T>& q, const tensor_view<T>& out, const row_stat_view<T>& lse) {
    const index_t q_tiles = (s_.q_len + query_tile_ - 1) / query_tile_;
    const index_t tasks = s_.batch * s_.q_heads * q_tiles;
    {
      workspace ws = thread_workspace();
#pragma omp for schedule(dynamic, 1)
      for (index_t task = 0; task < tasks; ++task) {
        // last query tiles first: under a causal mask they see the most keys, and the light
        // tiles then fill the end of the schedule
        const index_t qt = q_tiles - 1 - task % q_tiles, bh = task / q_tiles;
        query_tile(q, out, lse, bh / s_.q_heads, bh % s_.q_heads, qt * query_tile_, ws);
      }
    }
  }

  void query_tile(const tensor_view<const T>& q, const tensor_view<T>& out, const row_stat_view<T>& lse, index_t b,
                  index_t h, index_t i0, workspace& ws) const {
    const index_t rows = std::min(query_tile_, s_.q_len - i0);
    const index_t hk = Heads::kv_head(h, s_.q_heads, s_.kv_heads);
    const index_t hf = Kernel::head_dependent ? h : hk;
    const index_t fh = b * feature_heads_ + hf;

    // query features; rows past the end are zero and never written out
    const index_t padded_rows = round_up(rows, MR);
    const auto query_row = [&](index_t r) { return q.row(b, h, i0 + r); };
    for (index_t r0 = 0; r0 < rows; r0 += row_block) {
      const T* x[row_block];
      double terms[row_block];
      const index_t n = std::min(row_block, rows - r0);
      for (index_t r = 0; r < n; ++r) x[r] = query_row(r0 + r);
      prefetch_rows(query_row, r0 + row_block, std::min(rows, r0 + 2 * row_block), q.cols);
      prepare_rows(h, x, n, ws.fq + r0 * F_, terms, /*queries=*/true);
      for (index_t r = 0; r < n; ++r)
        ws.row_term[r0 + r] = T(terms[r] + (norm_.include_query ? norm_.magnitude(x[r]) : 0.0));
    }
    std::fill(ws.fq + rows * F_, ws.fq + padded_rows * F_, T(0));
    std::fill(ws.row_max, ws.row_max + padded_rows, minus_inf);
    std::fill(ws.row_sum, ws.row_sum + padded_rows, T(0));
    std::fill(ws.o, ws.o + padded_rows * dv_pad_, T(0));

    if constexpr (masks_type::has_sparse) {
      sparse_rows(b, h, hk, fh, i0, rows, ws);
    } else {
      const T* panels = key_features_ + fh * k_pad_ * F_;
      const T* bias = key_bias_ + fh * k_pad_;
      const T* values = values_ + (b * s_.kv_heads + hk) * k_pad_ * dv_pad_;
      for (index_t t = 0; t < key_tiles_; ++t) {
        const index_t j0 = t * KT, j1 = std::min(j0 + KT, s_.k_len);
        if (masks_.tile(b, h, i0, i0 + rows, j0, j1) == tile_state::empty) continue;
        for (index_t r0 = 0; r0 < rows; r0 += MR) {
          const index_t block_rows = std::min(MR, rows - r0), first = i0 + r0, last = first + block_rows;
          const tile_state state = masks_.tile(b, h, first, last, j0, j1);
          if (state == tile_state::empty) continue;
          // keys past the last one any row of the block can see are not computed (causal diagonal)
          const index_t visible_end = std::min(j1, masks_.key_end(b, h, first, last, j1));
          // On a diagonal tile the keys every row of the block sees (up to the first row's end,
          // whole panels) take the full-tile epilogue; only the rest is masked element-wise.
          index_t full_end = j0;
          if (state == tile_state::partial) {
            const index_t first_row_end = std::min(visible_end, masks_.key_end(b, h, first, first + 1, j1));
            const index_t candidate = j0 + (first_row_end - j0) / NR * NR;
            if (candidate > j0 && masks_.tile(b, h, first, last, j0, candidate) == tile_state::full)
              full_end = candidate;
          } else {
            full_end = j0 + (visible_end - j0 + NR - 1) / NR * NR;
          }
          const auto attend = [&](index_t ja, index_t jb, tile_state range_state) {
            attend_keys(fh, t, ja, jb, j1, r0, block_rows, panels, bias, values, range_state, b, h, first, ws);
          };
          if (full_end > j0) attend(j0, full_end, tile_state::full);
          if (state == tile_state::partial && full_end < visible_end) attend(full_end, visible_end, state);
        }
      }
    }
    finish_rows(out, lse, b, h, i0, rows, ws);
  }

  // Keys [ja, jb) of key tile t (ja a multiple of NR; jb rounded up to whole panels) for the
  // block of MR rows at r0: tile product, epilogue, P·V.
  void attend_keys(index_t fh, index_t t, index_t ja, index_t jb, index_t j1, index_t r0, index_t block_rows,
                   const T* panels, const T* bias, const T* values, tile_state state, index_t b, index_t h,
                   index_t first_row, workspace& ws) const {
    const index_t panel_count = (jb - ja + NR - 1) / NR, keys = panel_count * NR;
    const index_t j_stop = std::min(j1, ja + keys);
    T* scores = ws.scores;
    const T* fq = ws.fq + r0 * F_;
    bool any;
    if constexpr (Kernel::kernel_value_form) {
      tile_product<T, Kernel::pairwise>(fq, F_, panels + ja * F_, panel_count, F_, raw_scores<T>{scores, KT});
      any = state == tile_state::full || masks_type::hides_only
                ? exp_free_weights(b, h, first_row, fh, t, ja, j_stop, j1, keys, r0, block_rows, state, ws)
                : softmax_weights(b, h, first_row, ja, j_stop, keys, bias, r0, block_rows, state, ws);
    } else {
      std::fill(ws.score_max, ws.score_max + MR * W, minus_inf);
      tile_product<T, Kernel::pairwise>(fq, F_, panels + ja * F_, panel_count, F_,
                                        logit_scores<T, bound_kernel>{scores, KT, bias + ja, kernel_, ws.score_max});
      any = softmax_weights(b, h, first_row, ja, j_stop, keys, bias, r0, block_rows, state, ws, ws.score_max);
    }
    // keys past jb (and past the last key) have weight 0 in every row: P·V stops at the last
    // visible one instead of the last panel's end (on a causal diagonal, the rest of that panel)
    if (any)
      accumulate_pv(ws.o + r0 * dv_pad_, dv_pad_, ws.alpha, scores, KT, values + ja * dv_pad_, dv_pad_,
                    std::min(jb, j1) - ja);
  }

  // General epilogue: logits = log κ(S) + b_j + masks, then online softmax. Leaves P in the score
  // rows and the rescale factors in ws.alpha; returns false when no row has a visible key.
  // With logit_max, the score rows already hold log κ(S) + b_j, and logit_max[MR][W] their
  // maxima (logit_scores); without, they hold S.
  bool softmax_weights(index_t b, index_t h, index_t first_row, index_t j0, index_t j1, index_t keys, const T* bias,
                       index_t r0, index_t block_rows, tile_state block_state, workspace& ws,
                       const T* logit_max = nullptr) const {
    bool any = false;
    for (index_t r = 0; r < MR; ++r) {
      T* s = ws.scores + r * KT;
      ws.alpha[r] = T(1);
      if (r >= block_rows) { // padding rows contribute nothing
        std::fill(s, s + keys, T(0));
        continue;
      }
      const bool masked = block_state != tile_state::full &&
                          masks_.tile(b, h, first_row + r, first_row + r + 1, j0, j1) != tile_state::full;
      any |= softmax_row(b, h, first_row + r, j0, j1, keys, bias, masked, s, r0 + r, ws.alpha[r], ws,
                         logit_max != nullptr ? logit_max + r * W : nullptr);
    }
    return any;
  }

  // One row of it: scores s of keys [j0, j0 + keys) -> weights, the row's running max and sum
  // (tile row `row`) updated, the rescale factor in alpha; false when the row sees no key yet.
  // logit_max: as in softmax_weights, this row's vector of maxima.
  bool softmax_row(index_t b, index_t h, index_t i, index_t j0, index_t j1, index_t keys, const T* bias, bool masked,
                   T* s, index_t row, T& alpha, workspace& ws, const T* logit_max = nullptr) const {
    using V = simd::batch<T>;
    V vmax(minus_inf);
    if (logit_max != nullptr) {
      vmax = V::load_aligned(logit_max);
    } else {
      for (index_t j = 0; j < keys; j += W) {
        const V logit = kernel_.log_kernel(V::load_aligned(s + j)) + V::load_aligned(bias + j0 + j);
        logit.store_aligned(s + j);
        vmax = xsimd::max(vmax, logit);
      }
    }
    T tile_max = simd::reduce_max(vmax);
    if (masked) {
      masks_.apply(b, h, i, j0, j1 - j0, s);
      // keys in [j1, j0 + keys) are padding keys, whose logit is already −inf
      vmax = V(minus_inf);
      for (index_t j = 0; j < keys; j += W) vmax = xsimd::max(vmax, V::load_aligned(s + j));
      tile_max = simd::reduce_max(vmax);
    }
    T& m = ws.row_max[row];
    const T m_new = std::max(m, tile_max);
    if (m_new == minus_inf) { // nothing visible yet in this row
      std::fill(s, s + keys, T(0));
      return false;
    }
    alpha = m == minus_inf ? T(0) : std::exp(m - m_new);
    ws.row_sum[row] = ws.row_sum[row] * alpha + exp_shifted_in_place(s, keys, m_new);
    m = m_new;
    return true;
  }

  // Exp-free epilogue for kernels with a bounded value κ̂ ≤ 1 + ε on visible keys [j0, j_stop)
  // of key tile t (which ends at tile_end): weight_ij = κ̂(S_ij) · exp(b_j − max_tile b) ·
  // exp(max_tile b − m_i), the middle factor precomputed per key, the last one per row: two exp per
  // row instead of one per element. With masks that only hide keys it also serves partial tiles
  // (block_state partial): the rows the masks touch get their hidden keys' weights set to zero.
  // The key that set max_tile b may be outside the range or hidden: a range or row whose visible
  // b_j all lie far below it (their factors would lose precision or underflow) takes the general
  // epilogue instead.
  bool exp_free_weights(index_t b, index_t h, index_t first_row, index_t fh, index_t t, index_t j0, index_t j_stop,
                        index_t tile_end, index_t keys, index_t r0, index_t block_rows, tile_state block_state,
                        workspace& ws) const {
    using V = simd::batch<T>;
    const index_t tiles = std::max<index_t>(key_tiles_, 1);
    const T tile_max = tile_bias_max_[(fh * tiles + t)];
    const T* weight = key_weight_ + fh * k_pad_ + j0;
    const T* bias = key_bias_ + fh * k_pad_;
    // false when the visible b_j (mask terms added, if any) all lie below tile_max − exp_free_range
    const auto within_range = [&](const T* hidden) {
      V vmax(minus_inf);
      for (index_t j = 0; j < keys; j += W) {
        const V b_j = V::load_aligned(bias + j0 + j);
        vmax = xsimd::max(vmax, hidden != nullptr ? b_j + V::load_aligned(hidden + j) : b_j);
      }
      return simd::reduce_max(vmax) >= tile_max - exp_free_range;
    };
    if (block_state == tile_state::full && (j0 != t * KT || j_stop != tile_end) && !within_range(nullptr))
      return softmax_weights(b, h, first_row, j0, j_stop, keys, bias, r0, block_rows, block_state, ws);
    for (index_t r = 0; r < MR; ++r) {
      T* s = ws.scores + r * KT;
      ws.alpha[r] = T(1);
      if (r >= block_rows) {
        std::fill(s, s + keys, T(0));
        continue;
      }
      const bool masked = block_state != tile_state::full &&
                          masks_.tile(b, h, first_row + r, first_row + r + 1, j0, j_stop) != tile_state::full;
      T* hidden = ws.mask_terms;
      if (masked) {
        // the row's mask terms (0 or −inf); padding keys past j_stop count as hidden
        std::fill(hidden, hidden + keys, T(0));
        masks_.apply(b, h, first_row + r, j0, j_stop - j0, hidden);
        std::fill(hidden + (j_stop - j0), hidden + keys, minus_inf);
        if (!within_range(hidden)) {
          softmax_row(b, h, first_row + r, j0, j_stop, keys, bias, true, s, r0 + r, ws.alpha[r], ws);
          continue;
        }
      }
      T& m = ws.row_max[r0 + r];
      const T m_new = std::max(m, tile_max);
      const T alpha = m == minus_inf ? T(0) : std::exp(m - m_new);
      const V beta(std::exp(tile_max - m_new));
      V vsum(T(0));
      if (!masked) {
        for (index_t j = 0; j < keys; j += W) {
          const V p = kernel_.kernel_value(V::load_aligned(s + j)) * (V::load_aligned(weight + j) * beta);
          p.store_aligned(s + j);
          vsum += p;
        }
      } else {
        for (index_t j = 0; j < keys; j += W) {
          const V p = kernel_.kernel_value(V::load_aligned(s + j)) * (V::load_aligned(weight + j) * beta);
          const V visible = xsimd::select(V::load_aligned(hidden + j) == V(minus_inf), V(T(0)), p);
          visible.store_aligned(s + j);
          vsum += visible;
        }
      }
      ws.row_sum[r0 + r] = ws.row_sum[r0 + r] * alpha + simd::reduce_add(vsum);
      ws.alpha[r] = alpha;
      m = m_new;
    }
    return true;
  }

  // Graph masks: walk each row's neighbour list (O(edges · F)), two passes per row.
  void sparse_rows(index_t b, index_t h, index_t hk, index_t fh, index_t i0, index_t rows, workspace& ws) const {
    const auto& graph = std::get<masks_type::first_sparse_index()>(masks_.masks);
    const T* panels = key_features_ + fh * k_pad_ * F_;
    const T* bias = key_bias_ + fh * k_pad_;
    const T* values = values_ + (b * s_.kv_heads + hk) * k_pad_ * dv_pad_;
    std::vector<T> logits;
    for (index_t r = 0; r < rows; ++r) {
      const index_t i = i0 + r;
      const auto neighbors = graph.neighbors(i);
      const T* fq = ws.fq + r * F_;
      logits.resize(neighbors.size());
      T m = minus_inf;
      for (std::size_t e = 0; e < neighbors.size(); ++e) {
        const index_t j = index_t(neighbors[e]);
        const T* kp = panels + (j / NR) * F_ * NR + j % NR;
        T s = 0;
        for (index_t f = 0; f < F_; ++f) {
          if constexpr (Kernel::pairwise == pairwise_op::dot) s += fq[f] * kp[f * NR];
          else s += std::abs(fq[f] - kp[f * NR]);
        }
        T logit = kernel_.log_kernel(s) + bias[j];
        masks_.apply(b, h, i, j, 1, &logit); // the graph itself adds 0 here; other masks may not
        logits[e] = logit;
        m = std::max(m, logit);
      }
      if (m == minus_inf) continue;
      T* o = ws.o + r * dv_pad_;
      T sum = 0;
      for (std::size_t e = 0; e < neighbors.size(); ++e) {
        const T p = std::exp(logits[e] - m);
        sum += p;
        const T* vj = values + index_t(neighbors[e]) * dv_pad_;
        for (index_t d = 0; d < s_.v_dim; ++d) o[d] += p * vj[d];
      }
      ws.row_max[r] = m;
      ws.row_sum[r] = sum;
    }
  }

  void finish_rows(const tensor_view<T>& out, const row_stat_view<T>& lse, index_t b, index_t h, index_t i0,
                   index_t rows, const workspace& ws) const {
    for (index_t r = 0; r < rows; ++r) {
      T* o = out.row(b, h, i0 + r);
      const T sum = ws.row_sum[r];
      if (sum == T(0)) { // fully masked row: zeros and −inf, never NaN
        std::fill(o, o + s_.v_dim, T(0));
        if (!lse.empty()) lse(b, h, i0 + r) = minus_inf;
        continue;
      }
      const T inv = T(1) / sum;
      const T* acc = ws.o + r * dv_pad_;
      for (index_t d = 0; d < s_.v_dim; ++d) o[d] = acc[d] * inv;
      if (!lse.empty()) lse(b, h, i0 + r) = ws.row_max[r] + std::log(sum) + ws.row_term[r];
    }
  }

  attention_shape s_;
  bound_kernel kernel_;
  bound_norm norm_;
  masks_type masks_;
  index_t F_ = 0, feature_heads_ = 0, k_pad_ = 0, key_tiles_ = 0, dv_pad_ = 0;
  index_t query_tile_ = blocking::query_tile; // the call's, chosen in run()
  // the key pass's results, in the calling thread's scratch arena
  T *key_features_ = nullptr, *key_bias_ = nullptr, *key_weight_ = nullptr, *tile_bias_max_ = nullptr, *values_ = nullptr;
  struct key_rows; // owner of the key pass's per-thread arena
};

} // namespace ika::detail
