// SPDX-License-Identifier: MIT
#pragma once

// The CUDA forward: the CPU engines' policies, compiled for the GPU through their IKA_HOST_DEVICE
// row hooks. Two steps, as on the CPU: every key and query row is prepared once (features and
// log-domain terms, one thread per row), then a fused pass over key tiles per block of query
// rows: scores, the kernel's log-domain epilogue, key terms and mask biases, online softmax,
// P·V, and the row log-sum-exp. fp32 throughout; this is the correctness baseline (SIMT
// arithmetic, one thread per query row), not yet the tensor-core engine.

#include <cuda_runtime.h>

#include <math_constants.h>

#include "ika/core/tensor_view.hpp"
#include "ika/kernels/kernel_traits.hpp"
#include "ika/masks/mask_traits.hpp"

namespace ika::cuda::detail {

// The sizes the device code needs; the kernels take them by value.
struct forward_shape {
  index_t batch, q_heads, kv_heads, feature_heads, q_len, k_len, features, v_dim;
};

// The row of (batch, heads, len) rows that this thread handles, one thread per row: its flat
// index, batch, head and position, and whether it is a row at all (the last block runs past).
struct thread_row {
  index_t row, b, h, i;
  bool inside;
};
__device__ inline thread_row row_of_thread(index_t batch, index_t heads, index_t len) {
  const index_t row = index_t(blockIdx.x) * blockDim.x + threadIdx.x, bh = row / len;
  return {row, bh / heads, bh % heads, row % len, row < batch * heads * len};
}

// Features (row stride F) and log-domain term (kernel row term + magnitude) of every key of every
// feature head, laid out (B, Hf, Lk, F).
template <class T, class Heads, bool HeadDependent, class BoundKernel, class BoundNorm>
__global__ void prepare_key_rows(BoundKernel kernel, BoundNorm norm, tensor_view<const T> k, forward_shape s,
                                 T* features, T* bias) {
  const auto [row, b, hf, j, inside] = row_of_thread(s.batch, s.feature_heads, s.k_len);
  if (!inside) return;
  const index_t hk = HeadDependent ? Heads::kv_head(hf, s.q_heads, s.kv_heads) : hf;
  const T* x = k.row(b, hk, j);
  bias[row] = T(kernel.prepare_key(hf, x, features + row * s.features) + norm.magnitude(x));
}

// Features and row term (kernel row term, plus the magnitude when the norm includes the query)
// of every query row, laid out (B, Hq, Lq, F). The row term only moves the log-sum-exp.
template <class T, class BoundKernel, class BoundNorm>
__global__ void prepare_query_rows(BoundKernel kernel, BoundNorm norm, tensor_view<const T> q, forward_shape s,
                                   T* features, T* term) {
  const auto [row, b, h, i, inside] = row_of_thread(s.batch, s.q_heads, s.q_len);
  if (!inside) return;
  const T* x = q.row(b, h, i);
  double t = kernel.prepare_query(h, x, features + row * s.features);
  if (norm.include_query) t += norm.magnitude(x);
  term[row] = T(t);
}

// One block: query rows [i0, i0 + query_tile) of one (batch, query head), one thread per row.
// Shared memory: query features and output accumulators of the block's rows, then one key tile's
// features, values and key terms. A key tile that every mask hides from every row of the block
// is skipped (the branch is uniform across the block, so the barriers stay matched).
template <class T, class Heads, class Kernel, int KeyTile, class BoundKernel, class... BoundMasks>
__global__ void fused_forward(BoundKernel kernel, const T* query_features, const T* query_term,
                              const T* key_features, const T* key_bias, tensor_view<const T> v, tensor_view<T> out,
                              row_stat_view<T> lse, forward_shape s, int query_tile, BoundMasks... masks) {
  extern __shared__ unsigned char shared_raw[];
  const index_t F = s.features, Dv = s.v_dim;
  T* sq = reinterpret_cast<T*>(shared_raw); // query_tile × F
  T* so = sq + query_tile * F;              // query_tile × Dv
  T* sk = so + query_tile * Dv;             // KeyTile × F
  T* sv = sk + KeyTile * F;                 // KeyTile × Dv
  T* sb = sv + KeyTile * Dv;                // KeyTile

  const index_t tiles = (s.q_len + query_tile - 1) / query_tile;
  const index_t bh = index_t(blockIdx.x) / tiles, b = bh / s.q_heads, h = bh % s.q_heads;
  const index_t i0 = (index_t(blockIdx.x) % tiles) * query_tile, i_end = min(i0 + index_t(query_tile), s.q_len);
  const index_t hk = Heads::kv_head(h, s.q_heads, s.kv_heads);
  const index_t hf = Kernel::head_dependent ? h : hk;
  const int t = threadIdx.x;
  const index_t i = i0 + t;
  const bool active = i < s.q_len;

  for (index_t e = t; e < query_tile * F; e += blockDim.x) {
    const index_t r = e / F;
    sq[e] = i0 + r < s.q_len ? query_features[((b * s.q_heads + h) * s.q_len + i0 + r) * F + e % F] : T(0);
  }
  for (index_t e = t; e < query_tile * Dv; e += blockDim.x) so[e] = T(0);

  const T* tile_keys = key_features + (b * s.feature_heads + hf) * s.k_len * F;
  const T* tile_bias = key_bias + (b * s.feature_heads + hf) * s.k_len;
  T* o = so + t * Dv;
  const T* fq = sq + t * F;
  float m = -CUDART_INF_F, l = 0.0f;
  for (index_t j0 = 0; j0 < s.k_len; j0 += KeyTile) {
    const index_t n = min(index_t(KeyTile), s.k_len - j0);
    if ((false || ... || (masks.tile(b, h, i0, i_end, j0, j0 + n) == tile_state::empty))) continue;
    __syncthreads(); // the previous tile has been used by every row
    for (index_t e = t; e < n * F; e += blockDim.x) sk[e] = tile_keys[j0 * F + e];
    for (index_t e = t; e < n * Dv; e += blockDim.x) sv[e] = v.row(b, hk, j0 + e / Dv)[e % Dv];
    for (index_t e = t; e < n; e += blockDim.x) sb[e] = tile_bias[j0 + e];
    __syncthreads();
    if (!active) continue;

    float logits[KeyTile];
    float tile_max = -CUDART_INF_F;
#pragma unroll
    for (int c = 0; c < KeyTile; ++c) {
      float logit = -CUDART_INF_F;
      if (c < n) {
        const T* fk = sk + c * F;
        float acc = 0.0f;
        for (index_t f = 0; f < F; ++f) {
          if constexpr (Kernel::pairwise == pairwise_op::dot) acc = fmaf(fq[f], fk[f], acc);
          else acc += fabsf(fq[f] - fk[f]);
        }
        const double mask_bias = (0.0 + ... + masks.bias(b, h, i, j0 + c));
        logit = float(kernel.log_kernel(acc)) + sb[c] + float(mask_bias);
      }
      logits[c] = logit;
      tile_max = fmaxf(tile_max, logit);
    }
    if (tile_max == -CUDART_INF_F) continue; // nothing visible in this tile for this row
    const float m_new = fmaxf(m, tile_max);
    const float alpha = m == -CUDART_INF_F ? 0.0f : expf(m - m_new);
    l *= alpha;
    for (index_t d = 0; d < Dv; ++d) o[d] *= alpha;
#pragma unroll
    for (int c = 0; c < KeyTile; ++c) {
      if (c >= n || logits[c] == -CUDART_INF_F) continue;
      const float p = expf(logits[c] - m_new);
      l += p;
      const T* vc = sv + c * Dv;
      for (index_t d = 0; d < Dv; ++d) o[d] = fmaf(p, vc[d], o[d]);
    }
    m = m_new;
  }
  if (!active) return;
  T* dst = out.row(b, h, i);
  const bool masked = m == -CUDART_INF_F; // fully masked row: zeros and −inf, never NaN
  const float inverse = masked ? 0.0f : 1.0f / l;
  for (index_t d = 0; d < Dv; ++d) dst[d] = masked ? T(0) : o[d] * inverse;
  if (lse.data != nullptr)
    lse(b, h, i) = masked ? -CUDART_INF_F : m + logf(l) + query_term[(b * s.q_heads + h) * s.q_len + i];
}

} // namespace ika::cuda::detail
