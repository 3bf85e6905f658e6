// SPDX-License-Identifier: MIT
#pragma once

// Linear-time attention for kernels with a finite feature map (random_fourier, yaglom_rff).
//
// With features ψ such that κ̂(q, k) = ψ(q)ᵀψ(k), the attention of SPEC §1 factorises:
//   o_i = Σ_j κ̂_ij e^{c_j} [v_j | 1]  /  normaliser  =  ψ(q_i)ᵀ S,   S = Σ_j e^{c_j} ψ(k_j) [v_j | 1]ᵀ
// with c_j = μ(k_j) (the magnitude, folded into the key features). Cost O((Lq + Lk) · P · Dv)
// instead of O(Lq · Lk · (F + Dv)), P the length of ψ.
//
// Two feature forms (linear_features):
//   exact  κ̂ = k̂² + ε, the kernels' squared estimate, through ψ = [φ_a φ_b (√2 when a < b), √ε]:
//          P = F(F + 1)/2 + 1 for F = 2M random features. The weights equal the quadratic engines'
//          (same kernel, same logits), so this is worthwhile for small M only (M = 8: P = 137).
//   raw    κ̂ = k̂ = φ(q)ᵀφ(k), ψ = φ, P = F (Performer-style). A different estimator: it can be
//          negative, and a row whose normaliser is not positive gets zeros (see below).
// The clamp estimate max(k̂, ε) has no finite feature form and is refused.
//
// Stability: magnitudes are shifted by their running maximum (the state is rescaled when a larger
// one arrives, as in an online softmax), and each query by the largest magnitude it sees, so e^{c}
// neither overflows nor underflows everything a query sees. A row with nothing visible, or (raw
// form) with a normaliser <= 0, gets zeros.
//
// Masks: prefix masks only, i.e. causal (either alignment) and key padding; a query sees keys
// j < end(i). Causal attention runs in chunks of queries: the keys every query of the chunk sees
// are in the running state, the others (at most chunk + offset per chunk) are added pair by pair,
// and keep their features until they join the state with the next chunk.
//
// Threads: one task per (batch, query head), each computed in a fixed order by one thread, so
// results do not depend on the thread count.

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "ika/core/attention_args.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/cpu/fused.hpp"
#include "ika/heads/heads.hpp"
#include "ika/kernels/kernel_traits.hpp"
#include "ika/kernels/random_fourier.hpp"
#include "ika/masks/causal.hpp"
#include "ika/masks/key_padding.hpp"
#include "ika/norms/magnitude_dropout.hpp"
#include "ika/norms/norm_traits.hpp"
#include "ika/simd/simd.hpp"

