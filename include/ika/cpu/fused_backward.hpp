// SPDX-License-Identifier: MIT
#pragma once

// The fused CPU backward, FlashAttention-2 style: nothing Lq × Lk is stored; the weights are
// recomputed from the forward's log-sum-exp,
//   p_ij = exp(ℓ_ij + c_i − lse_i),  dℓ_ij = p_ij (do_i·v_j − do_i·o_i),
// in two passes with a fixed partition, so gradients are bitwise identical for any thread count:
//   keys pass    (batch × kv head × key block): dv_j, and dk_j through the key features and the
//                key term b_j (kernel row term + magnitude), summed over the query heads of the group;
//   queries pass (batch × query head × query block): dq_i through the query features.
// The query term c_i gets no gradient: Σ_j dℓ_ij = 0.
//
// This first version covers the kernels whose pairwise part is a dot product of rows prepared
// without spectral points (rbf, dot_product), every norm, and the dense masks; the others fail
// to compile with a message saying so.

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "ika/core/attention_args.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/cpu/fused.hpp"
#include "ika/kernels/rbf.hpp"
#include "ika/heads/heads.hpp"
#include "ika/simd/simd.hpp"

namespace ika {

// Where the gradients go; each has the shape of its input. They are overwritten, not added to.
template <class T>
struct attention_grads {
  tensor_view<T> dq, dk, dv;
};

namespace detail {

template <class T, class Heads, class Kernel, class Norm, class... Masks>
class fused_backward_engine {
  using bound_kernel = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  using bound_norm = decltype(std::declval<const Norm&>().template bind<T>(index_t{}));
  using masks_type = mask_set<decltype(std::declval<const Masks&>().bind(std::declval<const attention_shape&>()))...>;
  static constexpr T minus_inf = -std::numeric_limits<T>::infinity();
  static constexpr int block = 32;

public:
  fused_backward_engine(const attention_shape& shape, const logit_expression<Kernel, Norm, Masks...>& logit)
      : s_(shape), kernel_(logit.kernel.template bind<T>(shape.q_heads, shape.qk_dim)),
        norm_(logit.norm.template bind<T>(shape.qk_dim)),
        masks_{std::apply([&](const auto&... m) { return std::make_tuple(m.bind(shape)...); }, logit.masks)},
        F_(kernel_.feature_dim()) {}

  void run(const tensor_view<const T>& q, const tensor_view<const T>& k, const tensor_view<const T>& v,
           const tensor_view<const T>& out, const row_stat_view<const T>& lse, const tensor_view<const T>& d_out,
           const attention_grads<T>& grads, [[maybe_unused]] int team) {
    const index_t B = s_.batch, Hq = s_.q_heads, Hkv = s_.kv_heads, Lq = s_.q_len, Lk = s_.k_len;
    // per-row data shared by both passes: features, terms, D_i = do_i·o_i
    fq_.assign(std::size_t(B * Hq * Lq * F_), T(0));
    fk_.assign(std::size_t(B * Hkv * Lk * F_), T(0));
    key_term_.assign(std::size_t(B * Hkv * Lk), T(0));
    shift_.assign(std::size_t(B * Hq * Lq), T(0));
    row_dot_.assign(std::size_t(B * Hq * Lq), T(0));
#pragma omp parallel num_threads(team)
    {
#pragma omp for schedule(static)
      for (index_t r = 0; r < B * Hq * Lq; ++r) {
        const index_t b = r / (Hq * Lq), h = (r / Lq) % Hq, i = r % Lq;
        const T* x = q.row(b, h, i);
        double term = kernel_.prepare_query(h, x, fq_.data() + r * F_);
        if (norm_.include_query) term += norm_.magnitude(x);
        // p_ij = exp(ℓ_ij − (lse_i − c_i)); a fully masked row has lse = −inf and no weights
        shift_[r] = lse(b, h, i) == minus_inf ? std::numeric_limits<T>::infinity() : lse(b, h, i) - T(term);
        row_dot_[r] = simd::dot(d_out.row(b, h, i), out.row(b, h, i), s_.v_dim);
      }
#pragma omp for schedule(static)
      for (index_t r = 0; r < B * Hkv * Lk; ++r) {
        const index_t b = r / (Hkv * Lk), hk = (r / Lk) % Hkv, j = r % Lk;
        const T* x = k.row(b, hk, j);
        key_term_[r] = T(kernel_.prepare_key(hk, x, fk_.data() + r * F_) + norm_.magnitude(x));
      }
      keys_pass(k, v, d_out, grads);
      queries_pass(q, v, d_out, grads);
    }
  }

private:
  using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using const_rows = Eigen::Map<const matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
  using rows = Eigen::Map<matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
  // Every product writes into a block of at most 32 rows: Eigen then never starts OpenMP threads
  // of its own for it (it would inside a team of one thread), so the partition stays ours.
  using block_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor, block, Eigen::Dynamic>;

