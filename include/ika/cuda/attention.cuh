// SPDX-License-Identifier: MIT
#pragma once

// ika::cuda::attention: the CPU's ika::attention for tensors in GPU memory, with the same logit
// expressions. Include from .cu files only (nvcc). fp32 storage and arithmetic for now; the
// policies it accepts are those whose row hooks compile for the GPU (`device_hooks`): kernels
// rbf, dot_product, laplacian; norms lp, no_norm; masks causal, causal_upper_left,
// causal_lower_right. Anything else is rejected at compile time with the policy named.

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>

#include "ika/core/attention_args.hpp"
#include "ika/core/error.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/cuda/forward.cuh"
#include "ika/cuda/launch_plan.hpp"
#include "ika/heads/heads.hpp"
#include "ika/kernels/kernel_traits.hpp"
#include "ika/kernels/rbf.hpp"
#include "ika/masks/causal.hpp"
#include "ika/masks/mask_traits.hpp"
#include "ika/norms/lp_norm.hpp"
#include "ika/norms/norm_traits.hpp"

namespace ika::cuda {

// A CUDA runtime call failed (no device, out of memory, a launch error): the call and the
// runtime's message.
class cuda_error : public std::runtime_error {
public:
  cuda_error(const char* call, cudaError_t status)
      : std::runtime_error(std::string("ika::cuda: ") + call + " failed: " + cudaGetErrorString(status)),
        status_(status) {}
  cudaError_t status() const noexcept { return status_; }

private:
  cudaError_t status_;
};

namespace detail {

inline void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) throw cuda_error(call, status);
}

template <class Bound>
inline constexpr bool has_device_hooks = requires { requires Bound::device_hooks; };

// GPU (or managed) memory, or nothing for an empty tensor.
inline void require_device_pointer(const void* pointer, const char* argument) {
  if (pointer == nullptr) return;
  cudaPointerAttributes attributes{};
  const cudaError_t status = cudaPointerGetAttributes(&attributes, pointer);
  if (status != cudaSuccess) (void)cudaGetLastError(); // clear the sticky error of a host pointer query
  ika::detail::require(status == cudaSuccess && (attributes.type == cudaMemoryTypeDevice ||
                                                attributes.type == cudaMemoryTypeManaged),
                       argument, "a pointer to GPU (device or managed) memory");
}

// Scratch in GPU memory for one call, released in stream order.
template <class T>
class device_scratch {
public:
  device_scratch(std::size_t n, cudaStream_t stream) : stream_(stream) {
    if (n > 0) check(cudaMallocAsync(reinterpret_cast<void**>(&data_), n * sizeof(T), stream), "cudaMallocAsync");
  }
  ~device_scratch() {
    if (data_ != nullptr) (void)cudaFreeAsync(data_, stream_);
  }
  device_scratch(const device_scratch&) = delete;
  device_scratch& operator=(const device_scratch&) = delete;
  T* data() const { return data_; }

private:
  T* data_ = nullptr;
  cudaStream_t stream_;
};

inline unsigned blocks_for(index_t rows, unsigned threads) { return unsigned((rows + threads - 1) / threads); }

} // namespace detail