namespace ika {

enum class linear_features {
  exact, // ψ = φ ⊗ φ ⊕ √ε: the squared estimate, the same weights as the quadratic form
  raw    // ψ = φ: κ̂ = φ(q)ᵀφ(k), Performer-style, may be negative
};

struct linear_options {
  linear_features features = linear_features::exact;
  index_t chunk = 16; // queries per chunk of the causal form
  // OpenMP threads; 0 = chosen from the call's size, at most the OpenMP default. Results do not depend on it.
  int threads = 0;
};

namespace detail {

// Masks whose visible keys form a prefix j < end(i), non-decreasing in i.
template <class Mask>
inline constexpr bool is_prefix_mask = false;
template <>
inline constexpr bool is_prefix_mask<causal> = true;
template <>
inline constexpr bool is_prefix_mask<causal_upper_left> = true;
template <>
inline constexpr bool is_prefix_mask<causal_lower_right> = true;
template <class I>
inline constexpr bool is_prefix_mask<key_padding<I>> = true;

template <class T, class Heads, class Kernel, class Norm, class... Masks>
class linear_engine {
  using bound_kernel = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  using bound_norm = decltype(std::declval<const Norm&>().template bind<T>(index_t{}));
  static constexpr index_t row_block = row_block_size<bound_kernel, T>;
  // keys added to the state, and queries read from it, per pass over S
  static constexpr index_t block_rows = 4;
  static_assert(block_rows == 4, "add_block_to_state and read_block_of_state are written out for four rows");
  using vec = simd::batch<T>;
  static constexpr index_t W = index_t(simd::width<T>);

public:
  linear_engine(const attention_shape& shape, const logit_expression<Kernel, Norm, Masks...>& logit,
                const linear_options& options)
      : s_(shape), o_(options), kernel_(logit.kernel.template bind<T>(shape.q_heads, shape.qk_dim)),
        norm_(logit.norm.template bind<T>(shape.qk_dim)),
        masks_{std::apply([&](const auto&... m) { return std::make_tuple(m.bind(shape)...); }, logit.masks)} {
    require(options.chunk >= 1, "linear_options.chunk", "at least 1 query per chunk, got ", options.chunk);
    require(o_.features == linear_features::raw || kernel_.estimate == rff_estimate::squared, "logit.kernel.estimate",
            "rff_estimate::squared for linear_features::exact (the clamp estimate has no finite feature map); "
            "or choose linear_features::raw");
    F_ = kernel_.feature_dim();
    P_ = o_.features == linear_features::exact ? F_ * (F_ + 1) / 2 + 1 : F_;
    // [v | 1 | 0…]: column Dv accumulates the normaliser; padded to whole SIMD vectors
    Dw_ = (s_.v_dim + 1 + W - 1) / W * W;
  }

  template <class Q, class K, class V>
  void run(const tensor_view<Q>& q, const tensor_view<K>& k, const tensor_view<V>& v, const tensor_view<T>& out,
           int threads) const {
    const index_t tasks = s_.batch * s_.q_heads;
    // per query head: every key row mapped and added to the state, every query row mapped and read
    const double rows = double(tasks) * double(s_.q_len + s_.k_len);
    const double work = rows * (double(P_) * double(Dw_) + feature_row_work<bound_kernel>(F_, s_.qk_dim));
    run_in_team(thread_team(threads, work, tasks), [&] {
      task_buffers buffers(*this);
#pragma omp for schedule(dynamic, 1)
      for (index_t task = 0; task < tasks; ++task) attend(task / s_.q_heads, task % s_.q_heads, q, k, v, out, buffers);
    });
  }

private:
  static constexpr index_t key_block = 64; // keys mapped at a time before they join the state

  // One thread's buffers, reused by its tasks. Those of fixed size come from the thread's scratch
  // arena, 64-byte aligned: on the heap (16-byte aligned) the same calls ran 1.1-1.4x slower in
  // some heap states than in others (bench/results/blocking/arenas/). The causal form's tail keys
  // (at most all the keys) grow on use.
  struct task_buffers {
    T *state, *psi, *values, *acc, *key_phi, *query_phi;
    double *key_terms, *query_terms;
    std::size_t state_size;
    std::vector<T> tail_phi;
    std::vector<double> tail_terms, tail_max;
    explicit task_buffers(const linear_engine& e) : state_size(std::size_t(e.P_ * e.Dw_)) {
      const auto p = scratch_arena::parts<task_buffers, T, 6>(
          {state_size, std::size_t(block_rows * e.P_), std::size_t(block_rows * e.Dw_), std::size_t(block_rows * e.Dw_),
           std::size_t(key_block * e.F_), std::size_t(e.o_.chunk * e.F_)});
      const auto terms = scratch_arena::parts<task_terms, double, 2>({std::size_t(key_block), std::size_t(e.o_.chunk)});
      state = p[0], psi = p[1], values = p[2], acc = p[3], key_phi = p[4], query_phi = p[5];
      key_terms = terms[0], query_terms = terms[1];
    }
  };
  struct task_terms; // owner of the terms' arena