  // n consecutive rows of a view (unit column stride, free row stride) as an Eigen matrix
  static const_rows view_rows(const tensor_view<const T>& t, index_t b, index_t h, index_t l0, index_t n) {
    return const_rows(t.row(b, h, l0), n, t.cols, Eigen::OuterStride<>(t.row_stride));
  }
  static rows view_rows(const tensor_view<T>& t, index_t b, index_t h, index_t l0, index_t n) {
    return rows(t.row(b, h, l0), n, t.cols, Eigen::OuterStride<>(t.row_stride));
  }
  const_rows query_features(index_t b, index_t h, index_t i0, index_t n) const {
    return const_rows(fq_.data() + ((b * s_.q_heads + h) * s_.q_len + i0) * F_, n, F_, Eigen::OuterStride<>(F_));
  }
  const_rows key_features(index_t b, index_t hk, index_t j0, index_t n) const {
    return const_rows(fk_.data() + ((b * s_.kv_heads + hk) * s_.k_len + j0) * F_, n, F_, Eigen::OuterStride<>(F_));
  }

  // For query rows [i0, i0+m) and keys [j0, j0+n) of head h: P (the weights) and dS = dℓ ⊙ d log κ/ds,
  // with dℓ = P ⊙ (dO·Vᵀ − D_i); false when the mask hides the whole block.
  bool block_gradient(const tensor_view<const T>& v, const tensor_view<const T>& d_out, index_t b, index_t h,
                      index_t hk, index_t i0, index_t m, index_t j0, index_t n, block_matrix& p, block_matrix& ds) const {
    const tile_state state = masks_.tile(b, h, i0, i0 + m, j0, j0 + n);
    if (state == tile_state::empty) return false;
    block_matrix scores = query_features(b, h, i0, m) * key_features(b, hk, j0, n).transpose();
    p.resize(m, n);
    const T* key_term = key_term_.data() + (b * s_.kv_heads + hk) * s_.k_len + j0;
    constexpr index_t W = simd::width<T>;
    for (index_t r = 0; r < m; ++r) {
      T* row = p.data() + r * n;
      for (index_t j = 0; j < n; ++j) row[j] = kernel_.log_kernel(scores(r, j)) + key_term[j];
      if (state == tile_state::partial) masks_.apply(b, h, i0 + r, j0, n, row);
      const T shift = shift_[(b * s_.q_heads + h) * s_.q_len + i0 + r]; // +inf for a fully masked row
      const simd::batch<T> vshift(shift);
      index_t j = 0;
      for (; j + W <= n; j += W) simd::store(row + j, xsimd::exp(simd::load(row + j) - vshift));
      for (; j < n; ++j) row[j] = std::exp(row[j] - shift);
    }
    ds = view_rows(d_out, b, h, i0, m) * view_rows(v, b, hk, j0, n).transpose(); // dP
    const T* row_dot = row_dot_.data() + (b * s_.q_heads + h) * s_.q_len + i0;
    for (index_t r = 0; r < m; ++r)
      for (index_t j = 0; j < n; ++j)
        ds(r, j) = p(r, j) == T(0) ? T(0) : p(r, j) * (ds(r, j) - row_dot[r]) * kernel_.log_kernel_derivative(scores(r, j));
    return true;
  }

  void keys_pass(const tensor_view<const T>& k, const tensor_view<const T>& v, const tensor_view<const T>& d_out,
                 const attention_grads<T>& grads) {
    const index_t blocks = (s_.k_len + block - 1) / block;
    const index_t group = s_.q_heads / s_.kv_heads;
    block_matrix p, ds, dfk, dv_block;
    Eigen::Matrix<T, Eigen::Dynamic, 1> dterm;
#pragma omp for schedule(dynamic, 1)
    for (index_t task = 0; task < s_.batch * s_.kv_heads * blocks; ++task) {
      const index_t b = task / (s_.kv_heads * blocks), hk = (task / blocks) % s_.kv_heads, j0 = (task % blocks) * block;
      const index_t n = std::min<index_t>(block, s_.k_len - j0);
      dfk.setZero(n, F_);
      dterm.setZero(n);
      auto dv = view_rows(grads.dv, b, hk, j0, n);
      dv.setZero();
      for (index_t h = hk * group; h < (hk + 1) * group; ++h)
        for (index_t i0 = 0; i0 < s_.q_len; i0 += block) {
          const index_t m = std::min<index_t>(block, s_.q_len - i0);
          if (!block_gradient(v, d_out, b, h, hk, i0, m, j0, n, p, ds)) continue;
          dv_block.noalias() = p.transpose() * view_rows(d_out, b, h, i0, m);
          dv += dv_block;
          dfk.noalias() += ds.transpose() * query_features(b, h, i0, m);
          dterm += ds.colwise().sum().transpose(); // the key term enters ℓ with slope 1
        }
      for (index_t j = 0; j < n; ++j) {
        T* dx = grads.dk.row(b, hk, j0 + j);
        std::fill(dx, dx + s_.qk_dim, T(0));
        const T* x = k.row(b, hk, j0 + j);
        kernel_.prepare_key_backward(hk, x, dfk.data() + j * F_, double(dterm[j]), dx);
        norm_.magnitude_backward(x, double(dterm[j]), dx);
      }
    }
  }

