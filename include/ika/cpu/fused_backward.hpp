// SPDX-License-Identifier: MIT
#pragma once

// The fused CPU backward, FlashAttention-2 style: nothing Lq × Lk is stored; the weights are
// recomputed from the forward's log-sum-exp,
//   p_ij = exp(ℓ_ij + c_i − lse_i),  dℓ_ij = p_ij (do_i·v_j − do_i·o_i),  dS_ij = dℓ_ij · d log κ/ds,
// in one pass over key blocks, with the forward's packed panels and micro-kernels:
//   1. per-row data (parallel over blocks of rows): query and key features, d_out, and their
//      packed forms (key panels [F][NR], value panels [Dv][NR], query features and d_out
//      transposed per query block), the key terms b_j, shift_i = lse_i − c_i, D_i = do_i·o_i;
//   2. keys pass, one task per (batch, kv head, chunk of key blocks): for each key block of KB keys,
//      each query head of the group and each block of QB query rows
//        S = Fq·Fkᵀ, dP = dO·Vᵀ           tile_product over the key / value panels (MR rows at a time)
//        P, dℓ, dS, Σ_i dℓ_ij            element-wise, masks applied as in the forward
//        dq_c += dS·Fk                   accumulate_pv into the chunk's dq partial
//        dVᵀ += dOᵀ·P, dFkᵀ += Fqᵀ·dS     accumulate_pv into the key block's accumulators
//      then dv, and dk through the key features and the key term (kernel row term + magnitude);
//   3. queries pass (parallel over rows): dq_i = Σ_c dq_c,i in chunk order, through the query features.
// The number of chunks depends on the shape only, every output element is written by one task
// and every sum has a fixed order: gradients are bitwise identical for any thread count.
// The query term c_i gets no gradient: Σ_j dℓ_ij = 0.
//
// Every kernel, norm, mask and head structure of the forward is covered. Spectral points get
// their gradient through the projections z = Ωᵀx: each row's dz is kept, and one task per head
// sums x ⊗ dz; heads that share Ω are added in head order. The graph mask goes through its dense
// hooks here (O(Lq·Lk) work, not O(edges)); the laplacian's L1 pull-back is a plain loop.

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
#include "ika/norms/magnitude_dropout.hpp"
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
  static constexpr bool magnitude_dropout = (false || ... || is_magnitude_dropout_term<Masks>);
  using blocking = engine_blocking<T>;
  using V = simd::batch<T>;
  static constexpr index_t W = blocking::W, NR = blocking::NR, MR = blocking::MR;
  static constexpr index_t QB = 8 * MR; // query rows per block
  static constexpr index_t KB = 128;    // keys per block, a multiple of NR
  static_assert(KB % NR == 0);
  // The keys pass runs B·Hkv·chunks tasks; chunks (≥ 1, at most max_chunks) is chosen from the
  // shape alone so that there are about target_tasks of them, never from the thread count.
  static constexpr index_t target_tasks = 16, max_chunks = 8;
  using bound_kernel = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  using bound_norm = decltype(std::declval<const Norm&>().template bind<T>(index_t{}));
  using masks_type = mask_set<decltype(std::declval<const Masks&>().bind(std::declval<const attention_shape&>()))...>;
  static constexpr T minus_inf = -std::numeric_limits<T>::infinity();
  static constexpr T plus_inf = std::numeric_limits<T>::infinity();
  static constexpr bool identity_log_kernel = requires { bound_kernel::log_kernel_is_identity; };
  static constexpr bool spectral_kernel = spectral_bound_kernel<bound_kernel>;
  static constexpr bool dot_pairwise = Kernel::pairwise == pairwise_op::dot;
  static constexpr int bias_index = first_additive_bias<Masks...>();
  static constexpr index_t row_block = row_block_size<bound_kernel, T>;
  // The library's random-feature kernels (spectral_tensor_count > 0) hold packed spectral points
  // (w1, w2 or omega) and a feature scale: the backward pulls gradients back through their
  // feature maps for several rows at once (see spectral_rows_backward).
  static constexpr int feature_maps = spectral_tensor_count<Kernel>;
  // rows pulled back through the feature map together
  static constexpr index_t pull_rows = feature_maps > 0 ? packed_spectral<T>::rows : 4;