  // visible keys of query i of batch row b: j < end
  index_t key_end(index_t b, index_t h, index_t i) const {
    index_t end = s_.k_len;
    std::apply([&](const auto&... m) { ((end = std::min(end, m.key_end(b, h, i, i + 1))), ...); }, masks_);
    return std::clamp<index_t>(end, 0, s_.k_len);
  }

  // ψ of one row from its features φ
  void expand(const T* phi, T* psi) const {
    if (o_.features == linear_features::raw) {
      std::copy(phi, phi + F_, psi);
      return;
    }
    const T root2 = T(std::sqrt(2.0));
    index_t p = 0;
    for (index_t a = 0; a < F_; ++a) {
      psi[p++] = phi[a] * phi[a];
      const T scaled = root2 * phi[a];
      for (index_t c = a + 1; c < F_; ++c) psi[p++] = scaled * phi[c];
    }
    psi[p] = T(std::sqrt(kernel_.epsilon));
  }

  // ψ of n <= block_rows rows with features phi (row stride F), as block_rows rows of P (zeros past
  // n): the raw form's ψ = φ are the rows themselves when the block is whole
  const T* psi_rows(const T* phi, index_t n, task_buffers& buf) const {
    if (o_.features == linear_features::raw && n == block_rows) return phi;
    T* psi = buf.psi;
    for (index_t r = 0; r < block_rows; ++r) {
      if (r < n) expand(phi + r * F_, psi + r * P_);
      else std::fill(psi + r * P_, psi + (r + 1) * P_, T(0));
    }
    return psi;
  }

  // κ̂ from k̂ = φ(q)ᵀφ(k): the pair-by-pair weights inside a causal chunk
  T pair_kernel(T s) const {
    return o_.features == linear_features::raw ? s : s * s + T(kernel_.epsilon);
  }

  // Features φ (row stride F) and log-domain terms c = row term + μ of rows [r0, r1) of x.
  template <class RowOf>
  void featurise(index_t h, index_t r0, index_t r1, RowOf row_of, bool queries, T* phi, double* terms) const {
    for (index_t rb = r0; rb < r1; rb += row_block) {
      const index_t n = std::min(row_block, r1 - rb);
      const T* x[row_block];
      for (index_t r = 0; r < n; ++r) x[r] = row_of(rb + r);
      prefetch_rows(row_of, rb + row_block, std::min(r1, rb + 2 * row_block), s_.qk_dim);
      prepare_rows(kernel_, F_, h, x, n, phi + (rb - r0) * F_, terms + (rb - r0), queries);
      if (!queries) {
        double magnitudes[row_block];
        block_magnitudes(norm_, x, n, magnitudes);
        for (index_t r = 0; r < n; ++r) terms[rb - r0 + r] += magnitudes[r];
      }
    }
  }