  void queries_pass(const tensor_view<const T>& q, const tensor_view<const T>& v, const tensor_view<const T>& d_out,
                    const attention_grads<T>& grads) {
    const index_t blocks = (s_.q_len + block - 1) / block;
    block_matrix p, ds, dfq;
#pragma omp for schedule(dynamic, 1)
    for (index_t task = 0; task < s_.batch * s_.q_heads * blocks; ++task) {
      const index_t b = task / (s_.q_heads * blocks), h = (task / blocks) % s_.q_heads, i0 = (task % blocks) * block;
      const index_t m = std::min<index_t>(block, s_.q_len - i0);
      const index_t hk = Heads::kv_head(h, s_.q_heads, s_.kv_heads);
      dfq.setZero(m, F_);
      for (index_t j0 = 0; j0 < s_.k_len; j0 += block) {
        const index_t n = std::min<index_t>(block, s_.k_len - j0);
        if (block_gradient(v, d_out, b, h, hk, i0, m, j0, n, p, ds)) dfq.noalias() += ds * key_features(b, hk, j0, n);
      }
      for (index_t r = 0; r < m; ++r) {
        T* dx = grads.dq.row(b, h, i0 + r);
        std::fill(dx, dx + s_.qk_dim, T(0));
        // Σ_j dℓ_ij = 0: the query's own term gets no gradient
        kernel_.prepare_query_backward(h, q.row(b, h, i0 + r), dfq.data() + r * F_, 0.0, dx);
      }
    }
  }

  attention_shape s_;
  bound_kernel kernel_;
  bound_norm norm_;
  masks_type masks_;
  index_t F_;
  std::vector<T> fq_, fk_, key_term_, shift_, row_dot_;
};

} // namespace detail

// Gradients of the attention output given d_out, from the forward's out and log-sum-exp (the
// `lse` option of ika::attention). Same contract and policies as ika::attention.
template <class Heads = grouped_heads, class Q, class K, class V, class T, class Kernel, class Norm, class... Masks>
void attention_backward(tensor_view<Q> q, tensor_view<K> k, tensor_view<V> v, tensor_view<const T> out,
                        row_stat_view<const T> lse, tensor_view<const T> d_out,
                        const logit_expression<Kernel, Norm, Masks...>& logit, const attention_grads<T>& grads,
                        int threads = 0) {
  static_assert(std::is_same_v<Kernel, rbf> || std::is_same_v<Kernel, dot_product>,
                "ika::attention_backward: the fused backward supports the rbf and dot_product kernels so far");
  static_assert(!(detail::is_sparse_mask<decltype(std::declval<const Masks&>().bind(attention_shape{}))> || ...),
                "ika::attention_backward: graph masks are not supported by the fused backward yet");
  detail::check_value_types<Q, K, V, T>();
  const attention_shape shape = detail::check_attention_args<Heads>(q, k, v, out, attention_options<const T>{{}, threads});
  auto same = [](const auto& a, const auto& b) {
    return a.batch == b.batch && a.heads == b.heads && a.rows == b.rows && a.cols == b.cols;
  };
  detail::require(same(out, d_out) && out.cols == v.cols && out.rows == q.rows && out.heads == q.heads, "d_out",
                  "out and d_out of shape (B, Hq, Lq, Dv)");
  detail::require(lse.batch == q.batch && lse.heads == q.heads && lse.rows == q.rows, "lse", "(B, Hq, Lq) from the forward");
  detail::require(same(grads.dq, q) && same(grads.dk, k) && same(grads.dv, v), "grads",
                  "dq, dk, dv of the shapes of q, k, v");
  detail::fused_backward_engine<T, Heads, Kernel, Norm, Masks...> engine(shape, logit);
  engine.run(q, k, v, out, lse, d_out, grads, detail::thread_team(threads));
}

} // namespace ika
