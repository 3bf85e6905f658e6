// SPDX-License-Identifier: MIT
#pragma once

// The tape's attention node on the GPU: ika::ad::attention<Heads, ika::cuda::attention_engine>
// runs the node's forward and backward with ika::cuda::attention and attention_backward. The
// tape's tensors stay in host memory; each call copies its inputs to the GPU and its results back
// (synchronously), so the rest of a model keeps running on the CPU. Include from .cu files only.

#include <cuda_runtime.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "ika/autodiff/attention.hpp"
#include "ika/cuda/attention.cuh"

namespace ika::cuda {

namespace detail {

// A host view's rows in a contiguous (B, H, L, D) GPU copy, or a GPU buffer to copy back into it.
template <class T>
class device_copy_of {
public:
  // copy = false: room for a result of that shape, nothing copied
  device_copy_of(const tensor_view<const T>& host, cudaStream_t stream, bool copy = true)
      : host_(host), storage_(std::size_t(host.batch * host.heads * host.rows * host.cols), stream) {
    if (!copy) return;
    if (contiguous(host)) { // the tape's tensors: one copy
      check(cudaMemcpyAsync(storage_.data(), host.data, size() * sizeof(T), cudaMemcpyHostToDevice, stream),
            "cudaMemcpyAsync");
      return;
    }
    for_each_row([&](const T* host_row, T* device_row) {
      check(cudaMemcpyAsync(device_row, host_row, std::size_t(host_.cols) * sizeof(T), cudaMemcpyHostToDevice, stream),
            "cudaMemcpyAsync");
    });
  }
  tensor_view<T> view() const { return bhld(storage_.data(), host_.batch, host_.heads, host_.rows, host_.cols); }
  void copy_back(const tensor_view<T>& host, cudaStream_t stream) const {
    if (contiguous(host)) {
      check(cudaMemcpyAsync(host.data, storage_.data(), size() * sizeof(T), cudaMemcpyDeviceToHost, stream),
            "cudaMemcpyAsync");
      return;
    }
    index_t r = 0;
    for (index_t b = 0; b < host.batch; ++b)
      for (index_t h = 0; h < host.heads; ++h)
        for (index_t l = 0; l < host.rows; ++l, ++r)
          check(cudaMemcpyAsync(host.row(b, h, l), storage_.data() + r * host.cols, std::size_t(host.cols) * sizeof(T),
                                cudaMemcpyDeviceToHost, stream),
                "cudaMemcpyAsync");
  }

private:
  template <class U>
  static bool contiguous(const tensor_view<U>& t) {
    return t.row_stride == t.cols && t.head_stride == t.rows * t.cols && t.batch_stride == t.heads * t.rows * t.cols;
  }
  std::size_t size() const { return std::size_t(host_.batch * host_.heads * host_.rows * host_.cols); }
  template <class F>
  void for_each_row(F&& f) const {
    index_t r = 0;
    for (index_t b = 0; b < host_.batch; ++b)
      for (index_t h = 0; h < host_.heads; ++h)
        for (index_t l = 0; l < host_.rows; ++l, ++r) f(host_.row(b, h, l), storage_.data() + r * host_.cols);
  }
  tensor_view<const T> host_;
  device_scratch<T> storage_;
};

// Row statistics (B, H, L), contiguous on both sides (the tape's layout).
template <class T>
void copy_row_stats(T* destination, const T* source, index_t n, cudaMemcpyKind kind, cudaStream_t stream) {
  check(cudaMemcpyAsync(destination, source, std::size_t(n) * sizeof(T), kind, stream), "cudaMemcpyAsync");
}

} // namespace detail

// The engine policy of ika::ad::attention for the GPU (see ika::ad::cpu_attention_engine).
struct attention_engine {
  static constexpr bool magnitude_dropout = false; // not on the GPU yet
  template <class Heads, class T, class Logit>
  static void forward(tensor_view<const T> q, tensor_view<const T> k, tensor_view<const T> v, tensor_view<T> out,
                      row_stat_view<T> lse, const Logit& logit) {
    const cudaStream_t stream = nullptr;
    const detail::device_copy_of<T> q_d(q, stream), k_d(k, stream), v_d(v, stream);
    const detail::device_copy_of<T> out_d(tensor_view<const T>(out), stream, false);
    const index_t rows = lse.batch * lse.heads * lse.rows;
    detail::device_scratch<T> lse_d(std::size_t(rows), stream);
    attention<Heads>(q_d.view(), k_d.view(), v_d.view(), out_d.view(), logit,
                     {.lse = bhl(lse_d.data(), lse.batch, lse.heads, lse.rows)}, stream);
    out_d.copy_back(out, stream);
    detail::copy_row_stats(lse.data, lse_d.data(), rows, cudaMemcpyDeviceToHost, stream);
    detail::check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }

