// SPDX-License-Identifier: MIT
#pragma once

// The split-key engine, for decoding: a few query rows (Lq ≤ max_query_rows) against a long
// key/value cache. The fused engine packs every key into panels before a query tile uses them;
// for one query row that means reading K and V, writing the panels and reading them again, and
// it has only B·H tasks to share among the threads. Here a task is one (batch, feature head,
// split of split_keys keys), and it streams its keys once: the features of a block of keys into a
// small buffer, their scores against every query row of every query head that shares those
// features (all heads of a key/value group when the kernel does not depend on the head), online
// softmax, and P·V straight from the value rows. The splits' partial results (row max, row sum,
// unnormalised output) are merged in split order. The split length is a constant, so the result
// does not depend on the number of threads.

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ika/core/aligned_buffer.hpp"
#include "ika/core/attention_args.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/cpu/fused.hpp"
#include "ika/kernels/kernel_traits.hpp"
#include "ika/simd/simd.hpp"

namespace ika::detail {

// Rows of the keys `distance` further on, requested a key at a time beside the loads of this
// block's key c and value c (rows c of these), so that the memory works through the arithmetic
// instead of waiting for a burst of requests at the start of each block (bench/results/blocking/
// decode_schedule/). count = 0 where a feature map requests the rows itself (prepare_key_block).
template <class T>
struct rows_ahead {
  static constexpr index_t distance = 32; // keys; 16 and 32 measured best, 48 and 64 behind
  const T* keys = nullptr;
  const T* values = nullptr;
  index_t key_stride = 0, value_stride = 0, count = 0;
  IKA_ALWAYS_INLINE void request_key(index_t c, index_t length) const {
    if (c < count) prefetch_row(keys + c * key_stride, length);
  }
  IKA_ALWAYS_INLINE void request_value(index_t c, index_t length) const {
    if (c < count) prefetch_row(values + c * value_stride, length);
  }
};

// o[0:dv] += Σ_c p[c] · values[c][0:dv], the output held in registers across the keys (a
// row-by-row axpy would chain every key through a store and a load of o); requests ahead's values.
// Not inlined: inlined into attend_split it measured 2-7 % slower.
template <class T>
[[gnu::noinline]] void accumulate_values(T* IKA_RESTRICT o, const T* IKA_RESTRICT p, const T* const* values, index_t n,
                                         index_t dv, rows_ahead<T> ahead) {
  using V = simd::batch<T>;
  constexpr index_t W = index_t(simd::width<T>), chunk = 4 * W;
  index_t d = 0;
  for (; d + chunk <= dv; d += chunk) {
    V acc[4];
#pragma GCC unroll 4
    for (index_t u = 0; u < 4; ++u) acc[u] = simd::load(o + d + u * W);
    for (index_t c = 0; c < n; ++c) {
      if (d == 0) ahead.request_value(c, dv);
      const V w(p[c]);
#pragma GCC unroll 4
      for (index_t u = 0; u < 4; ++u) acc[u] = xsimd::fma(w, simd::load(values[c] + d + u * W), acc[u]);
    }
#pragma GCC unroll 4
    for (index_t u = 0; u < 4; ++u) simd::store(o + d + u * W, acc[u]);
  }
  for (; d + W <= dv; d += W) {
    V acc = simd::load(o + d);
    for (index_t c = 0; c < n; ++c) acc = xsimd::fma(V(p[c]), simd::load(values[c] + d), acc);
    simd::store(o + d, acc);
  }
  for (; d < dv; ++d) {
    T acc = o[d];
    for (index_t c = 0; c < n; ++c) acc += p[c] * values[c][d];
    o[d] = acc;
  }
}

// Keys [j0, j0 + n) of (batch b, key/value head hk) for feature head hf: key_rows[c] points at the
// features of key j0 + c (whole vectors of f_pad entries, zero-padded), log-domain terms go into
// bias (the caller pads both to a whole vector of keys). When the features are the key rows, need
// no padding and have no terms (softmax), they are scored in place and the result is true: the
// caller requests the rows ahead (rows_ahead). Else the features are written into
// block_features, and the rows of the keys `distance` further on (up to j_end) are requested
// beside each key's feature map. Out of the engine class so that it is compiled once per kernel ×
// norm, not once per mask set and head structure.
template <class T, class BoundKernel, class BoundNorm>
[[gnu::noinline]] bool prepare_key_block(const BoundKernel& kernel, const BoundNorm& norm, index_t F, index_t f_pad,
                                         index_t hf, index_t k_len, const tensor_view<const T>& k,
                                         const tensor_view<const T>& v, index_t b, index_t hk, index_t j0, index_t n,
                                         index_t j_end, T* scratch, T* block_features, const T* zero_row,
                                         const T** key_rows, T* bias) {
  constexpr index_t key_block = key_block_size<BoundKernel, T>, distance = 64;
  const bool in_place = key_features_are_rows<BoundKernel> && F == f_pad;
  const auto prefetch_ahead = [&](index_t j) {
    if (j + distance < j_end) {
      prefetch_row(k.row(b, hk, j + distance), k.cols);
      prefetch_row(v.row(b, hk, j + distance), v.cols);
    }
  };
  if (in_place && key_terms_cancel(kernel, norm)) { // softmax: the key rows as they are, terms 0
    for (index_t j = j0; j < j0 + n; ++j) key_rows[j - j0] = k.row(b, hk, j);
    std::fill(bias, bias + n, T(0));
    return true;
  }
  for (index_t jb = j0; jb < j0 + n; jb += key_block) {
    // features straight into the block when its rows need no padding, else through scratch
    T* rows = in_place ? nullptr : F == f_pad ? block_features + (jb - j0) * f_pad : scratch;
    prepare_key_rows(kernel, norm, F, hf, k_len, jb, std::min(jb + key_block, j0 + n),
                     [&](index_t j) { return k.row(b, hk, j); }, /*row_length (prefetched here)=*/0, rows,
                     [&](index_t j, const T* features, double term) {
                       prefetch_ahead(j);
                       bias[j - j0] = T(term);
                       if (in_place || features == nullptr) { // a padding key is not reached: blocks end at Lk
                         key_rows[j - j0] = features != nullptr ? features : zero_row;
                         return;
                       }
                       T* row = block_features + (j - j0) * f_pad;
                       if (features != row) std::fill(std::copy(features, features + F, row), row + f_pad, T(0));
                       key_rows[j - j0] = row;
                     });
  }
  return false;
}

// Key features and terms computed once, when the keys were appended to an ika::key_cache:
// feature head hf's key j of batch row b at row (b · feature_heads + hf) · capacity + j, rows of
// f_pad values (zero-padded). The split-key engine then scores them in place.
template <class T>
struct prepared_key_rows {
  const T* features = nullptr;
  const T* bias = nullptr; // kernel row term + magnitude per key
  index_t feature_heads = 0, capacity = 0, f_pad = 0;

