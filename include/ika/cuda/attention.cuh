// SPDX-License-Identifier: MIT
#pragma once

// ika::cuda::attention: the CPU's ika::attention for tensors in GPU memory, with the same logit
// expressions. Include from .cu files only (nvcc). fp32 storage and arithmetic for now; the
// policies it accepts are those whose row hooks compile for the GPU (`device_hooks`): kernels
// rbf, dot_product, laplacian, random_fourier, yaglom_rff; norms lp, no_norm; masks causal,
// causal_upper_left, causal_lower_right. Anything else is rejected at compile time with the
// policy named.

#include <cuda_runtime.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "ika/core/attention_args.hpp"
#include "ika/core/error.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/cpu/fused_backward.hpp"
#include "ika/cuda/backward.cuh"
#include "ika/cuda/forward.cuh"
#include "ika/cuda/launch_plan.hpp"
#include "ika/heads/heads.hpp"
#include "ika/kernels/kernel_traits.hpp"
#include "ika/kernels/random_fourier.hpp"
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

// Bound kernels that hold arrays (the random-feature kernels' spectral points) give a copy of
// themselves with those arrays wherever copy(host values, n) puts them.
template <class Bound, class T>
inline constexpr bool has_device_copy =
    requires(const Bound& k, T* (*copy)(const T*, std::size_t)) { k.device_copy(copy); };

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

// The policies of one call bound for the GPU, and every key and query row prepared once into GPU
// scratch (features and log-domain terms): what the forward and the backward share.
template <class T, class Heads, class Kernel, class Norm, class... Masks>
struct prepared_call {
  using bound_kernel = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  using bound_norm = decltype(std::declval<const Norm&>().template bind<T>(index_t{}));
  static constexpr unsigned row_threads = 128;

  std::vector<std::unique_ptr<device_scratch<T>>> kernel_arrays; // the kernel's arrays on the GPU
  bound_kernel kernel;
  bound_norm norm;
  std::tuple<decltype(std::declval<const Masks&>().bind(attention_shape{}))...> masks;
  forward_shape s;
  device_scratch<T> key_features, key_bias, query_features, query_term;

  prepared_call(const attention_shape& shape, const logit_expression<Kernel, Norm, Masks...>& logit,
                const tensor_view<const T>& q, const tensor_view<const T>& k, cudaStream_t stream)
      : kernel(bind_kernel(logit.kernel, shape, stream)), norm(logit.norm.template bind<T>(shape.qk_dim)),
        masks(std::apply([&](const auto&... m) { return std::make_tuple(m.bind(shape)...); }, logit.masks)),
        s{shape.batch, shape.q_heads, shape.kv_heads, Kernel::head_dependent ? shape.q_heads : shape.kv_heads,
          shape.q_len, shape.k_len, kernel.feature_dim(), shape.v_dim},
        key_features(std::size_t(key_rows() * s.features), stream), key_bias(std::size_t(key_rows()), stream),
        query_features(std::size_t(query_rows() * s.features), stream), query_term(std::size_t(query_rows()), stream) {
    if (key_rows() > 0) {
      prepare_key_rows<T, Heads, Kernel::head_dependent><<<blocks_for(key_rows(), row_threads), row_threads, 0, stream>>>(
          kernel, norm, k, s, key_features.data(), key_bias.data());
      check(cudaGetLastError(), "prepare_key_rows launch");
    }
    if (query_rows() > 0) {
      prepare_query_rows<T><<<blocks_for(query_rows(), row_threads), row_threads, 0, stream>>>(
          kernel, norm, q, s, query_features.data(), query_term.data());
      check(cudaGetLastError(), "prepare_query_rows launch");
    }
  }