  template <class Heads, class T, class Logit>
  static void backward(tensor_view<const T> q, tensor_view<const T> k, tensor_view<const T> v,
                       tensor_view<const T> out, row_stat_view<const T> lse, tensor_view<const T> d_out,
                       const Logit& logit, const attention_grads<T>& grads) {
    const cudaStream_t stream = nullptr;
    const detail::device_copy_of<T> q_d(q, stream), k_d(k, stream), v_d(v, stream), out_d(out, stream),
        d_out_d(d_out, stream);
    const index_t rows = lse.batch * lse.heads * lse.rows;
    detail::device_scratch<T> lse_d(std::size_t(rows), stream);
    ika::detail::require(lse.row_stride == 1 && lse.head_stride == lse.rows && lse.batch_stride == lse.heads * lse.rows,
                         "lse", "contiguous (B, H, L) row statistics (the tape's layout)");
    detail::copy_row_stats(lse_d.data(), lse.data, rows, cudaMemcpyHostToDevice, stream);
    const detail::device_copy_of<T> dq_d(tensor_view<const T>(grads.dq), stream, false),
        dk_d(tensor_view<const T>(grads.dk), stream, false), dv_d(tensor_view<const T>(grads.dv), stream, false);
    attention_grads<T> device_grads{dq_d.view(), dk_d.view(), dv_d.view()};
    // the spectral points' gradients (contiguous on the tape) through GPU buffers; the bias and p
    // gradients are passed on as they are, and refused by the GPU backward
    std::vector<std::unique_ptr<detail::device_scratch<T>>> dspectral_d(2);
    for (std::size_t t = 0; t < 2; ++t) {
      const spectral_view<T>& w = grads.dspectral[t];
      if (w.data == nullptr) continue;
      ika::detail::require(w.count_stride == 1 && w.dim_stride == w.count && w.head_stride == w.dim * w.count,
                           "grads.dspectral", "contiguous (heads, D, M) spectral gradients (the tape's layout)");
      dspectral_d[t] = std::make_unique<detail::device_scratch<T>>(std::size_t(w.heads * w.dim * w.count), stream);
      device_grads.dspectral[t] = spectral(dspectral_d[t]->data(), w.heads, w.dim, w.count);
    }
    device_grads.dbias = grads.dbias;
    device_grads.dp = grads.dp;
    attention_backward<Heads>(q_d.view(), k_d.view(), v_d.view(), tensor_view<const T>(out_d.view()),
                              row_stat_view<const T>{lse_d.data(), lse.batch, lse.heads, lse.rows,
                                                     lse.heads * lse.rows, lse.rows, 1},
                              tensor_view<const T>(d_out_d.view()), logit, device_grads, stream);
    dq_d.copy_back(grads.dq, stream);
    dk_d.copy_back(grads.dk, stream);
    dv_d.copy_back(grads.dv, stream);
    for (std::size_t t = 0; t < 2; ++t)
      if (dspectral_d[t])
        detail::check(cudaMemcpyAsync(grads.dspectral[t].data, dspectral_d[t]->data(),
                                      std::size_t(grads.dspectral[t].heads * grads.dspectral[t].dim *
                                                  grads.dspectral[t].count) * sizeof(T),
                                      cudaMemcpyDeviceToHost, stream),
                      "cudaMemcpyAsync");
    detail::check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  }
};

} // namespace ika::cuda
