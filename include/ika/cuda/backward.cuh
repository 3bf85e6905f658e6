// SPDX-License-Identifier: MIT
#pragma once

// The CUDA backward: recomputes the weights from the forward's log-sum-exp, as the CPU backward
// does, with the same policies' IKA_HOST_DEVICE backward hooks. With a_ij the weights, ℓ_ij the
// logits and δ_i = do_i·o_i:
//   dv_j = Σ_i a_ij do_i,   dℓ_ij = a_ij (do_i·v_j − δ_i),
// and dℓ flows through log κ to the prepared rows (dfq, dfk) and into each key's term. Every
// gradient element is written by one thread, in a fixed order: no atomics, deterministic. fp32,
// SIMT, one thread per query row (dq) and one per key row (dk, dv): the correctness baseline.

#include <cuda_runtime.h>

#include <math_constants.h>

#include "ika/core/tensor_view.hpp"
#include "ika/cpu/fused_backward.hpp"
#include "ika/cuda/forward.cuh"
#include "ika/kernels/kernel_traits.hpp"

namespace ika::cuda::detail {

// δ_i = do_i · o_i for every query row.
template <class T>
__global__ void output_dot(tensor_view<const T> out, tensor_view<const T> d_out, forward_shape s, T* delta) {
  const auto [row, b, h, i, inside] = row_of_thread(s.batch, s.q_heads, s.q_len);
  if (!inside) return;
  const T* o = out.row(b, h, i);
  const T* g = d_out.row(b, h, i);
  float sum = 0.0f;
  for (index_t d = 0; d < s.v_dim; ++d) sum = fmaf(float(g[d]), float(o[d]), sum);
  delta[row] = T(sum);
}

// What the two backward kernels share: the recomputed score, weight and logit gradient of one
// (query row, key) pair. Returns false when the pair carries no weight (masked, or a fully
// masked query row).
template <class T, class Kernel, class BoundKernel, class... BoundMasks>
struct pair_recompute {
  BoundKernel kernel;
  const T* query_features;
  const T* query_term;
  const T* key_features;
  const T* key_bias;
  const T* delta;
  row_stat_view<const T> lse;
  tensor_view<const T> v, d_out;
  forward_shape s;

