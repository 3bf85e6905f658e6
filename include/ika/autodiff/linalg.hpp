// SPDX-License-Identifier: MIT
#pragma once

// Matrix products of ika::ad, through Eigen's GEMM.

#include <algorithm>

#include <Eigen/Core>

#include "ika/autodiff/tape.hpp"
#include "ika/autodiff/tensor.hpp"
#include "ika/core/error.hpp"

namespace ika::ad {

struct matmul_options {
  bool transpose_a = false; // use aᵀ (the last two axes swapped)
  bool transpose_b = false; // use bᵀ
};

} // namespace ika::ad

namespace ika::detail {

// c (m × n) (+)= op(a) · op(b), row-major, where a is stored (ar × ac) and b (br × bc).
// The rows of c are computed in fixed blocks of 32, spread over OpenMP threads. Each block is an
// Eigen product whose destination has at most 32 rows at compile time, so Eigen never threads it
// (its blocking would then depend on the thread count): the result is the same for any number
// of threads.
template <class T>
void ad_gemm(T* c, index_t m, index_t n, const T* a, index_t ar, index_t ac, bool ta, const T* b, index_t br,
             index_t bc, bool tb, bool accumulate) {
  using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using rows32 = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor, 32, Eigen::Dynamic>;
  constexpr index_t block = 32;
  const Eigen::Map<const matrix> A(a, ar, ac), B(b, br, bc);
  const index_t k = ta ? ar : ac, blocks = (m + block - 1) / block;
  [[maybe_unused]] const bool parallel = blocks > 1 && m * n * k >= (index_t(1) << 18);
#pragma omp parallel for schedule(static) if (parallel)
  for (index_t blk = 0; blk < blocks; ++blk) {
    const index_t r0 = blk * block, rows = std::min(block, m - r0);
    Eigen::Map<rows32> C(c + r0 * n, rows, n);
    if (!accumulate) C.setZero();
    if (!ta && !tb) C.noalias() += A.middleRows(r0, rows) * B;
    else if (!ta && tb) C.noalias() += A.middleRows(r0, rows) * B.transpose();
    else if (ta && !tb) C.noalias() += A.middleCols(r0, rows).transpose() * B;
    else C.noalias() += A.middleCols(r0, rows).transpose() * B.transpose();
  }
}

// Batch, matrix sizes and per-batch element strides of a (possibly batched) product.
struct ad_matmul_dims {
  index_t batch = 1, ar = 0, ac = 0, br = 0, bc = 0, m = 0, k = 0, n = 0;
  index_t stride_a = 0, stride_b = 0; // 0 for an operand shared by every batch
  bool batched = false;
};

inline ad_matmul_dims ad_matmul_shapes(const ad::shape& a, const ad::shape& b, bool ta, bool tb) {
  require(a.rank() == 2 || a.rank() == 3, "a", "a matrix (m, k) or a batch of them (batch, m, k), got ", a.str());
  require(b.rank() == 2 || b.rank() == 3, "b", "a matrix (k, n) or a batch of them (batch, k, n), got ", b.str());
  ad_matmul_dims d;
  d.ar = a[a.rank() - 2];
  d.ac = a[a.rank() - 1];
  d.br = b[b.rank() - 2];
  d.bc = b[b.rank() - 1];
  d.m = ta ? d.ac : d.ar;
  d.k = ta ? d.ar : d.ac;
  const index_t kb = tb ? d.bc : d.br;
  d.n = tb ? d.br : d.bc;
  require(kb == d.k, "b", "an inner dimension of ", d.k, " to match a ", a.str(), (ta ? " (transposed)" : ""), ", got ",
          b.str(), (tb ? " (transposed)" : ""));
  d.batched = a.rank() == 3 || b.rank() == 3;
  if (a.rank() == 3 && b.rank() == 3)
    require(a[0] == b[0], "b", "a batch of ", a[0], " to match a ", a.str(), ", got ", b.str());
  d.batch = a.rank() == 3 ? a[0] : (b.rank() == 3 ? b[0] : 1);
  d.stride_a = a.rank() == 3 ? d.ar * d.ac : 0;
  d.stride_b = b.rank() == 3 ? d.br * d.bc : 0;
  return d;
}

} // namespace ika::detail

namespace ika::ad {

// op(a) · op(b) for matrices (m, k)·(k, n), or batches (batch, m, k)·(batch, k, n); a matrix
// operand is shared by every batch of the other (its gradient sums over the batch).
template <class T>
variable<T> matmul(tape<T>& tp, const variable<T>& a, const variable<T>& b, matmul_options options = {}) {
  ika::detail::require(a.defined(), "a", "a defined variable");
  ika::detail::require(b.defined(), "b", "a defined variable");
  const bool ta = options.transpose_a, tb = options.transpose_b;
  const auto d = ika::detail::ad_matmul_shapes(a.shape(), b.shape(), ta, tb);
  const shape s = d.batched ? shape{d.batch, d.m, d.n} : shape{d.m, d.n};
  const bool grad = tape<T>::needs_grad(a, b);
  variable<T> y = tp.make_result(s, grad);
  for (index_t i = 0; i < d.batch; ++i)
    ika::detail::ad_gemm(y.value().data() + i * d.m * d.n, d.m, d.n, a.value().data() + i * d.stride_a, d.ar, d.ac,
                         ta, b.value().data() + i * d.stride_b, d.br, d.bc, tb, false);
  if (grad) {
    auto *pa = a.impl(), *pb = b.impl(), *py = y.impl();
    tp.record("matmul", y, {a, b}, [pa, pb, py, ta, tb] {
      const auto d = ika::detail::ad_matmul_shapes(pa->value.shape(), pb->value.shape(), ta, tb);
      for (index_t i = 0; i < d.batch; ++i) {
        const T* g = py->grad.data() + i * d.m * d.n;
        const T* av = pa->value.data() + i * d.stride_a;
        const T* bv = pb->value.data() + i * d.stride_b;
        if (pa->requires_grad) {
          T* ga = pa->grad.data() + i * d.stride_a;
          if (!ta) ika::detail::ad_gemm(ga, d.ar, d.ac, g, d.m, d.n, false, bv, d.br, d.bc, !tb, true); // G·op(B)ᵀ
          else ika::detail::ad_gemm(ga, d.ar, d.ac, bv, d.br, d.bc, tb, g, d.m, d.n, true, true);     // op(B)·Gᵀ
        }
        if (pb->requires_grad) {
          T* gb = pb->grad.data() + i * d.stride_b;
          if (!tb) ika::detail::ad_gemm(gb, d.br, d.bc, av, d.ar, d.ac, !ta, g, d.m, d.n, false, true); // op(A)ᵀ·G
          else ika::detail::ad_gemm(gb, d.br, d.bc, g, d.m, d.n, true, av, d.ar, d.ac, ta, true);      // Gᵀ·op(A)
        }
      }
    });
  }
  return y;
}

} // namespace ika::ad