public:
  fused_backward_engine(const attention_shape& shape, const logit_expression<Kernel, Norm, Masks...>& logit)
      : s_(shape), kernel_(logit.kernel.template bind<T>(shape.q_heads, shape.qk_dim)),
        norm_(logit.norm.template bind<T>(shape.qk_dim)),
        masks_{std::apply([&](const auto&... m) { return std::make_tuple(m.bind(shape)...); }, logit.masks)},
        F_(kernel_.feature_dim()), feature_heads_(Kernel::head_dependent ? shape.q_heads : shape.kv_heads) {
    if constexpr (spectral_kernel) Z_ = kernel_.projection_dim();
    if constexpr (bias_index >= 0) bias_sizes_ = std::get<bias_index>(logit.masks).values.sizes;
    Fw_ = round_up(F_, W);
    Fr_ = round_up(F_, MR);
    Dvr_ = round_up(s_.v_dim, MR);
    q_blocks_ = (s_.q_len + QB - 1) / QB;
    lq_pad_ = q_blocks_ * QB;
    k_blocks_ = (s_.k_len + KB - 1) / KB;
    lk_pad_ = round_up(s_.k_len, NR);
    const index_t groups = s_.batch * s_.kv_heads;
    chunks_ = k_blocks_ == 0 || groups == 0
                  ? 0
                  : std::clamp<index_t>((target_tasks + groups - 1) / groups, 1, std::min(max_chunks, k_blocks_));
  }

  void run(const tensor_view<const T>& q, const tensor_view<const T>& k, const tensor_view<const T>& v,
           const tensor_view<const T>& out, const row_stat_view<const T>& lse, const tensor_view<const T>& d_out,
           const attention_grads<T>& grads, int threads) {
    const index_t B = s_.batch, Hq = s_.q_heads, Hkv = s_.kv_heads, Lq = s_.q_len, Lk = s_.k_len, Hf = feature_heads_;
    const std::size_t q_rows = std::size_t(B * Hq * lq_pad_), k_rows = std::size_t(B * Hf * lk_pad_);
    spectral_wanted_ = grads.dspectral[0].data != nullptr;
    const std::size_t dz_values = spectral_wanted_ ? std::size_t(Z_) : 0, omega_t_size = omega_transposed_size();
    // every per-call buffer in the calling thread's arena: fresh heap blocks of this size come
    // back as new pages in some heap states (backward_small/ in bench/results/blocking)
    const auto parts = scratch_arena::parts<fused_backward_engine, T, 17>(
        {q_rows * std::size_t(F_), q_rows * std::size_t(Fr_), q_rows * std::size_t(s_.v_dim), q_rows * std::size_t(Dvr_),
         q_rows, q_rows, k_rows * std::size_t(F_), k_rows * std::size_t(Fw_), k_rows,
         std::size_t(B * Hkv * lk_pad_ * s_.v_dim), std::size_t(chunks_) * q_rows * std::size_t(Fw_),
         std::size_t(B * Hq * Lq) * dz_values, std::size_t(B * Hq * Lk) * dz_values,
         std::size_t(Hq * s_.qk_dim) * dz_values, grads.dp ? std::size_t(B * Hkv * Lk) : 0, omega_t_size,
         feature_maps == 2 ? omega_t_size : 0});
    fq_ = parts[0];
    fqt_ = parts[1];
    do_ = parts[2];
    dot_ = parts[3];
    shift_ = parts[4];
    row_dot_ = parts[5];
    fkp_ = parts[6];
    fkr_ = parts[7];
    key_term_ = parts[8];
    vp_ = parts[9];
    dqp_ = parts[10];
    dzq_ = parts[11];
    dzk_ = parts[12];
    spectral_partials_ = parts[13];
    key_dterm_ = parts[14];
    omega_t_ = {parts[15], parts[16]};
    // zeros where no pass writes (rows of heads that share their keys' map, kernels' hooks that add)
    std::fill(dzq_, dzq_ + B * Hq * Lq * dz_values, T(0));
    std::fill(dzk_, dzk_ + B * Hq * Lk * dz_values, T(0));
    std::fill(spectral_partials_, spectral_partials_ + Hq * s_.qk_dim * dz_values, T(0));
    if (grads.dp) std::fill(key_dterm_, key_dterm_ + B * Hkv * Lk, T(0));
    if constexpr (feature_maps > 0) transpose_omega();
    if constexpr (magnitude_dropout) {
      const auto sums = scratch_arena::parts<dropout_sums, double, 2>({std::size_t(B * Hkv * Lk), std::size_t(B * Hq * Lq)});
      dropout_key_ = sums[0];
      dropout_query_ = sums[1];
      std::fill(dropout_key_, dropout_key_ + B * Hkv * Lk, 0.0);
      std::fill(dropout_query_, dropout_query_ + B * Hq * Lq, 0.0);
    }
    const double work = attention_work<bound_kernel>(s_, F_, B * Hf * Lk, /*pair_passes=*/2.5);
    // tasks: those of the keys pass, the largest phase
    run_in_team(thread_team(threads, work, B * Hkv * chunks_), [&] {
      prepare_queries(q, out, lse, d_out);
      prepare_keys(k, v);
      keys_pass(k, grads);
      queries_pass(q, grads);
      if (grads.dbias.data) bias_pass(v, grads.dbias);
      if (spectral_wanted_) spectral_pass(q, k);
      if constexpr (magnitude_dropout) dropout_pass(q, k, v, grads);
    });
    if (spectral_wanted_) write_spectral(grads.dspectral);
    if constexpr (requires(const T* x) { norm_.magnitude_p_derivative(x); }) {
      if (!grads.dp) return;
      // Σ_j (Σ_i dℓ_ij) ∂μ(k_j)/∂p in a fixed order; the query term's share is Σ_j dℓ_ij = 0
      double dp = 0;
      for (index_t r = 0; r < B * Hkv * Lk; ++r)
        if (key_dterm_[r] != T(0))
          dp += double(key_dterm_[r]) * norm_.magnitude_p_derivative(k.row(r / (Hkv * Lk), (r / Lk) % Hkv, r % Lk));
      if constexpr (magnitude_dropout) { // the dropout term's share, keys then queries
        for (index_t r = 0; r < B * Hkv * Lk; ++r)
          if (dropout_key_[std::size_t(r)] != 0)
            dp += dropout_key_[std::size_t(r)] * norm_.magnitude_p_derivative(k.row(r / (Hkv * Lk), (r / Lk) % Hkv, r % Lk));
        if (norm_.include_query)
          for (index_t r = 0; r < B * Hq * Lq; ++r)
            if (dropout_query_[std::size_t(r)] != 0)
              dp += dropout_query_[std::size_t(r)] *
                    norm_.magnitude_p_derivative(q.row(r / (Hq * Lq), (r / Lq) % Hq, r % Lq));
      }
      *grads.dp = T(dp);
    }
  }