  // s_ij, a_ij and dℓ_ij for query (b, h, i) and key j of feature head hf / value head hk.
  __device__ bool operator()(index_t b, index_t h, index_t i, index_t hf, index_t hk, index_t j, float& score,
                             float& dlogit, float& weight, const BoundMasks&... masks) const {
    const index_t q_row = (b * s.q_heads + h) * s.q_len + i, k_row = (b * s.feature_heads + hf) * s.k_len + j;
    const float row_lse = float(lse(b, h, i));
    if (row_lse == -CUDART_INF_F) return false;
    const double mask_bias = (0.0 + ... + masks.bias(b, h, i, j));
    if (mask_bias == -CUDART_INF) return false;
    const T* fq = query_features + q_row * s.features;
    const T* fk = key_features + k_row * s.features;
    float acc = 0.0f;
    for (index_t f = 0; f < s.features; ++f) {
      if constexpr (Kernel::pairwise == pairwise_op::dot) acc = fmaf(fq[f], fk[f], acc);
      else acc += fabsf(fq[f] - fk[f]);
    }
    const float logit = float(kernel.log_kernel(acc)) + float(key_bias[k_row]) + float(mask_bias);
    // lse = max + log Σ + the query's row term, which the logits leave out
    weight = expf(logit - (row_lse - float(query_term[q_row])));
    const T* g = d_out.row(b, h, i);
    const T* vj = v.row(b, hk, j);
    float dp = 0.0f;
    for (index_t d = 0; d < s.v_dim; ++d) dp = fmaf(float(g[d]), float(vj[d]), dp);
    dlogit = weight * (dp - float(delta[q_row]));
    score = acc;
    return true;
  }
};

// dx of one prepared row from its feature gradient (and row-term gradient): the kernel's row
// hook, or for the random-feature kernels feature_backward (dz: scratch of projection_dim()).
template <class BoundKernel, class T>
__device__ void row_backward(const BoundKernel& kernel, bool query, index_t h, const T* x, const T* dfeatures,
                             double dterm, T* dx, T* dz) {
  if constexpr (ika::detail::spectral_bound_kernel<BoundKernel>) {
    kernel.feature_backward(h, x, dfeatures, dx, dz);
  } else if (query) {
    kernel.prepare_query_backward(h, x, dfeatures, dterm, dx);
  } else {
    kernel.prepare_key_backward(h, x, dfeatures, dterm, dx);
  }
}

// Scratch values per row for row_backward's dz.
template <class BoundKernel>
index_t projection_scratch(const BoundKernel& kernel) {
  if constexpr (ika::detail::spectral_bound_kernel<BoundKernel>) return kernel.projection_dim();
  else return 0;
}

// dq: one thread per query row (b, h, i); dfq (scratch, F per row) then the kernel's query hook.
template <class T, class Heads, class Kernel, class BoundKernel, class... BoundMasks>
__global__ void query_rows_backward(pair_recompute<T, Kernel, BoundKernel, BoundMasks...> pair, tensor_view<const T> q,
                                    tensor_view<T> dq, T* dfq_scratch, T* dz_scratch, index_t dz_size,
                                    BoundMasks... masks) {
  const forward_shape& s = pair.s;
  const BoundKernel& kernel = pair.kernel;
  const auto [row, b, h, i, inside] = row_of_thread(s.batch, s.q_heads, s.q_len);
  if (!inside) return;
  const index_t hk = Heads::kv_head(h, s.q_heads, s.kv_heads), hf = Kernel::head_dependent ? h : hk;
  T* dfq = dfq_scratch + row * s.features;
  for (index_t f = 0; f < s.features; ++f) dfq[f] = T(0);
  const T* fq = pair.query_features + row * s.features;
  for (index_t j = 0; j < s.k_len; ++j) {
    float score, dlogit, weight;
    if (!pair(b, h, i, hf, hk, j, score, dlogit, weight, masks...)) continue;
    const float g = dlogit * float(kernel.log_kernel_derivative(T(score)));
    const T* fk = pair.key_features + ((b * s.feature_heads + hf) * s.k_len + j) * s.features;
    for (index_t f = 0; f < s.features; ++f) {
      if constexpr (Kernel::pairwise == pairwise_op::dot) dfq[f] += g * fk[f];
      else dfq[f] += g * float((fq[f] > fk[f]) - (fq[f] < fk[f]));
    }
  }
  T* dx = dq.row(b, h, i);
  for (index_t d = 0; d < q.cols; ++d) dx[d] = T(0);
  // the query's row term is constant along the row: it does not move the output
  row_backward(kernel, true, h, q.row(b, h, i), dfq, 0.0, dx, dz_scratch + row * dz_size);
}

// dk and dv: one thread per key row (b, hk, j), over the query heads it serves and their rows;
// dfk and the key-term gradient per feature head (scratch), then the kernel's key hook and the
// norm's magnitude hook.
template <class T, class Heads, class Kernel, class BoundKernel, class BoundNorm, class... BoundMasks>
__global__ void key_rows_backward(BoundNorm norm, pair_recompute<T, Kernel, BoundKernel, BoundMasks...> pair,
                                  tensor_view<const T> k, tensor_view<T> dk, tensor_view<T> dv, T* dfk_scratch,
                                  T* dz_scratch, index_t dz_size, BoundMasks... masks) {
  const forward_shape& s = pair.s;
  const BoundKernel& kernel = pair.kernel;
  const auto [row, b, hk, j, inside] = row_of_thread(s.batch, s.kv_heads, s.k_len);
  if (!inside) return;
  T* dvj = dv.row(b, hk, j);
  for (index_t d = 0; d < s.v_dim; ++d) dvj[d] = T(0);
  T* dx = dk.row(b, hk, j);
  for (index_t d = 0; d < k.cols; ++d) dx[d] = T(0);
  T* dfk = dfk_scratch + row * s.features;
  const T* x = k.row(b, hk, j);
  // feature heads of this key: every query head of the group when the features depend on the
  // head, else the key/value head itself (its dfk and term gradient gather the whole group)
  for (index_t hf_index = 0; hf_index < (Kernel::head_dependent ? s.q_heads : 1); ++hf_index) {
    const index_t hf = Kernel::head_dependent ? hf_index : hk;
    if (Kernel::head_dependent && Heads::kv_head(hf, s.q_heads, s.kv_heads) != hk) continue;
    for (index_t f = 0; f < s.features; ++f) dfk[f] = T(0);
    double dterm = 0;
    const T* fk = pair.key_features + ((b * s.feature_heads + hf) * s.k_len + j) * s.features;
    for (index_t h = 0; h < s.q_heads; ++h) {
      if (Heads::kv_head(h, s.q_heads, s.kv_heads) != hk || (Kernel::head_dependent && h != hf)) continue;
      const T* query_rows = pair.query_features + (b * s.q_heads + h) * s.q_len * s.features;
      for (index_t i = 0; i < s.q_len; ++i) {
        float score, dlogit, weight;
        if (!pair(b, h, i, hf, hk, j, score, dlogit, weight, masks...)) continue;
        const T* g_out = pair.d_out.row(b, h, i);
        for (index_t d = 0; d < s.v_dim; ++d) dvj[d] += weight * g_out[d];
        dterm += double(dlogit);
        const float g = dlogit * float(kernel.log_kernel_derivative(T(score)));
        const T* fq = query_rows + i * s.features;
        for (index_t f = 0; f < s.features; ++f) {
          if constexpr (Kernel::pairwise == pairwise_op::dot) dfk[f] += g * fq[f];
          else dfk[f] += g * float((fk[f] > fq[f]) - (fk[f] < fq[f]));
        }
      }
    }
    // dz per (batch, feature head, key): the spectral gradients read every head's
    row_backward(kernel, false, hf, x, dfk, dterm, dx, dz_scratch + ((b * s.feature_heads + hf) * s.k_len + j) * dz_size);
    norm.magnitude_backward(x, dterm, dx);
  }
}

// The spectral points' gradients of the random-feature kernels: with dz the gradient of a row's
// projections z = factor · Ωᵀx (left by feature_backward, per query row and per (feature head,
// key)), dΩ_t(sh, d, m) = factor_t · Σ_rows x_d dz_{t·M + m} over the rows of the heads that use
// spectral head sh. One thread per (tensor, spectral head, d, m), the rows in a fixed order:
// overwritten, deterministic.
template <class T, class Heads, class BoundKernel>
__global__ void spectral_gradients(BoundKernel kernel, tensor_view<const T> q, tensor_view<const T> k, forward_shape s,
                                   const T* dz_query, const T* dz_key, index_t dz_size, index_t spectral_heads,
                                   index_t points, spectral_view<T> d0, spectral_view<T> d1) {
  const index_t dim = q.cols, per_tensor = spectral_heads * dim * points;
  const index_t e = index_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= BoundKernel::spectral_tensors * per_tensor) return;
  const int t = int(e / per_tensor);
  const index_t sh = (e % per_tensor) / (dim * points), d = (e / points) % dim, m = e % points;
  const spectral_view<T>& out = t == 0 ? d0 : d1;
  if (out.data == nullptr) return;
  const index_t z = t * points + m;
  double sum = 0;
  for (index_t b = 0; b < s.batch; ++b)
    for (index_t h = 0; h < s.q_heads; ++h) {
      if (spectral_heads != 1 && h != sh) continue;
      const index_t hk = Heads::kv_head(h, s.q_heads, s.kv_heads);
      for (index_t i = 0; i < s.q_len; ++i)
        sum += double(q.row(b, h, i)[d]) * double(dz_query[((b * s.q_heads + h) * s.q_len + i) * dz_size + z]);
      for (index_t j = 0; j < s.k_len; ++j) // feature head h (the random-feature kernels depend on the head)
        sum += double(k.row(b, hk, j)[d]) * double(dz_key[((b * s.feature_heads + h) * s.k_len + j) * dz_size + z]);
    }
  out(sh, d, m) = T(kernel.spectral_factor(t) * sum);
}

} // namespace ika::cuda::detail