  template <class Q, class K, class V>
  void attend(index_t b, index_t h, const tensor_view<Q>& q, const tensor_view<K>& k, const tensor_view<V>& v,
              const tensor_view<T>& out, task_buffers& buf) const {
    const index_t hk = Heads::kv_head(h, s_.q_heads, s_.kv_heads), Dv = s_.v_dim;
    const auto key_row = [&](index_t j) { return k.row(b, hk, j); };
    const auto query_row = [&](index_t i) { return q.row(b, h, i); };
    const auto value_row = [&](index_t j) { return v.row(b, hk, j); };
    std::fill(buf.state, buf.state + buf.state_size, T(0));
    constexpr double none = -std::numeric_limits<double>::infinity();
    double state_max = none; // the state's weights are e^{c_j − state_max}
    index_t state_end = 0;   // the state holds keys [0, state_end)

    index_t tail_end = 0; // the previous chunk's tail keys [state_end, tail_end) are in buf.tail_*
    // keys [j0, j1) with features phi and terms join the state; the state is rescaled when they
    // bring a larger magnitude
    const auto join_state = [&](index_t j0, index_t j1, const T* phi, const double* terms) {
      const double block_max = *std::max_element(terms, terms + (j1 - j0));
      if (block_max > state_max) {
        if (state_max != none) {
          const T rescale = T(std::exp(state_max - block_max));
          for (std::size_t e = 0; e < buf.state_size; ++e) buf.state[e] *= rescale;
        }
        state_max = block_max;
      }
      add_to_state(j0, j1, phi, terms, state_max, value_row, buf);
    };

    for (index_t i0 = 0; i0 < s_.q_len; i0 += o_.chunk) {
      const index_t i1 = std::min(i0 + o_.chunk, s_.q_len);
      const index_t shared_end = std::max(state_end, key_end(b, h, i0)), last_end = std::max(shared_end, key_end(b, h, i1 - 1));

      // 1. keys [state_end, shared_end), which every query of the chunk sees, join the state: first
      //    those that were the previous chunk's tail (their features are kept), then in blocks
      const index_t reused_end = std::min(shared_end, tail_end);
      if (reused_end > state_end) join_state(state_end, reused_end, buf.tail_phi.data(), buf.tail_terms.data());
      for (index_t j0 = std::max(state_end, reused_end); j0 < shared_end; j0 += key_block) {
        const index_t j1 = std::min(j0 + key_block, shared_end);
        // the block's first value rows load while its keys are mapped (add_to_state prefetches the rest)
        prefetch_rows(value_row, j0, std::min(j0 + block_rows, j1), Dv);
        featurise(h, j0, j1, key_row, false, buf.key_phi, buf.key_terms);
        join_state(j0, j1, buf.key_phi, buf.key_terms);
      }
      state_end = shared_end;

      // 2. keys [shared_end, last_end), seen by the later queries of the chunk only: pair by pair.
      //    Query i sees a prefix of them; its shift is the largest magnitude it sees (a prefix
      //    maximum), so that a large key it does not see cannot underflow its weights.
      const index_t n_tail = last_end - shared_end;
      buf.tail_phi.resize(std::size_t(n_tail * F_));
      buf.tail_terms.resize(std::size_t(n_tail));
      buf.tail_max.resize(std::size_t(n_tail));
      if (n_tail > 0) featurise(h, shared_end, last_end, key_row, false, buf.tail_phi.data(), buf.tail_terms.data());
      tail_end = last_end;
      for (index_t t = 0; t < n_tail; ++t)
        buf.tail_max[std::size_t(t)] = std::max(t > 0 ? buf.tail_max[std::size_t(t - 1)] : state_max, buf.tail_terms[std::size_t(t)]);

      // 3. the chunk's queries, block_rows at a time against the state, then their tail keys
      featurise(h, i0, i1, query_row, true, buf.query_phi, buf.query_terms);
      for (index_t r0 = i0; r0 < i1; r0 += block_rows) {
        const index_t n = std::min(block_rows, i1 - r0);
        read_state(buf.query_phi + (r0 - i0) * F_, n, state_max != none, buf);
        for (index_t r = 0; r < n; ++r) {
          const index_t i = r0 + r;
          T* acc = buf.acc + r * Dw_;
          const T* fq = buf.query_phi + (i - i0) * F_;
          const index_t end = key_end(b, h, i);
          const double shift = end > shared_end ? buf.tail_max[std::size_t(end - shared_end - 1)] : state_max;
          if (state_max != none && shift > state_max) {
            const T rescale = T(std::exp(state_max - shift));
            for (index_t d = 0; d < Dw_; ++d) acc[d] *= rescale;
          }
          for (index_t j = shared_end; j < end; ++j) {
            const T* fk = buf.tail_phi.data() + (j - shared_end) * F_;
            const T w = pair_kernel(simd::dot(fq, fk, F_)) * T(std::exp(buf.tail_terms[std::size_t(j - shared_end)] - shift));
            simd::axpy(acc, w, value_row(j), Dv);
            acc[Dv] += w;
          }
          T* o = out.row(b, h, i);
          const T normaliser = acc[Dv];
          if (normaliser > T(0) && std::isfinite(normaliser)) {
            const T inverse = T(1) / normaliser;
            for (index_t d = 0; d < Dv; ++d) o[d] = acc[d] * inverse;
          } else { // nothing visible, or a raw estimate that is not positive
            std::fill(o, o + Dv, T(0));
          }
        }
      }
    }
  }