  const T* row(index_t b, index_t hf, index_t j) const {
    return features + ((b * feature_heads + hf) * capacity + j) * f_pad;
  }

  // keys [j0, j0 + n) of (b, hf) into key_rows and bias, as prepare_key_block does
  void block(index_t b, index_t hf, index_t j0, index_t n, const T** key_rows, T* block_bias) const {
    const index_t base = (b * feature_heads + hf) * capacity;
    for (index_t c = 0; c < n; ++c) {
      key_rows[c] = row(b, hf, j0 + c);
      block_bias[c] = bias[base + j0 + c];
    }
  }
};

template <class T, class Heads, class Kernel, class Norm, class... Masks>
class split_key_engine {
  using bound_kernel = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  using bound_norm = decltype(std::declval<const Norm&>().template bind<T>(index_t{}));
  using masks_type = mask_set<decltype(std::declval<const Masks&>().bind(std::declval<const attention_shape&>()))...>;
  static constexpr T minus_inf = -std::numeric_limits<T>::infinity();
  static constexpr index_t W = index_t(simd::width<T>);

public:
  static constexpr index_t max_query_rows = 4;
  static constexpr index_t split_keys = 512; // keys per task
  static constexpr index_t block_keys = 64;  // keys scored at once, a multiple of every SIMD width
  static constexpr index_t task_setup_keys = 16; // a task's fixed work, in keys' worth, for the schedule

  // Whether this engine serves a call: decode-like shapes, no graph mask (its neighbour lists
  // already make it sparse). Depends on the shape only, never on the thread count.
  static bool serves(const attention_shape& shape) { return !masks_type::has_sparse && shape.q_len <= max_query_rows; }