private:
  index_t feature_head(index_t h, index_t hk) const { return Kernel::head_dependent ? h : hk; }

  void prepare_rows(index_t h, const T* const* x, index_t n, T* features, double* terms, bool queries) const {
    detail::prepare_rows(kernel_, F_, h, x, n, features, terms, queries);
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

  // row_backward for n <= pull_rows rows (features with row stride ldf; dterm may be null: zeros)
  void rows_backward(bool query, index_t h, const T* const* x, index_t n, const T* dfeatures, index_t ldf,
                     const T* dterm, T* const* dx, T* const* dz, T* scratch) const {
    if constexpr (feature_maps > 0) {
      spectral_rows_backward(h, x, n, dfeatures, ldf, dx, dz, scratch);
    } else {
      (void)scratch;
      for (index_t r = 0; r < n; ++r)
        row_backward(query, h, x[r], dfeatures + r * ldf, dterm ? double(dterm[r]) : 0.0, dx[r], dz[r]);
    }
  }

  std::array<const packed_spectral<T>*, 2> feature_map_list() const {
    if constexpr (feature_maps == 2) return {&kernel_.w1, &kernel_.w2};
    else if constexpr (feature_maps == 1) return {&kernel_.omega, nullptr};
    else return {};
  }
  // scratch values spectral_rows_backward needs
  std::size_t spectral_scratch_size() const {
    if constexpr (feature_maps > 0) return std::size_t(pull_rows * feature_map_list()[0]->padded);
    else return 0;
  }

  // values of one map's Ω transposed to [heads][M][Dw]
  std::size_t omega_transposed_size() const {
    if constexpr (feature_maps > 0) {
      const auto& map = *feature_map_list()[0];
      return std::size_t(map.heads * map.count * round_up(map.dim, W));
    } else {
      return 0;
    }
  }

  // Ω of each map and spectral head transposed to [M][Dw] (factor included, zero-padded), the
  // layout of spectral_rows_backward's dx products
  void transpose_omega() {
    const auto maps = feature_map_list();
    const index_t M = maps[0]->count, D = maps[0]->dim, Dw = round_up(D, W), heads = maps[0]->heads;
    for (int t = 0; t < feature_maps; ++t)
      for (index_t h = 0; h < heads; ++h) {
        T* out = omega_t_[std::size_t(t)] + h * M * Dw;
        for (index_t m = 0; m < M; ++m) std::fill(out + m * Dw + D, out + (m + 1) * Dw, T(0));
        for (index_t d = 0; d < D; ++d) {
          const T* points = maps[std::size_t(t)]->data + (h * D + d) * maps[std::size_t(t)]->padded;
          for (index_t m = 0; m < M; ++m) out[m * Dw + d] = points[m];
        }
      }
  }

  // The random-feature kernels' feature_backward for n <= pull_rows rows at once: per map
  // (a = Ωᵀx with the factor folded in, φ = scale·[Σ cos a, Σ sin a]),
  //   dz_m = scale·(cos a_m · dφ_{M+m} − sin a_m · dφ_m),   dx += Ω dz,
  // with the projections as the forward's small GEMM (packed_spectral::project), SIMD sincos and
  // dx as broadcast FMAs over Ωᵀ. The same formulas as the hook, evaluated in a different order.
  void spectral_rows_backward(index_t h, const T* const* x, index_t n, const T* dfeatures, index_t ldf, T* const* dx,
                              T* const* dz, T* scratch) const {
    if constexpr (feature_maps > 0) {
      // R × C accumulators for dx, within the register file like the projection's
      constexpr index_t R = packed_spectral<T>::rows, G = packed_spectral<T>::group, C = 2;
      static_assert(pull_rows == R);
      const auto maps = feature_map_list();
      const index_t M = maps[0]->count, P = maps[0]->padded, D = maps[0]->dim, Dw = round_up(D, W);
      const ika::detail::row_block<T, R> block(x, n);
      const V scale(kernel_.feature_scale);
      T* dzp = scratch; // [R][P]
      std::fill(dzp + n * P, dzp + R * P, T(0));
      V z[R * G];
      for (int t = 0; t < feature_maps; ++t) {
        const packed_spectral<T>& map = *maps[std::size_t(t)];
        for (index_t m0 = 0; m0 < P; m0 += G * W) {
          map.project(h, block.x, m0, z);
          for (index_t r = 0; r < n; ++r)
            for (index_t g = 0; g < G; ++g) {
              const index_t m = m0 + g * W;
              T* out = dzp + r * P + m;
              if (m >= M) {
                V(T(0)).store_aligned(out);
                continue;
              }
              const T* f = dfeatures + r * ldf;
              V dc, ds;
              if (m + W <= M) {
                dc = simd::load(f + m);
                ds = simd::load(f + M + m);
              } else { // the last points: lanes past M read zeros, so their dz is 0
                alignas(64) T a[W] = {}, b[W] = {};
                std::copy(f + m, f + M, a);
                std::copy(f + M + m, f + 2 * M, b);
                dc = V::load_aligned(a);
                ds = V::load_aligned(b);
              }
              const auto [sn, cs] = simd::sincos(z[r * G + g]);
              (scale * (cs * ds - sn * dc)).store_aligned(out);
            }
        }
        for (index_t r = 0; r < n; ++r) std::copy(dzp + r * P, dzp + r * P + M, dz[r] + t * M);
        const T* omega_t = omega_t_[std::size_t(t)] + (map.heads == 1 ? 0 : h) * M * Dw;
        for (index_t c0 = 0; c0 < Dw; c0 += C * W) {
          const index_t nc = std::min(C, (Dw - c0) / W);
          V acc[R][C];
          for (index_t r = 0; r < R; ++r)
            for (index_t c = 0; c < C; ++c) acc[r][c] = V(T(0));
          for (index_t m = 0; m < M; ++m) {
            V o[C];
            for (index_t c = 0; c < nc; ++c) o[c] = V::load_aligned(omega_t + m * Dw + c0 + c * W);
            for (index_t r = 0; r < R; ++r) {
              const V a(dzp[r * P + m]);
              for (index_t c = 0; c < nc; ++c) acc[r][c] = xsimd::fma(a, o[c], acc[r][c]);
            }
          }
          for (index_t r = 0; r < n; ++r)
            for (index_t c = 0; c < nc; ++c) {
              const index_t d0 = c0 + c * W;
              if (d0 + W <= D) {
                simd::store(dx[r] + d0, simd::load(dx[r] + d0) + acc[r][c]);
              } else {
                alignas(64) T lanes[W];
                acc[r][c].store_aligned(lanes);
                for (index_t d = d0; d < D; ++d) dx[r][d] += lanes[d - d0];
              }
            }
        }
      }
    } else {
      (void)h, (void)x, (void)n, (void)dfeatures, (void)ldf, (void)dx, (void)dz, (void)scratch;
    }
  }

  // dx += g · ∂μ(x)/∂x. For the lp norm with p ∈ {1, 2, 3, 4} the hook's formula (finite p)
  //   ∂μ/∂x_d = (r/p) s^(r/p − 1) / c · p |x_d|^(p−1) sign(x_d),  s = Σ |x_d|^p,
  // is evaluated with products instead of pow per element; other norms and p use the hook.
  void magnitude_backward(const T* x, double g, T* dx) const {
    if constexpr (std::is_same_v<bound_norm, lp::bound<T>>) {
      const double P = double(norm_.p);
      if (g != 0 && (P == 1 || P == 2 || P == 3 || P == 4)) {
        const int ip = int(P);
        auto power = [ip](double a) { // a^(ip − 1)
          return ip == 1 ? 1.0 : ip == 2 ? a : ip == 3 ? a * a : a * a * a;
        };
        double s = 0;
        for (index_t d = 0; d < norm_.dim; ++d) {
          const double a = std::abs(double(x[d]));
          s += a * power(a);
        }
        if (s == 0) return;
        const double dmu_ds = norm_.exponent / P * std::pow(s, norm_.exponent / P - 1) / norm_.divisor;
        const double scale = g * dmu_ds * P;
        for (index_t d = 0; d < norm_.dim; ++d) {
          const double xd = double(x[d]);
          if (xd != 0) dx[d] += T(scale * power(std::abs(xd)) * double((xd > 0) - (xd < 0)));
        }
        return;
      }
    }
    norm_.magnitude_backward(x, g, dx);
  }

  // -------- per-row data, one task per block of QB query rows or KB keys --------
  // Query rows (b, h, i) at row index (b·Hq + h)·lq_pad + i:
  //   fq_   features, row-major (stride F)            the A operand of S = Fq·Fkᵀ
  //   fqt_  features transposed per query block, [Fr][QB]   the A operand of dFkᵀ += Fqᵀ·dS
  //   do_   d_out rows (stride Dv)                     the A operand of dP = dO·Vᵀ
  //   dot_  d_out transposed per query block, [Dvr][QB]     the A operand of dVᵀ += dOᵀ·P
  //   shift_ = lse − c_i (+inf for fully masked and padding rows), row_dot_ = do_i·o_i
  // Padding rows and columns are zero. The dq partials of the rows are zeroed here.
  void prepare_queries(const tensor_view<const T>& q, const tensor_view<const T>& out, const row_stat_view<const T>& lse,
                       const tensor_view<const T>& d_out) {
    const index_t Hq = s_.q_heads, Dv = s_.v_dim, tasks = s_.batch * Hq * q_blocks_;
#pragma omp for schedule(dynamic, 1) nowait
    for (index_t task = 0; task < tasks; ++task) {
      const index_t qb = task % q_blocks_, bh = task / q_blocks_, b = bh / Hq, h = bh % Hq;
      const index_t i0 = qb * QB, n_rows = std::min(QB, s_.q_len - i0), base = bh * lq_pad_ + i0;
      T* fq = fq_ + base * F_;
      T* d_rows = do_ + base * Dv;
      const auto query_row = [&](index_t r) { return q.row(b, h, i0 + r); };
      for (index_t r0 = 0; r0 < n_rows; r0 += row_block) {
        const T* x[row_block];
        double terms[row_block];
        const index_t n = std::min(row_block, n_rows - r0);
        for (index_t r = 0; r < n; ++r) x[r] = query_row(r0 + r);
        prefetch_rows(query_row, r0 + row_block, std::min(n_rows, r0 + 2 * row_block), q.cols);
        prepare_rows(h, x, n, fq + r0 * F_, terms, /*queries=*/true);
        for (index_t r = 0; r < n; ++r) {
          const index_t i = i0 + r0 + r;
          const double term = terms[r] + (norm_.include_query ? norm_.magnitude(x[r]) : 0.0);
          // p_ij = exp(ℓ_ij − (lse_i − c_i)); a fully masked row has lse = −inf and no weights
          shift_[base + r0 + r] = lse(b, h, i) == minus_inf ? plus_inf : lse(b, h, i) - T(term);
          const T* g = d_out.row(b, h, i);
          row_dot_[base + r0 + r] = simd::dot(g, out.row(b, h, i), Dv);
          std::copy(g, g + Dv, d_rows + (r0 + r) * Dv);
        }
      }
      // the query blocks read rows up to the next multiple of MR only
      const index_t used = round_up(n_rows, MR);
      std::fill(fq + n_rows * F_, fq + used * F_, T(0));
      std::fill(d_rows + n_rows * Dv, d_rows + used * Dv, T(0));
      std::fill(shift_ + base + n_rows, shift_ + base + QB, plus_inf);
      std::fill(row_dot_ + base + n_rows, row_dot_ + base + QB, T(0));
      transpose_block(fq, F_, Fr_, fqt_ + base * Fr_, used);
      transpose_block(d_rows, Dv, Dvr_, dot_ + base * Dvr_, used);
      for (index_t c = 0; c < chunks_; ++c) {
        T* dq = dqp_ + (c * s_.batch * Hq * lq_pad_ + base) * Fw_;
        std::fill(dq, dq + used * Fw_, T(0));
      }
    }
  }

  // dst[c][r] = src[r][c] (row stride QB) for the first `used` rows of `cols` columns; columns up
  // to `rows_out` are zero there.
  static void transpose_block(const T* src, index_t cols, index_t rows_out, T* dst, index_t used) {
    if (used == QB) transpose_rows<QB>(src, cols, cols, dst);
    else
      for (index_t c = 0; c < cols; ++c)
        for (index_t r = 0; r < used; ++r) dst[c * QB + r] = src[r * cols + c];
    for (index_t c = cols; c < rows_out; ++c) std::fill(dst + c * QB, dst + c * QB + used, T(0));
  }

  // Keys (b, feature head hf, j) at key index (b·Hf + hf)·lk_pad + j:
  //   fkp_  features in panels of NR keys, [F][NR] (the forward's layout)   S = Fq·Fkᵀ
  //   fkr_  features row-major, stride Fw (zero-padded)                     dq += dS·Fk
  //   key_term_ = kernel row term + μ(k_j), −inf for padding keys
  // and values (b, kv head, j): vp_ in panels [Dv][NR]                      dP = dO·Vᵀ
  void prepare_keys(const tensor_view<const T>& k, const tensor_view<const T>& v) {
    const index_t Hf = feature_heads_, Dv = s_.v_dim;
    const index_t feature_tasks = s_.batch * Hf * k_blocks_, value_tasks = s_.batch * s_.kv_heads * k_blocks_;
    T* const rows = scratch_arena::parts<key_rows, T, 1>({std::size_t(key_block_size<bound_kernel, T> * F_)})[0];
#pragma omp for schedule(dynamic, 1) nowait
    for (index_t task = 0; task < feature_tasks + value_tasks; ++task) {
      const bool features = task < feature_tasks;
      const index_t t = features ? task : task - feature_tasks;
      const index_t kb = t % k_blocks_, bh = t / k_blocks_;
      const index_t j0 = kb * KB, j1 = std::min(j0 + KB, lk_pad_);
      if (!features) {
        const index_t b = bh / s_.kv_heads, hk = bh % s_.kv_heads;
        for (index_t p = j0; p < j1; p += NR) { // j0 and j1 are multiples of NR
          T* panel = vp_ + (bh * lk_pad_ + p) * Dv;
          if (p + NR <= s_.k_len) {
            pack_panel(v.row(b, hk, p), v.row_stride, Dv, panel);
            continue;
          }
          for (index_t j = p; j < p + NR; ++j) { // the last panel: padding keys are zero
            const T* x = j < s_.k_len ? v.row(b, hk, j) : nullptr;
            for (index_t d = 0; d < Dv; ++d) panel[d * NR + j - p] = x ? x[d] : T(0);
          }
        }
        continue;
      }
      const index_t b = bh / Hf, hf = bh % Hf;
      const index_t hk = Kernel::head_dependent ? Heads::kv_head(hf, s_.q_heads, s_.kv_heads) : hf;
      prepare_key_rows(kernel_, norm_, F_, hf, s_.k_len, j0, j1, [&](index_t j) { return k.row(b, hk, j); }, k.cols,
                       rows,
                       [&](index_t j, const T* f, double term) {
                         // padding keys: zero features, weight exp(−inf) = 0
                         const index_t key = bh * lk_pad_ + j;
                         T* row = fkr_ + key * Fw_;
                         key_term_[key] = T(term);
                         if (f) std::copy(f, f + F_, row);
                         else std::fill(row, row + F_, T(0));
                         std::fill(row + F_, row + Fw_, T(0));
                         // the panel's NR rows are complete (blocks of KB end on panels): pack them
                         if (j % NR == NR - 1)
                           pack_panel(row - (NR - 1) * Fw_, Fw_, F_, fkp_ + (bh * lk_pad_ + j - (NR - 1)) * F_);
                       });
    }
#pragma omp barrier
  }

  // -------- the keys pass: one task per (batch, kv head, chunk of key blocks) --------
  // one thread's buffers of the keys pass (the queries pass reuses frows, dz, spectral), from its scratch arena
  struct workspace {
    T *s, *dp, *dvt, *dfk, *dterm, *dterm_head, *logit, *deriv, *ones, *frows, *dz, *spectral;
  };
  workspace thread_workspace() const {
    const auto p = scratch_arena::parts<workspace, T, 12>(
        {std::size_t(QB * KB), std::size_t(QB * KB), std::size_t(Dvr_ * KB), std::size_t(std::max(Fr_, Fw_) * KB), KB, KB,
         KB, KB, MR, std::size_t(pull_rows * F_), std::size_t(pull_rows * std::max<index_t>(Z_, 1)),
         std::max<std::size_t>(spectral_scratch_size(), 1)});
    std::fill(p[8], p[8] + MR, T(1));
    return {p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]};
  }

  void keys_pass(const tensor_view<const T>& k, const attention_grads<T>& grads) {
    const workspace ws = thread_workspace();
    const index_t tasks = s_.batch * s_.kv_heads * chunks_;
#pragma omp for schedule(dynamic, 1)
    for (index_t task = 0; task < tasks; ++task) {
      const index_t c = task % chunks_, bhk = task / chunks_;
      // key blocks c, c + chunks, …: interleaved, so causal work spreads evenly over the chunks
      for (index_t kb = c; kb < k_blocks_; kb += chunks_)
        key_block(k, grads, bhk / s_.kv_heads, bhk % s_.kv_heads, c, kb, ws);
    }
  }

  // dv, dk of keys [j0, j0 + KB) of kv head hk, over every query of every query head of the group;
  // the dq contributions go to the partial of chunk c.
  void key_block(const tensor_view<const T>& k, const attention_grads<T>& grads, index_t b, index_t hk, index_t c,
                 index_t kb, const workspace& ws) {
    const index_t j0 = kb * KB, j1 = std::min(j0 + KB, s_.k_len), n = j1 - j0, kw = round_up(n, NR);
    const index_t dfk_size = dot_pairwise ? Fr_ * kw : kw * Fw_;
    std::fill(ws.dvt, ws.dvt + Dvr_ * kw, T(0));
    std::fill(ws.dterm, ws.dterm + kw, T(0));
    for (index_t j = j0; j < j1; ++j) std::fill(grads.dk.row(b, hk, j), grads.dk.row(b, hk, j) + s_.qk_dim, T(0));
    if (!Kernel::head_dependent) std::fill(ws.dfk, ws.dfk + dfk_size, T(0));
    for (index_t h = 0; h < s_.q_heads; ++h) {
      if (Heads::kv_head(h, s_.q_heads, s_.kv_heads) != hk) continue;
      T* dterm = ws.dterm;
      if (Kernel::head_dependent) {
        std::fill(ws.dfk, ws.dfk + dfk_size, T(0));
        std::fill(ws.dterm_head, ws.dterm_head + kw, T(0));
        dterm = ws.dterm_head;
      }
      for (index_t qb = 0; qb < q_blocks_; ++qb) {
        const index_t i0 = qb * QB, rows = std::min(QB, s_.q_len - i0);
        if (masks_.tile(b, h, i0, i0 + rows, j0, j1) == tile_state::empty) continue;
        query_block(b, h, hk, c, i0, rows, j0, j1, kw, dterm, ws);
      }
      if (Kernel::head_dependent) {
        pull_back_keys(k, grads, b, hk, h, j0, n, kw, ws.dterm_head, ws);
        for (index_t j = 0; j < kw; ++j) ws.dterm[j] += ws.dterm_head[j];
      }
    }
    if (!Kernel::head_dependent) pull_back_keys(k, grads, b, hk, hk, j0, n, kw, ws.dterm, ws);
    for (index_t j = 0; j < n; ++j) {
      // the key term enters ℓ with slope 1: μ(k_j) gets Σ_i dℓ_ij
      magnitude_backward(k.row(b, hk, j0 + j), double(ws.dterm[j]), grads.dk.row(b, hk, j0 + j));
      if (grads.dp) key_dterm_[std::size_t((b * s_.kv_heads + hk) * s_.k_len + j0 + j)] = ws.dterm[j];
      T* dv = grads.dv.row(b, hk, j0 + j);
      for (index_t d = 0; d < s_.v_dim; ++d) dv[d] = ws.dvt[d * kw + j];
    }
  }

  // dk += the pull-back of the accumulated feature gradients of keys [j0, j0 + n) through head h's
  // feature map (with their key-term gradients dterm).
  void pull_back_keys(const tensor_view<const T>& k, const attention_grads<T>& grads, index_t b, index_t hk, index_t h,
                      index_t j0, index_t n, index_t kw, const T* dterm, const workspace& ws) {
    for (index_t jb = 0; jb < n; jb += pull_rows) {
      const index_t rows = std::min(pull_rows, n - jb);
      const T* x[pull_rows];
      T* dx[pull_rows];
      T* dz[pull_rows];
      for (index_t r = 0; r < rows; ++r) {
        const index_t j = jb + r;
        if constexpr (dot_pairwise)
          for (index_t f = 0; f < F_; ++f) ws.frows[std::size_t(r * F_ + f)] = ws.dfk[std::size_t(f * kw + j)];
        else
          std::copy(ws.dfk + j * Fw_, ws.dfk + j * Fw_ + F_, ws.frows + r * F_);
        x[r] = k.row(b, hk, j0 + j);
        dx[r] = grads.dk.row(b, hk, j0 + j);
        dz[r] = ws.dz + r * std::max<index_t>(Z_, 1);
        if constexpr (spectral_kernel)
          if (spectral_wanted_) dz[r] = dzk_ + ((b * s_.q_heads + h) * s_.k_len + j0 + j) * Z_;
      }
      rows_backward(false, h, x, rows, ws.frows, F_, dterm + jb, dx, dz, ws.spectral);
    }
  }

  // One query block (rows [i0, i0 + rows) of head h) against one key block: per MR rows, the
  // scores S and dP = dO·Vᵀ (the forward's micro-kernel over packed panels), then P, dℓ, dS and
  // dq += dS·Fk; then for the whole block dVᵀ += dOᵀ·P and dFkᵀ += Fqᵀ·dS.
  void query_block(index_t b, index_t h, index_t hk, index_t c, index_t i0, index_t rows, index_t j0, index_t j1,
                   index_t kw, T* dterm, const workspace& ws) const {
    const index_t Dv = s_.v_dim, bh = b * s_.q_heads + h, base = bh * lq_pad_ + i0;
    const index_t fh = b * feature_heads_ + feature_head(h, hk);
    const T* fq = fq_ + base * F_;
    const T* d_rows = do_ + base * Dv;
    const T* panels = fkp_ + (fh * lk_pad_ + j0) * F_;
    const T* v_panels = vp_ + ((b * s_.kv_heads + hk) * lk_pad_ + j0) * Dv;
    const T* fk_rows = fkr_ + (fh * lk_pad_ + j0) * Fw_;
    const T* key_term = key_term_ + fh * lk_pad_ + j0;
    T* dq = dqp_ + (c * s_.batch * s_.q_heads * lq_pad_ + base) * Fw_;
    const index_t padded_rows = round_up(rows, MR);
    for (index_t r0 = 0; r0 < padded_rows; r0 += MR) {
      const index_t block_rows = std::min(MR, rows - r0);
      T* s = ws.s + r0 * kw;
      T* dp = ws.dp + r0 * kw;
      const tile_state state = masks_.tile(b, h, i0 + r0, i0 + r0 + block_rows, j0, j1);
      // keys past the last one any row of the block can see are not computed (causal diagonal)
      const index_t visible_end =
          state == tile_state::empty ? j0 : std::min(j1, masks_.key_end(b, h, i0 + r0, i0 + r0 + block_rows, j1));
      if (visible_end <= j0) {
        std::fill(s, s + MR * kw, T(0));
        std::fill(dp, dp + MR * kw, T(0));
        continue;
      }
      const index_t panel_count = (visible_end - j0 + NR - 1) / NR, keys = panel_count * NR;
      tile_product<T, Kernel::pairwise>(fq + r0 * F_, F_, panels, panel_count, F_, raw_scores<T>{s, kw});
      tile_product<T, pairwise_op::dot>(d_rows + r0 * Dv, Dv, v_panels, panel_count, Dv, raw_scores<T>{dp, kw});
      weights(b, h, i0 + r0, j0, j1, keys, kw, block_rows, state, s, dp, key_term, shift_ + base + r0,
              row_dot_ + base + r0, dterm, ws);
      if constexpr (dot_pairwise) {
        accumulate_pv(dq + r0 * Fw_, Fw_, ws.ones, dp, kw, fk_rows, Fw_, keys);
      } else {
        l1_pull_back(fq + r0 * F_, dp, kw, block_rows, keys, fk_rows, dq + r0 * Fw_, ws.dfk);
      }
    }
    const T* dot = dot_ + base * Dvr_;
    for (index_t d0 = 0; d0 < Dvr_; d0 += MR)
      accumulate_pv(ws.dvt + d0 * kw, kw, ws.ones, dot + d0 * QB, QB, ws.s, kw, padded_rows);
    if constexpr (dot_pairwise) {
      const T* fqt = fqt_ + base * Fr_;
      for (index_t f0 = 0; f0 < Fr_; f0 += MR)
        accumulate_pv(ws.dfk + f0 * kw, kw, ws.ones, fqt + f0 * QB, QB, ws.dp, kw, padded_rows);
    }
  }

  // MR rows of a block: P_ij = exp(ℓ_ij − shift_i) replaces S, dS = dℓ · d log κ/ds replaces dP
  // (dℓ_ij = P_ij (dP_ij − D_i)), Σ_i dℓ_ij goes to dterm. Columns from `keys` to kw are zeroed.
  void weights(index_t b, index_t h, index_t first_row, index_t j0, index_t j1, index_t keys, index_t kw,
               index_t block_rows, tile_state state, T* s_block, T* dp_block, const T* key_term, const T* shift,
               const T* row_dot, T* dterm, const workspace& ws) const {
    for (index_t r = 0; r < MR; ++r) {
      T* s = s_block + r * kw;
      T* dp = dp_block + r * kw;
      const T shift_r = r < block_rows ? shift[r] : plus_inf;
      if (shift_r == plus_inf) { // padding row or fully masked row: no weights
        std::fill(s, s + kw, T(0));
        std::fill(dp, dp + kw, T(0));
        continue;
      }
      const index_t i = first_row + r;
      const bool masked = state != tile_state::full && masks_.tile(b, h, i, i + 1, j0, j1) != tile_state::full;
      T* logit = ws.logit;
      if (masked) {
        for (index_t j = 0; j < keys; j += W)
          (kernel_.log_kernel(V::load_aligned(s + j)) + simd::load(key_term + j)).store_aligned(logit + j);
        masks_.apply(b, h, i, j0, std::min(keys, j1 - j0), logit);
      }
      if constexpr (!identity_log_kernel)
        for (index_t j = 0; j < keys; ++j) ws.deriv[std::size_t(j)] = kernel_.log_kernel_derivative(s[j]);
      const V vshift(shift_r), vdot(row_dot[r]);
      for (index_t j = 0; j < keys; j += W) {
        const V sv = V::load_aligned(s + j);
        const V lg = masked ? V::load_aligned(logit + j) : kernel_.log_kernel(sv) + simd::load(key_term + j);
        const V p = xsimd::exp(lg - vshift);
        const V dl = p * (V::load_aligned(dp + j) - vdot);
        (V::load_aligned(dterm + j) + dl).store_aligned(dterm + j);
        V ds = dl;
        if constexpr (!identity_log_kernel)
          ds = xsimd::select(dl == V(T(0)), V(T(0)), dl * V::load_aligned(ws.deriv + j));
        p.store_aligned(s + j);
        ds.store_aligned(dp + j);
      }
      std::fill(s + keys, s + kw, T(0));
      std::fill(dp + keys, dp + kw, T(0));
    }
  }

  // The L1 pairwise op's pull-back (laplacian): S_ij = Σ_f |fq_if − fk_jf|, so
  // dq_i += Σ_j dS_ij sign(fq_i − fk_j) and dfk_j −= Σ_i dS_ij sign(fq_i − fk_j) (rows of stride Fw).
  void l1_pull_back(const T* fq, const T* ds, index_t kw, index_t block_rows, index_t keys, const T* fk_rows, T* dq,
                    T* dfk) const {
    for (index_t r = 0; r < block_rows; ++r)
      for (index_t j = 0; j < keys; ++j) {
        const T g = ds[r * kw + j];
        if (g == T(0)) continue;
        const T* a = fq + r * F_;
        const T* kj = fk_rows + j * Fw_;
        T* dqr = dq + r * Fw_;
        T* dkj = dfk + j * Fw_;
        for (index_t f = 0; f < F_; ++f) {
          const T t = a[f] > kj[f] ? g : a[f] < kj[f] ? -g : T(0);
          dqr[f] += t;
          dkj[f] -= t;
        }
      }
  }

  // -------- dq: the chunks' partials summed in chunk order, pulled back through the query map --------
  void queries_pass(const tensor_view<const T>& q, const attention_grads<T>& grads) {
    const index_t Hq = s_.q_heads, blocks = (s_.q_len + pull_rows - 1) / pull_rows, Z = std::max<index_t>(Z_, 1);
    // the keys pass's pull-back buffers of this thread (that pass has ended: the loop's barrier)
    const workspace ws = thread_workspace();
    T *const dfq = ws.frows, *const dz_scratch = ws.dz, *const scratch = ws.spectral;
#pragma omp for schedule(static)
    for (index_t task = 0; task < s_.batch * Hq * blocks; ++task) {
      const index_t bh = task / blocks, i0 = task % blocks * pull_rows, b = bh / Hq, h = bh % Hq;
      const index_t rows = std::min(pull_rows, s_.q_len - i0);
      const T* x[pull_rows];
      T* dx[pull_rows];
      T* dz[pull_rows];
      std::fill(dfq, dfq + pull_rows * F_, T(0));
      for (index_t r = 0; r < rows; ++r) {
        const index_t i = i0 + r;
        T* g = dfq + r * F_;
        for (index_t c = 0; c < chunks_; ++c) {
          const T* part = dqp_ + ((c * s_.batch * Hq + bh) * lq_pad_ + i) * Fw_;
          for (index_t f = 0; f < F_; ++f) g[f] += part[f];
        }
        x[r] = q.row(b, h, i);
        dx[r] = grads.dq.row(b, h, i);
        std::fill(dx[r], dx[r] + s_.qk_dim, T(0));
        dz[r] = dz_scratch + r * Z;
        if constexpr (spectral_kernel)
          if (spectral_wanted_) dz[r] = dzq_ + (bh * s_.q_len + i) * Z_;
      }
      // Σ_j dℓ_ij = 0: the query's own term gets no gradient
      rows_backward(true, h, x, rows, dfq, F_, nullptr, dx, dz, scratch);
    }
  }

  // dℓ of query row i of head h for keys [j0, j0 + n), one pair at a time (the bias pass).
  void row_gradient(const tensor_view<const T>& v, index_t b, index_t h, index_t i, index_t j0, index_t n, T* dl,
                    T* logit) const {
    const index_t hk = Heads::kv_head(h, s_.q_heads, s_.kv_heads), fh = b * feature_heads_ + feature_head(h, hk);
    const index_t row = (b * s_.q_heads + h) * lq_pad_ + i;
    const T shift = shift_[row];
    if (shift == plus_inf) {
      std::fill(dl, dl + n, T(0));
      return;
    }
    const T* fq = fq_ + row * F_;
    for (index_t j = 0; j < n; ++j) {
      const T* fk = fkr_ + (fh * lk_pad_ + j0 + j) * Fw_;
      T s = 0;
      if constexpr (dot_pairwise) {
        s = simd::dot(fq, fk, F_);
      } else {
        for (index_t f = 0; f < F_; ++f) s += std::abs(fq[f] - fk[f]);
      }
      logit[j] = kernel_.log_kernel(s) + key_term_[fh * lk_pad_ + j0 + j];
    }
    masks_.apply(b, h, i, j0, n, logit);
    const T* g = do_ + row * s_.v_dim;
    for (index_t j = 0; j < n; ++j) {
      const T p = std::exp(logit[j] - shift);
      dl[j] = p == T(0) ? T(0) : p * (simd::dot(g, v.row(b, hk, j0 + j), s_.v_dim) - row_dot_[row]);
    }
  }

  // dbias: one task per row (bb, hh, ii) of the bias, summing dℓ over the (b, h, i) it broadcasts
  // to in a fixed order, so no two tasks write the same element.
  void bias_pass(const tensor_view<const T>& v, const dense_view<T>& dbias) {
    const auto& sz = bias_sizes_;
    std::vector<T> dl(static_cast<std::size_t>(KB)), logit(static_cast<std::size_t>(KB));
#pragma omp for schedule(dynamic, 1)
    for (index_t row = 0; row < sz[0] * sz[1] * sz[2]; ++row) {
      const index_t bb = row / (sz[1] * sz[2]), hh = (row / sz[2]) % sz[1], ii = row % sz[2];
      for (index_t jj = 0; jj < sz[3]; ++jj) dbias(bb, hh, ii, jj) = T(0);
      for (index_t b = sz[0] == 1 ? 0 : bb; b < (sz[0] == 1 ? s_.batch : bb + 1); ++b)
        for (index_t h = sz[1] == 1 ? 0 : hh; h < (sz[1] == 1 ? s_.q_heads : hh + 1); ++h)
          for (index_t i = sz[2] == 1 ? 0 : ii; i < (sz[2] == 1 ? s_.q_len : ii + 1); ++i)
            for (index_t j0 = 0; j0 < s_.k_len; j0 += KB) {
              const index_t n = std::min(KB, s_.k_len - j0);
              if (masks_.tile(b, h, i, i + 1, j0, j0 + n) == tile_state::empty) continue;
              row_gradient(v, b, h, i, j0, n, dl.data(), logit.data());
              for (index_t j = 0; j < n; ++j) dbias(bb, hh, ii, sz[3] == 1 ? 0 : j0 + j) += dl[std::size_t(j)];
            }
    }
  }

  // Magnitude dropout: the last mask is the term (f_ij − 1)(μ(q_i) + μ(k_j)) (see
  // norms/magnitude_dropout.hpp). The passes above gave μ(k_j) the slope 1 of the key term and
  // μ(q_i) none; this pass adds Σ_i dℓ_ij (f_ij − 1) to each key's and Σ_j dℓ_ij (f_ij − 1) to
  // each query's magnitude gradient. One task per (batch, kv head) owns its keys and its group's
  // queries, so the sums have a fixed order. Pair by pair, like the bias pass.
  void dropout_pass(const tensor_view<const T>& q, const tensor_view<const T>& k, const tensor_view<const T>& v,
                    const attention_grads<T>& grads) {
    if constexpr (magnitude_dropout) {
      const auto& term = std::get<sizeof...(Masks) - 1>(masks_.masks);
      const index_t group = s_.q_heads / s_.kv_heads;
      std::vector<T> dl(static_cast<std::size_t>(KB)), logit(static_cast<std::size_t>(KB));
#pragma omp for schedule(dynamic, 1)
      for (index_t task = 0; task < s_.batch * s_.kv_heads; ++task) {
        const index_t b = task / s_.kv_heads, hk = task % s_.kv_heads;
        double* key_sum = dropout_key_ + task * s_.k_len;
        for (index_t h = hk * group; h < (hk + 1) * group; ++h)
          for (index_t i = 0; i < s_.q_len; ++i) {
            double query_sum = 0;
            for (index_t j0 = 0; j0 < s_.k_len; j0 += KB) {
              const index_t n = std::min(KB, s_.k_len - j0);
              if (masks_.tile(b, h, i, i + 1, j0, j0 + n) == tile_state::empty) continue;
              row_gradient(v, b, h, i, j0, n, dl.data(), logit.data());
              for (index_t j = 0; j < n; ++j) {
                if (dl[std::size_t(j)] == T(0)) continue;
                const double w = double(dl[std::size_t(j)]) * term.slope(b, h, i, j0 + j);
                key_sum[j0 + j] += w;
                query_sum += w;
              }
            }
            dropout_query_[std::size_t((b * s_.q_heads + h) * s_.q_len + i)] = query_sum;
          }
      }
#pragma omp for schedule(static)
      for (index_t r = 0; r < s_.batch * s_.kv_heads * s_.k_len; ++r) {
        const index_t b = r / (s_.kv_heads * s_.k_len), hk = (r / s_.k_len) % s_.kv_heads, j = r % s_.k_len;
        magnitude_backward(k.row(b, hk, j), dropout_key_[std::size_t(r)], grads.dk.row(b, hk, j));
      }
      if (norm_.include_query) {
#pragma omp for schedule(static)
        for (index_t r = 0; r < s_.batch * s_.q_heads * s_.q_len; ++r) {
          const index_t b = r / (s_.q_heads * s_.q_len), h = (r / s_.q_len) % s_.q_heads, i = r % s_.q_len;
          magnitude_backward(q.row(b, h, i), dropout_query_[std::size_t(r)], grads.dq.row(b, h, i));
        }
      }
    }
  }

  using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using const_rows = Eigen::Map<const matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
  static constexpr index_t eigen_block = 32;

  // Per query head h: G_h = Σ_b Q_bhᵀ dZq_bh + K_b,kv(h)ᵀ dZk_bh (D × Z), one task per head;
  // write_spectral then adds them to the spectral points' gradients in head order. Every Eigen
  // product writes at most 32 rows, so Eigen never starts OpenMP threads of its own inside ours.
  void spectral_pass(const tensor_view<const T>& q, const tensor_view<const T>& k) {
    if constexpr (spectral_kernel) {
      const index_t D = s_.qk_dim;
      using dz_rows = Eigen::Map<const matrix>;
      auto view_rows = [](const tensor_view<const T>& t, index_t b, index_t h, index_t l0, index_t n) {
        return const_rows(t.row(b, h, l0), n, t.cols, Eigen::OuterStride<>(t.row_stride));
      };
#pragma omp for schedule(dynamic, 1)
      for (index_t h = 0; h < s_.q_heads; ++h) {
        const index_t hk = Heads::kv_head(h, s_.q_heads, s_.kv_heads);
        Eigen::Map<matrix> G(spectral_partials_ + h * D * Z_, D, Z_);
        for (index_t d0 = 0; d0 < D; d0 += eigen_block) {
          const index_t nd = std::min<index_t>(eigen_block, D - d0);
          auto g = G.middleRows(d0, nd);
          for (index_t b = 0; b < s_.batch; ++b) {
            for (index_t i0 = 0; i0 < s_.q_len; i0 += eigen_block) {
              const index_t m = std::min<index_t>(eigen_block, s_.q_len - i0);
              g.noalias() += view_rows(q, b, h, i0, m).middleCols(d0, nd).transpose() *
                             dz_rows(dzq_ + ((b * s_.q_heads + h) * s_.q_len + i0) * Z_, m, Z_);
            }
            for (index_t j0 = 0; j0 < s_.k_len; j0 += eigen_block) {
              const index_t n = std::min<index_t>(eigen_block, s_.k_len - j0);
              g.noalias() += view_rows(k, b, hk, j0, n).middleCols(d0, nd).transpose() *
                             dz_rows(dzk_ + ((b * s_.q_heads + h) * s_.k_len + j0) * Z_, n, Z_);
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
        kernel_.add_spectral_gradient(kernel_.spectral_heads() == 1 ? 0 : h, spectral_partials_ + h * s_.qk_dim * Z_,
                                      Z_, out);
    }
  }

  attention_shape s_;
  bound_kernel kernel_;
  bound_norm norm_;
  masks_type masks_;
  index_t F_, feature_heads_, Z_ = 0;
  index_t Fw_ = 0, Fr_ = 0, Dvr_ = 0, q_blocks_ = 0, lq_pad_ = 0, k_blocks_ = 0, lk_pad_ = 0, chunks_ = 0;
  bool spectral_wanted_ = false;
  std::array<index_t, 4> bias_sizes_{};
  // per-call data in the calling thread's scratch arena (see prepare_queries / prepare_keys)
  T *fq_ = nullptr, *fqt_ = nullptr, *do_ = nullptr, *dot_ = nullptr, *shift_ = nullptr, *row_dot_ = nullptr;
  T *fkp_ = nullptr, *fkr_ = nullptr, *key_term_ = nullptr, *vp_ = nullptr, *dqp_ = nullptr;
  T *dzq_ = nullptr, *dzk_ = nullptr, *spectral_partials_ = nullptr, *key_dterm_ = nullptr;
  std::array<T*, 2> omega_t_{}; // the random-feature maps' Ω transposed (spectral_rows_backward)
  double *dropout_key_ = nullptr, *dropout_query_ = nullptr; // the dropout pass's sums per key and per query
  // owners of the per-thread arenas
  struct dropout_sums;
  struct key_rows;
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
  if constexpr (detail::is_magnitude_dropout<Norm>) {
    // as the forward: the inner norm plus the dropout term as the last mask (see ika::attention)
    logit.norm.check();
    const detail::row_magnitudes<T, decltype(logit.norm.norm)> magnitudes(logit.norm.norm, q, k);
    const auto expanded = detail::expand_magnitude_dropout<T, Heads>(logit, magnitudes);
    detail::check_optional_grads(shape, expanded, grads);
    detail::fused_backward_engine<T, Heads, Kernel, decltype(logit.norm.norm), Masks...,
                                  detail::magnitude_dropout_term<T, Heads, decltype(logit.norm.norm)>>
        engine(shape, expanded);
    engine.run(q, k, v, out, lse, d_out, grads, threads);
  } else {
    detail::check_optional_grads(shape, logit, grads);
    detail::fused_backward_engine<T, Heads, Kernel, Norm, Masks...> engine(shape, logit);
    engine.run(q, k, v, out, lse, d_out, grads, threads);
  }
}

} // namespace ika
