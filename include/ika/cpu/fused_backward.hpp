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
// Every kernel, norm, mask and head structure of the forward is covered. Spectral points get
// their gradient through the projections z = Ωᵀx: each row's dz is kept, and one task per head
// sums x ⊗ dz; heads that share Ω are added in head order. The graph mask goes through its dense
// hooks here (O(Lq·Lk) work, not O(edges)).

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <tuple>
#include <type_traits>
#include <vector>

#include <Eigen/Core>

#include "ika/core/attention_args.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/cpu/fused.hpp"
#include "ika/kernels/random_fourier.hpp"
#include "ika/kernels/rbf.hpp"
#include "ika/masks/dense.hpp"
#include "ika/heads/heads.hpp"
#include "ika/simd/simd.hpp"

namespace ika {

// Where the gradients go; each has the shape of its input. They are overwritten, not added to.
// The optional ones are written when given (a non-null data pointer):
//   dspectral  the kernel's spectral points (Ω; or W₁, W₂), each of the shape the kernel holds;
//   dbias      the first additive_bias mask of the expression, of that bias's sizes;
//   dp         d/dp of the lp norm's exponent p (a learnable p).
template <class T>
struct attention_grads {
  tensor_view<T> dq, dk, dv;
  std::array<spectral_view<T>, 2> dspectral{};
  dense_view<T> dbias{};
  T* dp = nullptr;
};

namespace detail {

// Kernels whose features come from spectral points have the feature_backward hook (dφ → dx and
// dz, the gradient of the projections z = Ωᵀx) and add_spectral_gradient (Σ x ⊗ dz → dΩ).
template <class Bound>
concept spectral_bound_kernel = requires(const Bound& k) {
  k.projection_dim();
  k.spectral_heads();
  Bound::spectral_tensors;
};

template <class... Masks>
constexpr int first_additive_bias() {
  constexpr bool found[] = {is_additive_bias<Masks>..., false};
  for (int i = 0; i < int(sizeof...(Masks)); ++i)
    if (found[i]) return i;
  return -1;
}

template <class T, class Heads, class Kernel, class Norm, class... Masks>
class fused_backward_engine {
  using bound_kernel = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  using bound_norm = decltype(std::declval<const Norm&>().template bind<T>(index_t{}));
  using masks_type = mask_set<decltype(std::declval<const Masks&>().bind(std::declval<const attention_shape&>()))...>;
  static constexpr T minus_inf = -std::numeric_limits<T>::infinity();
  static constexpr int block = 32;
  static constexpr bool identity_log_kernel = requires { bound_kernel::log_kernel_is_identity; };
  static constexpr bool spectral_kernel = spectral_bound_kernel<bound_kernel>;
  static constexpr int bias_index = first_additive_bias<Masks...>();

public:
  fused_backward_engine(const attention_shape& shape, const logit_expression<Kernel, Norm, Masks...>& logit)
      : s_(shape), kernel_(logit.kernel.template bind<T>(shape.q_heads, shape.qk_dim)),
        norm_(logit.norm.template bind<T>(shape.qk_dim)),
        masks_{std::apply([&](const auto&... m) { return std::make_tuple(m.bind(shape)...); }, logit.masks)},
        F_(kernel_.feature_dim()), feature_heads_(Kernel::head_dependent ? shape.q_heads : shape.kv_heads) {
    if constexpr (spectral_kernel) Z_ = kernel_.projection_dim();
    if constexpr (bias_index >= 0) bias_sizes_ = std::get<bias_index>(logit.masks).values.sizes;
  }