  split_key_engine(const attention_shape& shape, const logit_expression<Kernel, Norm, Masks...>& logit)
      : split_key_engine(shape, logit, logit.kernel.template bind<T>(shape.q_heads, shape.qk_dim)) {}
  // with logit.kernel already bound (a key cache's kernel, bound once per fill of the cache)
  split_key_engine(const attention_shape& shape, const logit_expression<Kernel, Norm, Masks...>& logit,
                   const bound_kernel& kernel)
      : s_(shape), kernel_(kernel), norm_(logit.norm.template bind<T>(shape.qk_dim)),
        masks_{std::apply([&](const auto&... m) { return std::make_tuple(m.bind(shape)...); }, logit.masks)} {
    F_ = kernel_.feature_dim();
    f_pad_ = round_up(F_, W);
    feature_heads_ = Kernel::head_dependent ? s_.q_heads : s_.kv_heads;
    splits_ = (s_.k_len + split_keys - 1) / split_keys;
    // the query heads served by each feature head, in head order
    heads_of_.resize(std::size_t(feature_heads_));
    for (index_t h = 0; h < s_.q_heads; ++h)
      heads_of_[std::size_t(Kernel::head_dependent ? h : Heads::kv_head(h, s_.q_heads, s_.kv_heads))].push_back(h);
    for (const auto& heads : heads_of_) group_rows_ = std::max(group_rows_, index_t(heads.size()) * s_.q_len);
  }

  // The features of the keys come from `prepared` instead of k (which is then not read).
  void use_prepared(const prepared_key_rows<T>& prepared) {
    require(prepared.f_pad == f_pad_ && prepared.feature_heads == feature_heads_ && prepared.capacity >= s_.k_len,
            "key_cache", "features prepared for this kernel and head structure");
    prepared_ = &prepared;
  }

  void run(const tensor_view<const T>& q, const tensor_view<const T>& k, const tensor_view<const T>& v,
           const tensor_view<T>& out, const row_stat_view<T>& lse, int threads) {
    if (s_.batch == 0 || s_.q_len == 0) return;
    const std::size_t query_rows = std::size_t(s_.batch * s_.q_heads * s_.q_len);
    const std::size_t partial_rows = query_rows * std::size_t(std::max<index_t>(splits_, 1));
    const auto parts = scratch_arena::parts<split_key_engine, T, 5>(
        {query_rows * std::size_t(f_pad_), query_rows, partial_rows, partial_rows,
         partial_rows * std::size_t(s_.v_dim)});
    query_features_ = parts[0];
    query_term_ = parts[1];
    partial_max_ = parts[2];
    partial_sum_ = parts[3];
    partial_out_ = parts[4];
    const index_t query_tasks = s_.batch * s_.q_heads;
    const index_t split_tasks = s_.batch * feature_heads_ * splits_;
    // the tasks in (batch, feature head, split) order, each with the end of the keys it reads and
    // its work (those keys, and a fixed part for its setup and merge), dealt out in contiguous
    // ranges: a thread reads its own stretch of K and V in order (bench/results/blocking/decode_schedule/)
    struct schedule_arena {};
    visible_end_ = scratch_arena::parts<schedule_arena, index_t, 1>({std::size_t(split_tasks)})[0];
    double* work_before = scratch_arena::parts<schedule_arena, double, 1>({std::size_t(split_tasks) + 1})[0];
    work_before[0] = 0;
    for (index_t task = 0; task < split_tasks; ++task) {
      const index_t split = task % splits_, bf = task / splits_;
      const index_t end = visible_end(bf / feature_heads_, bf % feature_heads_, split);
      visible_end_[task] = end;
      work_before[task + 1] = work_before[task] + double(end - split * split_keys + task_setup_keys);
    }
    const double work = attention_work<bound_kernel>(s_, F_, prepared_ ? 0 : s_.batch * feature_heads_ * s_.k_len);
    run_in_team(thread_team(threads, work, std::max(query_tasks, split_tasks)), [&] {
      workspace ws(F_, f_pad_, group_rows_, row_block_size<bound_kernel, T>, key_block_size<bound_kernel, T>);
#pragma omp for schedule(static)
      for (index_t bh = 0; bh < query_tasks; ++bh)
        prepare_queries(q, bh / s_.q_heads, bh % s_.q_heads, ws.row_features);
      const auto [first, last] = balanced_share(work_before, split_tasks);
      for (index_t task = first; task < last; ++task) {
        const index_t split = task % splits_, bf = task / splits_;
        attend_split(k, v, bf / feature_heads_, bf % feature_heads_, split, visible_end_[task], ws);
      }
#pragma omp barrier
#pragma omp for schedule(static)
      for (index_t row = 0; row < index_t(query_rows); ++row) merge_row(out, lse, row);
    });
  }

private:
  // One thread's buffers, from its scratch arena: reused across calls, no allocation per call.
  struct workspace {
    T *row_features, *key_features, *block_features, *zero_row, *scores, *bias;
    const T** key_rows;        // per key of the block: its features
    const T** query_of;        // per score row: its query features
    T** out_of;                // per score row: its partial output
    index_t *head_of, *row_of; // per score row: its query head and query row
    workspace(index_t features, index_t padded_features, index_t rows, index_t query_block, index_t key_block) {
      const auto n = [](index_t count, std::size_t size) { return std::size_t(count) * size; };
      const auto part = scratch_arena::parts<workspace, std::byte, 11>(
          {n(query_block * features, sizeof(T)), n(key_block * features, sizeof(T)),
           n(block_keys * padded_features, sizeof(T)), n(padded_features, sizeof(T)), n(rows * block_keys, sizeof(T)),
           n(block_keys, sizeof(T)), n(block_keys, sizeof(T*)), n(rows, sizeof(T*)), n(rows, sizeof(T*)),
           n(rows, sizeof(index_t)), n(rows, sizeof(index_t))});
      row_features = reinterpret_cast<T*>(part[0]);
      key_features = reinterpret_cast<T*>(part[1]);
      block_features = reinterpret_cast<T*>(part[2]);
      zero_row = reinterpret_cast<T*>(part[3]);
      scores = reinterpret_cast<T*>(part[4]);
      bias = reinterpret_cast<T*>(part[5]);
      key_rows = reinterpret_cast<const T**>(part[6]);
      query_of = reinterpret_cast<const T**>(part[7]);
      out_of = reinterpret_cast<T**>(part[8]);
      head_of = reinterpret_cast<index_t*>(part[9]);
      row_of = reinterpret_cast<index_t*>(part[10]);
      std::fill(zero_row, zero_row + padded_features, T(0));
    }
  };