  // S += Σ_j e^{c_j − shift} ψ(k_j) [v_j | 1]ᵀ for keys [j0, j1), block_rows keys per pass over S
  template <class ValueOf>
  void add_to_state(index_t j0, index_t j1, const T* phi, const double* terms, double shift, ValueOf value_of,
                    task_buffers& buf) const {
    const index_t Dv = s_.v_dim;
    T* S = buf.state;
    T* values = buf.values;
    for (index_t jb = j0; jb < j1; jb += block_rows) {
      const index_t n = std::min(block_rows, j1 - jb);
      // the next block's value rows load while this one streams through S
      prefetch_rows(value_of, jb + block_rows, std::min(jb + 2 * block_rows, j1), Dv);
      const T* psi = psi_rows(phi + (jb - j0) * F_, n, buf);
      for (index_t r = 0; r < block_rows; ++r) {
        T* vr = values + r * Dw_;
        if (r < n) {
          const T weight = T(std::exp(terms[jb - j0 + r] - shift));
          const auto* vj = value_of(jb + r);
          for (index_t d = 0; d < Dv; ++d) vr[d] = weight * vj[d];
          vr[Dv] = weight;
        } else {
          std::fill(vr, vr + Dw_, T(0));
        }
      }
      for_column_groups([&](auto group, index_t d0) { add_block_to_state<decltype(group)::value>(S, psi, values, d0); });
    }
  }

  // acc_r = ψ(q_r)ᵀ S for n <= block_rows queries with features phi (row stride F); zeros when the
  // state holds no key
  void read_state(const T* phi, index_t n, bool state_filled, task_buffers& buf) const {
    if (!state_filled) {
      std::fill(buf.acc, buf.acc + block_rows * Dw_, T(0));
      return;
    }
    const T* psi = psi_rows(phi, n, buf);
    for_column_groups(
        [&](auto group, index_t d0) { read_block_of_state<decltype(group)::value>(buf.state, psi, buf.acc, d0); });
  }

  // The state's columns [0, Dw) in groups of G vectors: G = group_vectors while they last, then 1.
  // A group keeps block_rows × G vectors in registers while S streams past once, and each ψ
  // entry is broadcast once per group instead of once per vector.
  static constexpr index_t group_vectors = simd::vector_registers >= 32 ? 5 : 2;
  template <class Body>
  void for_column_groups(Body body) const {
    index_t d0 = 0;
    for (; d0 + group_vectors * W <= Dw_; d0 += group_vectors * W)
      body(std::integral_constant<index_t, group_vectors>{}, d0);
    for (; d0 < Dw_; d0 += W) body(std::integral_constant<index_t, 1>{}, d0);
  }

  // S[:, d0 : d0 + G·W] += Σ_r ψ_r ⊗ values_r for the block's four rows (ψ rows of P_, value rows
  // of Dw_), the terms added to each entry in row order
  template <index_t G>
  void add_block_to_state(T* IKA_RESTRICT S, const T* IKA_RESTRICT psi, const T* IKA_RESTRICT values,
                          index_t d0) const {
    const index_t P = P_, Dw = Dw_;
    vec v[block_rows][G];
    for (index_t r = 0; r < block_rows; ++r)
      for (index_t g = 0; g < G; ++g) v[r][g] = simd::load(values + r * Dw + d0 + g * W);
    for (index_t p = 0; p < P; ++p) {
      const vec b0(psi[p]), b1(psi[P + p]), b2(psi[2 * P + p]), b3(psi[3 * P + p]);
      T* Sp = S + p * Dw + d0;
#pragma GCC unroll 8
      for (index_t g = 0; g < G; ++g) {
        vec acc = simd::load(Sp + g * W);
        acc = simd::fma(b0, v[0][g], acc);
        acc = simd::fma(b1, v[1][g], acc);
        acc = simd::fma(b2, v[2][g], acc);
        acc = simd::fma(b3, v[3][g], acc);
        simd::store(Sp + g * W, acc);
      }
    }
  }