  void run(const tensor_view<const T>& q, const tensor_view<const T>& k, const tensor_view<const T>& v,
           const tensor_view<const T>& out, const row_stat_view<const T>& lse, const tensor_view<const T>& d_out,
           const attention_grads<T>& grads, [[maybe_unused]] int team) {
    const index_t B = s_.batch, Hq = s_.q_heads, Hkv = s_.kv_heads, Lq = s_.q_len, Lk = s_.k_len, Hf = feature_heads_;
    // per-row data shared by the passes: features, terms, D_i = do_i·o_i
    fq_.assign(std::size_t(B * Hq * Lq * F_), T(0));
    fk_.assign(std::size_t(B * Hf * Lk * F_), T(0));
    key_term_.assign(std::size_t(B * Hf * Lk), T(0));
    shift_.assign(std::size_t(B * Hq * Lq), T(0));
    row_dot_.assign(std::size_t(B * Hq * Lq), T(0));
    if constexpr (spectral_kernel) {
      dzq_.assign(std::size_t(B * Hq * Lq * Z_), T(0));
      dzk_.assign(std::size_t(B * Hq * Lk * Z_), T(0));
    }
    key_dterm_.assign(grads.dp ? std::size_t(B * Hkv * Lk) : 0, T(0));
    const bool spectral_wanted = grads.dspectral[0].data != nullptr;
    if (spectral_wanted) spectral_partials_.assign(std::size_t(Hq * s_.qk_dim * Z_), T(0));
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
      // key features per feature head: the kv head, or every query head for head-dependent kernels
#pragma omp for schedule(static)
      for (index_t r = 0; r < B * Hf * Lk; ++r) {
        const index_t b = r / (Hf * Lk), hf = (r / Lk) % Hf, j = r % Lk;
        const index_t hk = Kernel::head_dependent ? Heads::kv_head(hf, Hq, Hkv) : hf;
        const T* x = k.row(b, hk, j);
        key_term_[r] = T(kernel_.prepare_key(hf, x, fk_.data() + r * F_) + norm_.magnitude(x));
      }
      keys_pass(k, v, d_out, grads);
      queries_pass(q, v, d_out, grads);
      if (grads.dbias.data) bias_pass(v, d_out, grads.dbias);
      if (spectral_wanted) spectral_pass(q, k);
    }
    if (spectral_wanted) write_spectral(grads.dspectral);
    if constexpr (requires(const T* x) { norm_.magnitude_p_derivative(x); }) {
      if (!grads.dp) return;
      // Σ_j (Σ_i dℓ_ij) ∂μ(k_j)/∂p in a fixed order; the query term's share is Σ_j dℓ_ij = 0
      double dp = 0;
      for (index_t r = 0; r < B * Hkv * Lk; ++r)
        if (key_dterm_[r] != T(0))
          dp += double(key_dterm_[r]) * norm_.magnitude_p_derivative(k.row(r / (Hkv * Lk), (r / Lk) % Hkv, r % Lk));
      *grads.dp = T(dp);
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
  const_rows key_features(index_t b, index_t hf, index_t j0, index_t n) const {
    return const_rows(fk_.data() + ((b * feature_heads_ + hf) * s_.k_len + j0) * F_, n, F_, Eigen::OuterStride<>(F_));
  }
  index_t feature_head(index_t h, index_t hk) const { return Kernel::head_dependent ? h : hk; }

  // One thread's blocks: pairwise scores S, weights P, dℓ and dS.
  struct block_workspace {
    block_matrix scores, p, dl, ds;
  };

  // For query rows [i0, i0+m) of head h and keys [j0, j0+n): the weights P, dℓ = P ⊙ (dO·Vᵀ − D_i)
  // and dS = dℓ ⊙ d log κ/ds (dS is dℓ itself when log κ = s); false when the mask hides the block.
  bool block_gradient(const tensor_view<const T>& v, const tensor_view<const T>& d_out, index_t b, index_t h,
                      index_t hk, index_t i0, index_t m, index_t j0, index_t n, block_workspace& w) const {
    auto& [scores, p, dl, ds] = w;
    const tile_state state = masks_.tile(b, h, i0, i0 + m, j0, j0 + n);
    if (state == tile_state::empty) return false;
    const index_t hf = feature_head(h, hk);
    const auto fq = query_features(b, h, i0, m);
    const auto fk = key_features(b, hf, j0, n);
    if constexpr (Kernel::pairwise == pairwise_op::dot) {
      scores.noalias() = fq * fk.transpose();
    } else {
      scores.resize(m, n);
      for (index_t r = 0; r < m; ++r)
        for (index_t j = 0; j < n; ++j) scores(r, j) = (fq.row(r) - fk.row(j)).cwiseAbs().sum();
    }
    p.resize(m, n);
    const T* key_term = key_term_.data() + (b * feature_heads_ + hf) * s_.k_len + j0;
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
    dl.noalias() = view_rows(d_out, b, h, i0, m) * view_rows(v, b, hk, j0, n).transpose(); // dP
    const T* row_dot = row_dot_.data() + (b * s_.q_heads + h) * s_.q_len + i0;
    for (index_t r = 0; r < m; ++r)
      for (index_t j = 0; j < n; ++j) dl(r, j) = p(r, j) == T(0) ? T(0) : p(r, j) * (dl(r, j) - row_dot[r]);
    if constexpr (!identity_log_kernel) {
      ds.resize(m, n);
      for (index_t r = 0; r < m; ++r)
        for (index_t j = 0; j < n; ++j)
          ds(r, j) = dl(r, j) == T(0) ? T(0) : dl(r, j) * kernel_.log_kernel_derivative(scores(r, j));
    }
    return true;
  }
  static const block_matrix& score_gradient(const block_workspace& w) {
    if constexpr (identity_log_kernel) return w.dl;
    else return w.ds;
  }

  // The pairwise op's pull-back: dFq += ∂S/∂Fq · dS, dFk += ∂S/∂Fk · dS
  void pairwise_backward_queries(const block_matrix& ds, const const_rows& fq, const const_rows& fk, block_matrix& dfq) const {
    if constexpr (Kernel::pairwise == pairwise_op::dot) {
      dfq.noalias() += ds * fk;
    } else {
      for (index_t r = 0; r < ds.rows(); ++r)
        for (index_t j = 0; j < ds.cols(); ++j)
          if (ds(r, j) != T(0)) dfq.row(r) += ds(r, j) * (fq.row(r) - fk.row(j)).array().sign().matrix();
    }
  }
  void pairwise_backward_keys(const block_matrix& ds, const const_rows& fq, const const_rows& fk, block_matrix& dfk) const {
    if constexpr (Kernel::pairwise == pairwise_op::dot) {
      dfk.noalias() += ds.transpose() * fq;
    } else {
      for (index_t r = 0; r < ds.rows(); ++r)
        for (index_t j = 0; j < ds.cols(); ++j)
          if (ds(r, j) != T(0)) dfk.row(j) -= ds(r, j) * (fq.row(r) - fk.row(j)).array().sign().matrix();
    }
  }

  // dx of one prepared row (features dfeatures, row term dterm) for head h; spectral kernels also
  // leave dz, the gradient of the row's projections, for the spectral pass.
  void row_backward(bool query, index_t h, const T* x, const T* dfeatures, double dterm, T* dx, T* dz) const {
    if constexpr (spectral_kernel) {
      kernel_.feature_backward(h, x, dfeatures, dx, dz);
    } else if (query) {
      kernel_.prepare_query_backward(h, x, dfeatures, dterm, dx);
    } else {
      kernel_.prepare_key_backward(h, x, dfeatures, dterm, dx);
    }
  }

  void keys_pass(const tensor_view<const T>& k, const tensor_view<const T>& v, const tensor_view<const T>& d_out,
                 const attention_grads<T>& grads) {
    const index_t blocks = (s_.k_len + block - 1) / block;
    const index_t group = s_.q_heads / s_.kv_heads;
    block_workspace w;
    block_matrix dfk, dv_block;
    Eigen::Matrix<T, Eigen::Dynamic, 1> dterm;
#pragma omp for schedule(dynamic, 1)
    for (index_t task = 0; task < s_.batch * s_.kv_heads * blocks; ++task) {
      const index_t b = task / (s_.kv_heads * blocks), hk = (task / blocks) % s_.kv_heads, j0 = (task % blocks) * block;
      const index_t n = std::min<index_t>(block, s_.k_len - j0);
      auto dv = view_rows(grads.dv, b, hk, j0, n);
      dv.setZero();
      view_rows(grads.dk, b, hk, j0, n).setZero();
      // per query head of the group: its features may differ (spectral points per query head)
      for (index_t h = hk * group; h < (hk + 1) * group; ++h) {
        const index_t hf = feature_head(h, hk);
        dfk.setZero(n, F_);
        dterm.setZero(n);
        for (index_t i0 = 0; i0 < s_.q_len; i0 += block) {
          const index_t m = std::min<index_t>(block, s_.q_len - i0);
          if (!block_gradient(v, d_out, b, h, hk, i0, m, j0, n, w)) continue;
          dv_block.noalias() = w.p.transpose() * view_rows(d_out, b, h, i0, m);
          dv += dv_block;
          pairwise_backward_keys(score_gradient(w), query_features(b, h, i0, m), key_features(b, hf, j0, n), dfk);
          dterm += w.dl.colwise().sum().transpose(); // the key term enters ℓ with slope 1
        }
        for (index_t j = 0; j < n; ++j) {
          T* dx = grads.dk.row(b, hk, j0 + j);
          const T* x = k.row(b, hk, j0 + j);
          T* dz = spectral_kernel ? dzk_.data() + ((b * s_.q_heads + h) * s_.k_len + j0 + j) * Z_ : nullptr;
          row_backward(false, h, x, dfk.data() + j * F_, double(dterm[j]), dx, dz);
          norm_.magnitude_backward(x, double(dterm[j]), dx);
          if (grads.dp) key_dterm_[std::size_t((b * s_.kv_heads + hk) * s_.k_len + j0 + j)] += dterm[j];
        }
      }
    }
  }

  void queries_pass(const tensor_view<const T>& q, const tensor_view<const T>& v, const tensor_view<const T>& d_out,
                    const attention_grads<T>& grads) {
    const index_t blocks = (s_.q_len + block - 1) / block;
    block_workspace w;
    block_matrix dfq;
#pragma omp for schedule(dynamic, 1)
    for (index_t task = 0; task < s_.batch * s_.q_heads * blocks; ++task) {
      const index_t b = task / (s_.q_heads * blocks), h = (task / blocks) % s_.q_heads, i0 = (task % blocks) * block;
      const index_t m = std::min<index_t>(block, s_.q_len - i0);
      const index_t hk = Heads::kv_head(h, s_.q_heads, s_.kv_heads), hf = feature_head(h, hk);
      dfq.setZero(m, F_);
      for (index_t j0 = 0; j0 < s_.k_len; j0 += block) {
        const index_t n = std::min<index_t>(block, s_.k_len - j0);
        if (block_gradient(v, d_out, b, h, hk, i0, m, j0, n, w))
          pairwise_backward_queries(score_gradient(w), query_features(b, h, i0, m), key_features(b, hf, j0, n), dfq);
      }
      for (index_t r = 0; r < m; ++r) {
        T* dx = grads.dq.row(b, h, i0 + r);
        std::fill(dx, dx + s_.qk_dim, T(0));
        T* dz = spectral_kernel ? dzq_.data() + ((b * s_.q_heads + h) * s_.q_len + i0 + r) * Z_ : nullptr;
        // Σ_j dℓ_ij = 0: the query's own term gets no gradient
        row_backward(true, h, q.row(b, h, i0 + r), dfq.data() + r * F_, 0.0, dx, dz);
      }
    }
  }

  // dbias: one task per row (bb, hh, ii) of the bias, summing dℓ over the (b, h, i) it broadcasts
  // to in a fixed order, so no two tasks write the same element.
  void bias_pass(const tensor_view<const T>& v, const tensor_view<const T>& d_out, const dense_view<T>& dbias) {
    const auto& sz = bias_sizes_;
    block_workspace w;
#pragma omp for schedule(dynamic, 1)
    for (index_t row = 0; row < sz[0] * sz[1] * sz[2]; ++row) {
      const index_t bb = row / (sz[1] * sz[2]), hh = (row / sz[2]) % sz[1], ii = row % sz[2];
      for (index_t jj = 0; jj < sz[3]; ++jj) dbias(bb, hh, ii, jj) = T(0);
      for (index_t b = sz[0] == 1 ? 0 : bb; b < (sz[0] == 1 ? s_.batch : bb + 1); ++b)
        for (index_t h = sz[1] == 1 ? 0 : hh; h < (sz[1] == 1 ? s_.q_heads : hh + 1); ++h)
          for (index_t i = sz[2] == 1 ? 0 : ii; i < (sz[2] == 1 ? s_.q_len : ii + 1); ++i)
            for (index_t j0 = 0; j0 < s_.k_len; j0 += block) {
              const index_t n = std::min<index_t>(block, s_.k_len - j0);
              if (!block_gradient(v, d_out, b, h, Heads::kv_head(h, s_.q_heads, s_.kv_heads), i, 1, j0, n, w)) continue;
              for (index_t j = 0; j < n; ++j) dbias(bb, hh, ii, sz[3] == 1 ? 0 : j0 + j) += w.dl(0, j);
            }
    }
  }

  // Per query head h: G_h = Σ_b Q_bhᵀ dZq_bh + K_b,kv(h)ᵀ dZk_bh (D × Z), one task per head;
  // write_spectral then adds them to the spectral points' gradients in head order.
  void spectral_pass(const tensor_view<const T>& q, const tensor_view<const T>& k) {
    if constexpr (spectral_kernel) {
      const index_t D = s_.qk_dim;
      using dz_rows = Eigen::Map<const matrix>;
#pragma omp for schedule(dynamic, 1)
      for (index_t h = 0; h < s_.q_heads; ++h) {
        const index_t hk = Heads::kv_head(h, s_.q_heads, s_.kv_heads);
        Eigen::Map<matrix> G(spectral_partials_.data() + h * D * Z_, D, Z_);
        for (index_t d0 = 0; d0 < D; d0 += block) { // destinations of at most 32 rows (see block_matrix)
          const index_t nd = std::min<index_t>(block, D - d0);
          auto g = G.middleRows(d0, nd);
          for (index_t b = 0; b < s_.batch; ++b) {
            for (index_t i0 = 0; i0 < s_.q_len; i0 += block) {
              const index_t m = std::min<index_t>(block, s_.q_len - i0);
              g.noalias() += view_rows(q, b, h, i0, m).middleCols(d0, nd).transpose() *
                             dz_rows(dzq_.data() + ((b * s_.q_heads + h) * s_.q_len + i0) * Z_, m, Z_);
            }
            for (index_t j0 = 0; j0 < s_.k_len; j0 += block) {
              const index_t n = std::min<index_t>(block, s_.k_len - j0);
              g.noalias() += view_rows(k, b, hk, j0, n).middleCols(d0, nd).transpose() *
                             dz_rows(dzk_.data() + ((b * s_.q_heads + h) * s_.k_len + j0) * Z_, n, Z_);
            }
          }
        }
      }
    }
  }

  void write_spectral(const std::array<spectral_view<T>, 2>& out) const {
    if constexpr (spectral_kernel) {
      for (int t = 0; t < bound_kernel::spectral_tensors; ++t) {
        const auto& o = out[std::size_t(t)];
        for (index_t h = 0; h < o.heads; ++h)
          for (index_t d = 0; d < o.dim; ++d)
            for (index_t m = 0; m < o.count; ++m) o(h, d, m) = T(0);
      }
      for (index_t h = 0; h < s_.q_heads; ++h)
        kernel_.add_spectral_gradient(kernel_.spectral_heads() == 1 ? 0 : h, spectral_partials_.data() + h * s_.qk_dim * Z_,
                                      Z_, out);
    }
  }

  attention_shape s_;
  bound_kernel kernel_;
  bound_norm norm_;
  masks_type masks_;
  index_t F_, feature_heads_, Z_ = 0;
  std::array<index_t, 4> bias_sizes_{};
  std::vector<T> fq_, fk_, key_term_, shift_, row_dot_, dzq_, dzk_, key_dterm_, spectral_partials_;
};

template <class T, class Kernel, class Norm, class... Masks>
void check_optional_grads(const attention_shape& shape, const logit_expression<Kernel, Norm, Masks...>& logit,
                          const attention_grads<T>& grads) {
  for (int t = 0; t < 2; ++t) {
    const spectral_view<T>& g = grads.dspectral[std::size_t(t)];
    if (!g.data) continue;
    if constexpr (requires { spectral_points(logit.kernel); }) {
      const auto points = spectral_points(logit.kernel)[std::size_t(t)];
      require(points.data != nullptr, "grads.dspectral", "a null view at index ", t, ": the kernel has ",
              t == 0 ? 0 : 1, " spectral tensor(s)");
      require(g.heads == points.heads && g.dim == points.dim && g.count == points.count, "grads.dspectral",
              "the shape of the kernel's spectral points (", points.heads, ", ", points.dim, ", ", points.count,
              ") at index ", t, ", got (", g.heads, ", ", g.dim, ", ", g.count, ")");
    } else {
      require(false, "grads.dspectral", "null views: this kernel has no spectral points");
    }
  }
  if (grads.dbias.data) {
    constexpr int index = first_additive_bias<Masks...>();
    if constexpr (index >= 0) {
      const auto& sizes = std::get<index>(logit.masks).values.sizes;
      require(grads.dbias.sizes == sizes, "grads.dbias", "the sizes of the additive bias (", sizes[0], ", ", sizes[1],
              ", ", sizes[2], ", ", sizes[3], "), got (", grads.dbias.sizes[0], ", ", grads.dbias.sizes[1], ", ",
              grads.dbias.sizes[2], ", ", grads.dbias.sizes[3], ")");
    } else {
      require(false, "grads.dbias", "a null view: the expression has no additive_bias mask");
    }
  }
  if (grads.dp) {
    if constexpr (std::is_same_v<Norm, lp>)
      require(std::isfinite(logit.norm.p), "grads.dp", "a finite p for a learnable p, got p = ", logit.norm.p);
    else
      require(false, "grads.dp", "nullptr: only the lp norm has an exponent p");
  }
  (void)shape;
}

} // namespace detail

// Gradients of the attention output given d_out, from the forward's out and log-sum-exp (the
// `lse` option of ika::attention). Same contract and policies as ika::attention.
template <class Heads = grouped_heads, class Q, class K, class V, class T, class Kernel, class Norm, class... Masks>
void attention_backward(tensor_view<Q> q, tensor_view<K> k, tensor_view<V> v, tensor_view<const T> out,
                        row_stat_view<const T> lse, tensor_view<const T> d_out,
                        const logit_expression<Kernel, Norm, Masks...>& logit, const attention_grads<T>& grads,
                        int threads = 0) {
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
  detail::check_optional_grads(shape, logit, grads);
  detail::fused_backward_engine<T, Heads, Kernel, Norm, Masks...> engine(shape, logit);
  engine.run(q, k, v, out, lse, d_out, grads, detail::thread_team(threads));
}

} // namespace ika