  // scores[c] = pairwise(fq, key c) for keys [0, padded) of the block (features f_pad_ long),
  // W keys at a time: W vector partial sums reduced together (one transposing add tree instead of
  // a horizontal sum per key); requests ahead's keys.
  void block_scores(const T* IKA_RESTRICT fq, const T* const* key_rows, index_t padded, T* IKA_RESTRICT scores,
                    rows_ahead<T> ahead) const {
    using V = simd::batch<T>;
    for (index_t c0 = 0; c0 < padded; c0 += W) {
      V partial[W];
      for (index_t u = 0; u < W; ++u) {
        ahead.request_key(c0 + u, f_pad_);
        const T* key = key_rows[c0 + u];
        V acc(T(0));
        for (index_t f = 0; f < f_pad_; f += W) {
          const V a = V::load_aligned(fq + f), k = simd::load(key + f);
          if constexpr (Kernel::pairwise == pairwise_op::dot) acc = xsimd::fma(a, k, acc);
          else acc += xsimd::abs(a - k);
        }
        partial[u] = acc;
      }
      simd::reduce_add_each<T>(partial).store_aligned(scores + c0);
    }
  }

  index_t query_row(index_t b, index_t h, index_t i) const { return (b * s_.q_heads + h) * s_.q_len + i; }
  index_t partial_row(index_t b, index_t h, index_t i, index_t split) const {
    return query_row(b, h, i) * splits_ + split;
  }

  // features: room for row_block_size rows of F_ (the calling thread's)
  void prepare_queries(const tensor_view<const T>& q, index_t b, index_t h, T* features) {
    constexpr index_t row_block = row_block_size<bound_kernel, T>;
    for (index_t i0 = 0; i0 < s_.q_len; i0 += row_block) {
      const T* x[row_block];
      double terms[row_block];
      const index_t n = std::min(row_block, s_.q_len - i0);
      for (index_t r = 0; r < n; ++r) x[r] = q.row(b, h, i0 + r);
      prepare_rows(kernel_, F_, h, x, n, features, terms, /*queries=*/true);
      for (index_t r = 0; r < n; ++r) {
        T* row = query_features_ + query_row(b, h, i0 + r) * f_pad_; // zero-padded to whole vectors
        std::fill(std::copy(features + r * F_, features + (r + 1) * F_, row), row + f_pad_, T(0));
        query_term_[query_row(b, h, i0 + r)] = T(terms[r] + (norm_.include_query ? norm_.magnitude(x[r]) : 0.0));
      }
    }
  }