// out_i = Σ_j softmax_j(logit_ij) v_j on the GPU: q (B, Hq, Lq, D), k (B, Hkv, Lk, D),
// v (B, Hkv, Lk, Dv), out (B, Hq, Lq, Dv), options.lse (B, Hq, Lq), all views over GPU memory
// (any strides, unit stride along D). Asynchronous on `stream`, like a kernel launch: the
// results are ready when the stream is. options.threads is ignored. Throws
// ika::invalid_argument on a bad shape or a host pointer, ika::cuda::cuda_error when the runtime
// fails.
template <class Heads = grouped_heads, class Q, class K, class V, class T, class Kernel, class Norm, class... Masks>
void attention(tensor_view<Q> q, tensor_view<K> k, tensor_view<V> v, tensor_view<T> out,
               const logit_expression<Kernel, Norm, Masks...>& logit,
               const std::type_identity_t<attention_options<T>>& options = {}, cudaStream_t stream = nullptr) {
  static_assert(!std::is_same_v<Kernel, no_kernel>, "ika::cuda::attention: the logit needs a log_kernel(...) term");
  ika::detail::check_value_types<Q, K, V, T>();
  static_assert(std::is_same_v<T, float>, "ika::cuda::attention: fp32 tensors for now (bf16/fp16 storage to come)");
  ika::detail::check_kernel_policy<Kernel, T>();
  ika::detail::check_norm_policy<Norm, T>();
  (ika::detail::check_mask_policy<Masks>(), ...);
  using bound_kernel = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  using bound_norm = decltype(std::declval<const Norm&>().template bind<T>(index_t{}));
  static_assert(detail::has_device_hooks<bound_kernel>,
                "ika::cuda::attention: this kernel policy has no GPU hooks (device_hooks = true and IKA_HOST_DEVICE "
                "feature_dim, prepare_query, prepare_key, log_kernel); on the GPU now: rbf, dot_product, laplacian");
  static_assert(detail::has_device_hooks<bound_norm>,
                "ika::cuda::attention: this norm policy has no GPU hooks (device_hooks = true and an IKA_HOST_DEVICE "
                "magnitude); on the GPU now: lp, no_norm");
  static_assert((detail::has_device_hooks<decltype(std::declval<const Masks&>().bind(attention_shape{}))> && ...),
                "ika::cuda::attention: a mask policy has no GPU hooks (device_hooks = true and IKA_HOST_DEVICE tile "
                "and bias); on the GPU now: causal, causal_upper_left, causal_lower_right");

  const attention_shape shape = ika::detail::check_attention_args<Heads>(q, k, v, out, options);
  detail::require_device_pointer(q.data, "q");
  detail::require_device_pointer(k.data, "k");
  detail::require_device_pointer(v.data, "v");
  detail::require_device_pointer(out.data, "out");
  detail::require_device_pointer(options.lse.data, "lse");
  if (shape.batch == 0 || shape.q_heads == 0 || shape.q_len == 0) return;

  const bound_kernel kernel = logit.kernel.template bind<T>(shape.q_heads, shape.qk_dim);
  const bound_norm norm = logit.norm.template bind<T>(shape.qk_dim);
  const auto masks =
      std::apply([&](const auto&... m) { return std::make_tuple(m.bind(shape)...); }, logit.masks);
  const index_t F = kernel.feature_dim();
  const detail::forward_shape s{shape.batch, shape.q_heads, shape.kv_heads,
                                Kernel::head_dependent ? shape.q_heads : shape.kv_heads,
                                shape.q_len, shape.k_len, F, shape.v_dim};

  int device = 0;
  detail::check(cudaGetDevice(&device), "cudaGetDevice");
  int shared_limit = 0;
  detail::check(cudaDeviceGetAttribute(&shared_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
                "cudaDeviceGetAttribute");
  const detail::forward_plan plan = detail::plan_forward(F, shape.v_dim, std::size_t(shared_limit), sizeof(T));

  const index_t key_rows = s.batch * s.feature_heads * s.k_len, query_rows = s.batch * s.q_heads * s.q_len;
  detail::device_scratch<T> key_features(std::size_t(key_rows * F), stream), key_bias(std::size_t(key_rows), stream);
  detail::device_scratch<T> query_features(std::size_t(query_rows * F), stream),
      query_term(std::size_t(query_rows), stream);
  constexpr unsigned row_threads = 128;
  if (key_rows > 0)
    detail::prepare_key_rows<T, Heads, Kernel::head_dependent>
        <<<detail::blocks_for(key_rows, row_threads), row_threads, 0, stream>>>(
            kernel, norm, tensor_view<const T>(k), s, key_features.data(), key_bias.data());
  detail::check(cudaGetLastError(), "prepare_key_rows launch");
  detail::prepare_query_rows<T><<<detail::blocks_for(query_rows, row_threads), row_threads, 0, stream>>>(
      kernel, norm, tensor_view<const T>(q), s, query_features.data(), query_term.data());
  detail::check(cudaGetLastError(), "prepare_query_rows launch");

  std::apply(
      [&](const auto&... bound_masks) {
        auto forward = detail::fused_forward<T, Heads, Kernel, detail::forward_key_tile, bound_kernel,
                                             std::decay_t<decltype(bound_masks)>...>;
        detail::check(cudaFuncSetAttribute(forward, cudaFuncAttributeMaxDynamicSharedMemorySize, int(plan.shared_bytes)),
                      "cudaFuncSetAttribute");
        const index_t blocks = s.batch * s.q_heads * ((s.q_len + plan.query_tile - 1) / plan.query_tile);
        forward<<<unsigned(blocks), unsigned(plan.query_tile), plan.shared_bytes, stream>>>(
            kernel, query_features.data(), query_term.data(), key_features.data(), key_bias.data(),
            tensor_view<const T>(v), out, options.lse, s, plan.query_tile, bound_masks...);
      },
      masks);
  detail::check(cudaGetLastError(), "fused_forward launch");
}

} // namespace ika::cuda
