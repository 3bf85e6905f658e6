// SPDX-License-Identifier: MIT
#pragma once

// Dropout on the magnitude matrix, as the public code trains (SPEC §4): with A_ij = μ(q_i)
// (only with include_query) + μ(k_j), the logit gets A_ij · keep_ij / (1 − rate) in place of
// A_ij. keep_ij = [uniform(stream, ((b·Hq + h)·Lq + i)·Lk + j) ≥ rate] from counter_rng(seed):
// a pure function of the pair, so any thread count gives the same mask, and the backward
// recomputes it. Use a new stream every training step; leave it out (plain norm) in evaluation.
//
//   ika::magnitude(ika::magnitude_dropout<ika::lp>{ika::lp{3.0}, 0.1, seed, step})
//
// The engines run it as the inner norm plus one more (internal) mask term
// (factor_ij − 1)·(μ(q_i) + μ(k_j)), which keeps every engine unchanged.

#include <cmath>
#include <cstdint>
#include <limits>
#include <tuple>
#include <vector>

#include "ika/core/error.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/core/random.hpp"
#include "ika/masks/mask_traits.hpp"
#include "ika/norms/lp_norm.hpp"

namespace ika {

template <class Norm = lp>
struct magnitude_dropout {
  Norm norm;
  double rate = 0.1;
  std::uint64_t seed = 0;
  std::uint64_t stream = 0; // one per training step

  static constexpr bool is_zero = false;

  void check() const {
    detail::require(rate >= 0 && rate < 1, "magnitude_dropout.rate", "a drop probability in [0, 1), got ", rate);
  }
  // keep_ij / (1 − rate) for pair (b, h, i, j) of a call of this shape
  double factor(const attention_shape& s, index_t b, index_t h, index_t i, index_t j) const {
    const counter_rng rng(seed);
    const auto index = std::uint64_t(((b * s.q_heads + h) * s.q_len + i) * s.k_len + j);
    return rng.uniform(stream, index) >= rate ? 1.0 / (1.0 - rate) : 0.0;
  }
};

namespace detail {

template <class Norm>
inline constexpr bool is_magnitude_dropout = false;
template <class Norm>
inline constexpr bool is_magnitude_dropout<magnitude_dropout<Norm>> = true;

// The term (factor_ij − 1)·(μ(q_i) + μ(k_j)) as a mask, over per-row magnitudes the caller
// computed (query ones only with include_query). Heads maps a query head to its kv head.
template <class T, class Heads, class Norm>
struct magnitude_dropout_term {
  magnitude_dropout<Norm> dropout;
  const T* query_magnitudes = nullptr; // (B, Hq, Lq) or null
  const T* key_magnitudes = nullptr;   // (B, Hkv, Lk)

  struct bound {
    magnitude_dropout<Norm> dropout;
    attention_shape shape;
    const T* query_magnitudes;
    const T* key_magnitudes;

    // every pair has its own factor: the engine's general (partial) path
    tile_state tile(index_t, index_t, index_t, index_t, index_t, index_t) const { return tile_state::partial; }
    double magnitudes(index_t b, index_t h, index_t i, index_t j) const {
      const index_t hk = Heads::kv_head(h, shape.q_heads, shape.kv_heads);
      const double mq = query_magnitudes ? double(query_magnitudes[(b * shape.q_heads + h) * shape.q_len + i]) : 0.0;
      return mq + double(key_magnitudes[(b * shape.kv_heads + hk) * shape.k_len + j]);
    }
    double slope(index_t b, index_t h, index_t i, index_t j) const { return dropout.factor(shape, b, h, i, j) - 1; }
    template <class U>
    void apply(index_t b, index_t h, index_t i, index_t j0, index_t n, U* logits) const {
      for (index_t j = 0; j < n; ++j) logits[j] += U(slope(b, h, i, j0 + j) * magnitudes(b, h, i, j0 + j));
    }
    double bias(index_t b, index_t h, index_t i, index_t j) const { return slope(b, h, i, j) * magnitudes(b, h, i, j); }
  };
  bound bind(const attention_shape& s) const { return {dropout, s, query_magnitudes, key_magnitudes}; }
};

template <class Mask>
inline constexpr bool is_magnitude_dropout_term = false;
template <class T, class Heads, class Norm>
inline constexpr bool is_magnitude_dropout_term<magnitude_dropout_term<T, Heads, Norm>> = true;

// Per-row magnitudes of q (when the norm includes the query) and k, in T.
template <class T, class Norm>
struct row_magnitudes {
  std::vector<T> query, key;

  template <class Q, class K>
  row_magnitudes(const Norm& norm, const tensor_view<Q>& q, const tensor_view<K>& k) {
    const auto bound = norm.template bind<T>(q.cols);
    if (bound.include_query) {
      query.resize(std::size_t(q.batch * q.heads * q.rows));
      for (index_t b = 0, r = 0; b < q.batch; ++b)
        for (index_t h = 0; h < q.heads; ++h)
          for (index_t i = 0; i < q.rows; ++i, ++r) query[std::size_t(r)] = T(bound.magnitude(q.row(b, h, i)));
    }
    key.resize(std::size_t(k.batch * k.heads * k.rows));
    for (index_t b = 0, r = 0; b < k.batch; ++b)
      for (index_t h = 0; h < k.heads; ++h)
        for (index_t j = 0; j < k.rows; ++j, ++r) key[std::size_t(r)] = T(bound.magnitude(k.row(b, h, j)));
  }
};

// The expression the engines run: the inner norm, plus the dropout term as the last mask.
template <class T, class Heads, class Kernel, class Norm, class... Masks>
logit_expression<Kernel, Norm, Masks..., magnitude_dropout_term<T, Heads, Norm>>
expand_magnitude_dropout(const logit_expression<Kernel, magnitude_dropout<Norm>, Masks...>& e,
                         const row_magnitudes<T, Norm>& m) {
  magnitude_dropout_term<T, Heads, Norm> term{e.norm, m.query.empty() ? nullptr : m.query.data(), m.key.data()};
  return {e.kernel, e.norm.norm, std::tuple_cat(e.masks, std::tuple<decltype(term)>{term})};
}

} // namespace detail
} // namespace ika