  // The end of the keys of (b, hf, split) that any row it serves can see (its start when none).
  index_t visible_end(index_t b, index_t hf, index_t split) const {
    const index_t j_begin = split * split_keys, j_end = std::min(j_begin + split_keys, s_.k_len);
    index_t end = j_begin; // keys past the last one any row can see are not read
    for (const index_t h : heads_of_[std::size_t(hf)])
      if (masks_.tile(b, h, 0, s_.q_len, j_begin, j_end) != tile_state::empty)
        end = std::max(end, std::min(j_end, masks_.key_end(b, h, 0, s_.q_len, j_end)));
    return end;
  }

  // One (batch, feature head, split), keys up to j_end: every query row of every head served by
  // these features.
  void attend_split(const tensor_view<const T>& k, const tensor_view<const T>& v, index_t b, index_t hf, index_t split,
                    index_t j_end, workspace& ws) const {
    const std::vector<index_t>& heads = heads_of_[std::size_t(hf)];
    const index_t hk = Kernel::head_dependent ? Heads::kv_head(hf, s_.q_heads, s_.kv_heads) : hf;
    index_t rows = 0;
    for (const index_t h : heads)
      for (index_t i = 0; i < s_.q_len; ++i, ++rows) {
        const index_t p = partial_row(b, h, i, split);
        partial_max_[p] = minus_inf;
        partial_sum_[p] = T(0);
        ws.out_of[std::size_t(rows)] = partial_out_ + p * s_.v_dim;
        std::fill(ws.out_of[std::size_t(rows)], ws.out_of[std::size_t(rows)] + s_.v_dim, T(0));
        ws.query_of[std::size_t(rows)] = query_features_ + query_row(b, h, i) * f_pad_;
        ws.head_of[std::size_t(rows)] = h;
        ws.row_of[std::size_t(rows)] = i;
      }

    const index_t j_begin = split * split_keys;

    for (index_t j0 = j_begin; j0 < j_end; j0 += block_keys) {
      const index_t n = std::min(block_keys, j_end - j0), padded = round_up(n, W);
      T* scores = ws.scores;
      T* bias = ws.bias;
      bool rows_in_place = true; // else the feature map has requested the rows ahead
      if (prepared_ != nullptr)
        prepared_->block(b, hf, j0, n, ws.key_rows, bias);
      else
        rows_in_place = prepare_key_block(kernel_, norm_, F_, f_pad_, hf, s_.k_len, k, v, b, hk, j0, n, j_end,
                                          ws.key_features, ws.block_features, ws.zero_row, ws.key_rows, bias);
      // past the split's end too, up to Lk: a thread's next task is mostly the next split of the head
      rows_ahead<T> ahead;
      if (const index_t j_ahead = j0 + ahead.distance; rows_in_place && j_ahead < s_.k_len) {
        ahead.keys = prepared_ != nullptr ? prepared_->row(b, hf, j_ahead) : k.row(b, hk, j_ahead);
        ahead.key_stride = prepared_ != nullptr ? f_pad_ : k.row_stride;
        ahead.values = v.row(b, hk, j_ahead);
        ahead.value_stride = v.row_stride;
        ahead.count = std::min(block_keys, s_.k_len - j_ahead);
      }
      // the SIMD tail up to a whole vector of keys scores the zero row with weight exp(−inf)
      std::fill(ws.key_rows + n, ws.key_rows + padded, ws.zero_row);
      std::fill(bias + n, bias + padded, minus_inf);
      for (index_t r = 0; r < rows; ++r) // the rows ahead requested once, with the first score row
        block_scores(ws.query_of[std::size_t(r)], ws.key_rows, padded, scores + r * block_keys,
                     r == 0 ? ahead : rows_ahead<T>{});
      bool any = false;
      for (index_t r = 0; r < rows; ++r) any |= softmax_weights(b, r, j0, n, padded, split, ws);
      if (!any) continue;
      const T* values[block_keys];
      for (index_t c = 0; c < n; ++c) values[c] = v.row(b, hk, j0 + c);
      for (index_t r = 0; r < rows; ++r)
        accumulate_values(ws.out_of[std::size_t(r)], scores + r * block_keys, values, n, s_.v_dim,
                          r == 0 ? ahead : rows_ahead<T>{});
    }
  }