  index_t key_rows() const { return s.batch * s.feature_heads * s.k_len; }
  index_t query_rows() const { return s.batch * s.q_heads * s.q_len; }

private:
  // the bound kernel, with its arrays (spectral points) copied to GPU memory owned by this call
  bound_kernel bind_kernel(const Kernel& policy, const attention_shape& shape, cudaStream_t stream) {
    const bound_kernel host = policy.template bind<T>(shape.q_heads, shape.qk_dim);
    if constexpr (has_device_copy<bound_kernel, T>) {
      return host.device_copy([&](const T* values, std::size_t n) {
        kernel_arrays.push_back(std::make_unique<device_scratch<T>>(n, stream));
        T* device = kernel_arrays.back()->data();
        check(cudaMemcpyAsync(device, values, n * sizeof(T), cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync");
        return device;
      });
    } else {
      return host;
    }
  }
};

template <class T, class Kernel, class Norm, class... Masks>
constexpr void check_device_policies() {
  static_assert(!std::is_same_v<Kernel, no_kernel>, "ika::cuda: the logit needs a log_kernel(...) term");
  static_assert(std::is_same_v<T, float>, "ika::cuda: fp32 tensors for now (bf16/fp16 storage to come)");
  ika::detail::check_kernel_policy<Kernel, T>();
  ika::detail::check_norm_policy<Norm, T>();
  (ika::detail::check_mask_policy<Masks>(), ...);
  using bound_kernel = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  using bound_norm = decltype(std::declval<const Norm&>().template bind<T>(index_t{}));
  static_assert(has_device_hooks<bound_kernel>,
                "ika::cuda: this kernel policy has no GPU hooks (device_hooks = true and IKA_HOST_DEVICE "
                "feature_dim, prepare_query, prepare_key, log_kernel); on the GPU now: rbf, dot_product, laplacian, "
                "random_fourier, yaglom_rff");
  static_assert(has_device_hooks<bound_norm>,
                "ika::cuda: this norm policy has no GPU hooks (device_hooks = true and an IKA_HOST_DEVICE "
                "magnitude); on the GPU now: lp, no_norm");
  static_assert((has_device_hooks<decltype(std::declval<const Masks&>().bind(attention_shape{}))> && ...),
                "ika::cuda: a mask policy has no GPU hooks (device_hooks = true and IKA_HOST_DEVICE tile "
                "and bias); on the GPU now: causal, causal_upper_left, causal_lower_right");
}

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
  ika::detail::check_value_types<Q, K, V, T>();
  detail::check_device_policies<T, Kernel, Norm, Masks...>();
  const attention_shape shape = ika::detail::check_attention_args<Heads>(q, k, v, out, options);
  detail::require_device_pointer(q.data, "q");
  detail::require_device_pointer(k.data, "k");
  detail::require_device_pointer(v.data, "v");
  detail::require_device_pointer(out.data, "out");
  detail::require_device_pointer(options.lse.data, "lse");
  if (shape.batch == 0 || shape.q_heads == 0 || shape.q_len == 0) return;

  int device = 0;
  detail::check(cudaGetDevice(&device), "cudaGetDevice");
  int shared_limit = 0;
  detail::check(cudaDeviceGetAttribute(&shared_limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
                "cudaDeviceGetAttribute");
  using call_type = detail::prepared_call<T, Heads, Kernel, Norm, Masks...>;
  call_type call(shape, logit, q, k, stream);
  const detail::forward_plan plan =
      detail::plan_forward(call.s.features, shape.v_dim, std::size_t(shared_limit), sizeof(T));
  std::apply(
      [&](const auto&... bound_masks) {
        auto forward = detail::fused_forward<T, Heads, Kernel, detail::forward_key_tile, typename call_type::bound_kernel,
                                             std::decay_t<decltype(bound_masks)>...>;
        detail::check(cudaFuncSetAttribute(forward, cudaFuncAttributeMaxDynamicSharedMemorySize, int(plan.shared_bytes)),
                      "cudaFuncSetAttribute");
        const index_t blocks = call.s.batch * call.s.q_heads * ((call.s.q_len + plan.query_tile - 1) / plan.query_tile);
        forward<<<unsigned(blocks), unsigned(plan.query_tile), plan.shared_bytes, stream>>>(
            call.kernel, call.query_features.data(), call.query_term.data(), call.key_features.data(),
            call.key_bias.data(), tensor_view<const T>(v), out, options.lse, call.s, plan.query_tile, bound_masks...);
      },
      call.masks);
  detail::check(cudaGetLastError(), "fused_forward launch");
}

// Gradients of the attention output given d_out on the GPU, from the forward's out and
// log-sum-exp: the contract of ika::attention_backward (dq, dk, dv overwritten), all tensors in
// GPU memory, asynchronous on `stream`. Every kernel the GPU forward takes, with the spectral
// points' gradients (grads.dspectral, in GPU memory); the bias and p gradients are not computed
// on the GPU yet (they must be left empty).
template <class Heads = grouped_heads, class Q, class K, class V, class T, class Kernel, class Norm, class... Masks>
void attention_backward(tensor_view<Q> q, tensor_view<K> k, tensor_view<V> v, tensor_view<const T> out,
                        row_stat_view<const T> lse, tensor_view<const T> d_out,
                        const logit_expression<Kernel, Norm, Masks...>& logit, const attention_grads<T>& grads,
                        cudaStream_t stream = nullptr) {
  ika::detail::check_value_types<Q, K, V, T>();
  detail::check_device_policies<T, Kernel, Norm, Masks...>();
  using bound_kernel = decltype(std::declval<const Kernel&>().template bind<T>(index_t{}, index_t{}));
  static_assert(requires(const bound_kernel& b, const T* x, T* dx) {
                  b.log_kernel_derivative(T{});
                  b.prepare_query_backward(index_t{}, x, x, 0.0, dx);
                  b.prepare_key_backward(index_t{}, x, x, 0.0, dx);
                } || requires(const bound_kernel& b, const T* x, T* dx) {
                  b.log_kernel_derivative(T{});
                  b.feature_backward(index_t{}, x, x, dx, dx);
                },
                "ika::cuda::attention_backward: this kernel has no GPU backward hooks (IKA_HOST_DEVICE "
                "log_kernel_derivative and prepare_query_backward / prepare_key_backward, or feature_backward)");
  const attention_shape shape =
      ika::detail::check_attention_args<Heads>(q, k, v, out, attention_options<const T>{});
  auto same = [](const auto& a, const auto& b) {
    return a.batch == b.batch && a.heads == b.heads && a.rows == b.rows && a.cols == b.cols;
  };
  ika::detail::require(same(out, d_out), "d_out", "out and d_out of shape (B, Hq, Lq, Dv)");
  ika::detail::require(lse.batch == q.batch && lse.heads == q.heads && lse.rows == q.rows, "lse",
                       "(B, Hq, Lq) from the forward");
  ika::detail::require(same(grads.dq, q) && same(grads.dk, k) && same(grads.dv, v), "grads",
                       "dq, dk, dv of the shapes of q, k, v");
  constexpr int spectral_tensors = [] {
    if constexpr (ika::detail::spectral_bound_kernel<bound_kernel>) return int(bound_kernel::spectral_tensors);
    else return 0;
  }();
  for (int t = 0; t < 2; ++t) {
    const auto& d = grads.dspectral[std::size_t(t)];
    if (d.data == nullptr) continue;
    ika::detail::require(t < spectral_tensors, "grads.dspectral",
                         "empty views beyond the kernel's spectral tensors (it has ", spectral_tensors, ")");
    if constexpr (spectral_tensors > 0) {
      const auto points = ika::detail::spectral_points(logit.kernel)[std::size_t(t)];
      ika::detail::require(d.heads == points.heads && d.dim == points.dim && d.count == points.count,
                           "grads.dspectral", "the shape of the kernel's spectral points (", points.heads, ", ",
                           points.dim, ", ", points.count, ")");
    }
    detail::require_device_pointer(d.data, "grads.dspectral");
  }
  ika::detail::require(grads.dbias.data == nullptr, "grads.dbias", "an empty view: no additive bias on the GPU yet");
  ika::detail::require(grads.dp == nullptr, "grads.dp", "nullptr: the GPU backward does not compute d/dp yet");
  const std::pair<const void*, const char*> pointers[] = {
      {q.data, "q"},     {k.data, "k"},           {v.data, "v"},           {out.data, "out"},
      {lse.data, "lse"}, {d_out.data, "d_out"},   {grads.dq.data, "grads.dq"}, {grads.dk.data, "grads.dk"},
      {grads.dv.data, "grads.dv"}};
  for (const auto& [pointer, name] : pointers) detail::require_device_pointer(pointer, name);
  if (shape.batch == 0) return;

  using call_type = detail::prepared_call<T, Heads, Kernel, Norm, Masks...>;
  call_type call(shape, logit, q, k, stream);
  const detail::forward_shape& s = call.s;
  const index_t query_rows = call.query_rows(), key_rows = s.batch * s.kv_heads * s.k_len;
  const index_t dz_size = detail::projection_scratch(call.kernel);
  detail::device_scratch<T> delta(std::size_t(query_rows), stream), dfq(std::size_t(query_rows * s.features), stream),
      dfk(std::size_t(key_rows * s.features), stream), dz_query(std::size_t(query_rows * dz_size), stream),
      dz_key(std::size_t(call.key_rows() * dz_size), stream);
  constexpr unsigned threads = call_type::row_threads;
  if (query_rows > 0) {
    detail::output_dot<T><<<detail::blocks_for(query_rows, threads), threads, 0, stream>>>(out, d_out, s, delta.data());
    detail::check(cudaGetLastError(), "output_dot launch");
  }
  std::apply(
      [&](const auto&... bound_masks) {
        using pair_type = detail::pair_recompute<T, Kernel, typename call_type::bound_kernel,
                                                 std::decay_t<decltype(bound_masks)>...>;
        const pair_type pair{call.kernel, call.query_features.data(), call.query_term.data(),
                             call.key_features.data(), call.key_bias.data(), delta.data(), lse,
                             tensor_view<const T>(v), d_out, s};
        if (query_rows > 0) {
          detail::query_rows_backward<T, Heads, Kernel><<<detail::blocks_for(query_rows, threads), threads, 0, stream>>>(
              pair, tensor_view<const T>(q), grads.dq, dfq.data(), dz_query.data(), dz_size, bound_masks...);
          detail::check(cudaGetLastError(), "query_rows_backward launch");
        }
        if (key_rows > 0) {
          detail::key_rows_backward<T, Heads, Kernel><<<detail::blocks_for(key_rows, threads), threads, 0, stream>>>(
              call.norm, pair, tensor_view<const T>(k), grads.dk, grads.dv, dfk.data(), dz_key.data(), dz_size,
              bound_masks...);
          detail::check(cudaGetLastError(), "key_rows_backward launch");
        }
      },
      call.masks);
  if constexpr (spectral_tensors > 0) {
    if (grads.dspectral[0].data != nullptr || grads.dspectral[1].data != nullptr) {
      const auto points = ika::detail::spectral_points(logit.kernel)[0];
      const index_t elements = spectral_tensors * points.heads * points.dim * points.count;
      detail::spectral_gradients<T, Heads><<<detail::blocks_for(elements, threads), threads, 0, stream>>>(
          call.kernel, tensor_view<const T>(q), tensor_view<const T>(k), s, dz_query.data(), dz_key.data(), dz_size,
          points.heads, points.count, grads.dspectral[0], grads.dspectral[1]);
      detail::check(cudaGetLastError(), "spectral_gradients launch");
    }
  }
}

} // namespace ika::cuda