  // acc_r[d0 : d0 + G·W] = ψ_rᵀ S[:, d0 : d0 + G·W] for the four rows, block_rows × G accumulators
  template <index_t G>
  void read_block_of_state(const T* IKA_RESTRICT S, const T* IKA_RESTRICT psi, T* IKA_RESTRICT acc,
                           index_t d0) const {
    const index_t P = P_, Dw = Dw_;
    vec c[block_rows][G];
    for (index_t r = 0; r < block_rows; ++r)
      for (index_t g = 0; g < G; ++g) c[r][g] = vec(T(0));
    for (index_t p = 0; p < P; ++p) {
      const vec b[block_rows] = {vec(psi[p]), vec(psi[P + p]), vec(psi[2 * P + p]), vec(psi[3 * P + p])};
#pragma GCC unroll 8
      for (index_t g = 0; g < G; ++g) {
        const vec Sp = simd::load(S + p * Dw + d0 + g * W);
#pragma GCC unroll 4
        for (index_t r = 0; r < block_rows; ++r) c[r][g] = simd::fma(b[r], Sp, c[r][g]);
      }
    }
    for (index_t r = 0; r < block_rows; ++r)
      for (index_t g = 0; g < G; ++g) simd::store(acc + r * Dw + d0 + g * W, c[r][g]);
  }

  attention_shape s_;
  linear_options o_;
  bound_kernel kernel_;
  bound_norm norm_;
  std::tuple<decltype(std::declval<const Masks&>().bind(std::declval<const attention_shape&>()))...> masks_;
  index_t F_ = 0, P_ = 0, Dw_ = 0;
};

} // namespace detail

// Linear-time attention (see the top of this file): out = ψ(Q) (Σ_j e^{μ(k_j)} ψ(k_j) [v_j | 1]ᵀ),
// normalised. q (B, Hq, Lq, D), k (B, Hkv, Lk, D), v (B, Hkv, Lk, Dv), out (B, Hq, Lq, Dv).
// The kernel must have a finite feature map (random_fourier, yaglom_rff); masks: causal (any
// alignment) and key padding. With linear_features::exact the result equals ika::attention's for
// the same logit expression up to rounding.
template <class Heads = grouped_heads, class Q, class K, class V, class T, class Kernel, class Norm, class... Masks>
void linear_attention(tensor_view<Q> q, tensor_view<K> k, tensor_view<V> v, tensor_view<T> out,
                      const logit_expression<Kernel, Norm, Masks...>& logit,
                      const std::type_identity_t<linear_options>& options = {}) {
  static_assert(detail::spectral_tensor_count<Kernel> > 0,
                "ika::linear_attention: the kernel needs a finite feature map (random_fourier or yaglom_rff)");
  static_assert(!detail::is_magnitude_dropout<Norm>,
                "ika::linear_attention: magnitude dropout is a per-pair term; use ika::attention");
  static_assert((detail::is_prefix_mask<Masks> && ...),
                "ika::linear_attention: masks must be causal (any alignment) or key_padding");
  detail::check_value_types<Q, K, V, T>();
  detail::check_norm_policy<Norm, T>();
  const attention_shape shape =
      detail::check_attention_args<Heads>(q, k, v, out, attention_options<T>{.threads = options.threads});
  detail::linear_engine<T, Heads, Kernel, Norm, Masks...> engine(shape, logit, options);
  engine.run(q, k, v, out, options.threads);
}

} // namespace ika