  // Logits of score row r over keys [j0, j0 + n), online softmax into its partial row: leaves the
  // weights in the score row (zeros where nothing is visible) and rescales the partial output.
  bool softmax_weights(index_t b, index_t r, index_t j0, index_t n, index_t padded, index_t split,
                       workspace& ws) const {
    using V = simd::batch<T>;
    T* s = ws.scores + r * block_keys;
    const index_t h = ws.head_of[std::size_t(r)], i = ws.row_of[std::size_t(r)];
    const tile_state state = masks_.tile(b, h, i, i + 1, j0, j0 + n);
    if (state == tile_state::empty) {
      std::fill(s, s + padded, T(0));
      return false;
    }
    V vmax(minus_inf);
    for (index_t c = 0; c < padded; c += W) {
      const V logit = kernel_.log_kernel(V::load_aligned(s + c)) + V::load_aligned(ws.bias + c);
      logit.store_aligned(s + c);
      vmax = xsimd::max(vmax, logit);
    }
    T block_max = simd::reduce_max(vmax);
    if (state == tile_state::partial) {
      masks_.apply(b, h, i, j0, n, s);
      block_max = *std::max_element(s, s + n);
    }
    const index_t p = partial_row(b, h, i, split);
    T& m = partial_max_[p];
    const T m_new = std::max(m, block_max);
    if (m_new == minus_inf) {
      std::fill(s, s + padded, T(0));
      return false;
    }
    if (m != minus_inf && m_new != m) {
      const T alpha = std::exp(m - m_new);
      partial_sum_[p] *= alpha;
      T* o = ws.out_of[std::size_t(r)];
      for (index_t d = 0; d < s_.v_dim; ++d) o[d] *= alpha;
    }
    m = m_new;
    partial_sum_[p] += exp_shifted_in_place(s, padded, m_new);
    return true;
  }

  // out = Σ_s e^{m_s − M} o_s / Σ_s e^{m_s − M} l_s, in split order; lse = M + log Σ + row term.
  void merge_row(const tensor_view<T>& out, const row_stat_view<T>& lse, index_t row) const {
    const index_t i = row % s_.q_len, bh = row / s_.q_len, b = bh / s_.q_heads, h = bh % s_.q_heads;
    T* o = out.row(b, h, i);
    T m = minus_inf;
    for (index_t s = 0; s < splits_; ++s) m = std::max(m, partial_max_[row * splits_ + s]);
    std::fill(o, o + s_.v_dim, T(0));
    if (m == minus_inf) { // fully masked row: zeros and −inf, never NaN
      if (!lse.empty()) lse(b, h, i) = minus_inf;
      return;
    }
    T sum = 0;
    for (index_t s = 0; s < splits_; ++s) {
      const index_t p = row * splits_ + s;
      if (partial_max_[p] == minus_inf) continue;
      const T scale = std::exp(partial_max_[p] - m);
      sum += scale * partial_sum_[p];
      simd::axpy(o, scale, partial_out_ + p * s_.v_dim, s_.v_dim);
    }
    const T inv = T(1) / sum;
    for (index_t d = 0; d < s_.v_dim; ++d) o[d] *= inv;
    if (!lse.empty()) lse(b, h, i) = m + std::log(sum) + query_term_[row];
  }

  attention_shape s_;
  bound_kernel kernel_;
  bound_norm norm_;
  masks_type masks_;
  index_t F_ = 0, f_pad_ = 0, feature_heads_ = 0, splits_ = 0, group_rows_ = 0;
  std::vector<std::vector<index_t>> heads_of_;
  const prepared_key_rows<T>* prepared_ = nullptr;
  // per call, in the calling thread's scratch arena
  T *query_features_ = nullptr, *query_term_ = nullptr, *partial_max_ = nullptr, *partial_sum_ = nullptr,
    *partial_out_ = nullptr;
  index_t* visible_end_ = nullptr; // per split task
};

} // namespace ika::detail
