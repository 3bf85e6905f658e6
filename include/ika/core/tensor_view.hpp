// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <type_traits>

#include "ika/core/config.hpp"

namespace ika {

using index_t = std::ptrdiff_t;

// A non-owning view of a rank-4 tensor (batch, head, row, column) over the caller's memory.
// Columns have unit stride (one row of a head is contiguous); every other stride is free, which
// is what lets (B, H, L, D), (B, L, H, D) and slices of a packed QKV buffer share one type.
template <class T>
struct tensor_view {
  T* data = nullptr;
  index_t batch = 0, heads = 0, rows = 0, cols = 0;
  index_t batch_stride = 0, head_stride = 0, row_stride = 0;

  IKA_HOST_DEVICE T* row(index_t b, index_t h, index_t l) const {
    return data + b * batch_stride + h * head_stride + l * row_stride;
  }
  IKA_HOST_DEVICE T& operator()(index_t b, index_t h, index_t l, index_t d) const { return row(b, h, l)[d]; }
  bool empty() const { return data == nullptr; }

  // Views of T convert to views of const T, as pointers do.
  template <class U = T, class = std::enable_if_t<!std::is_const_v<U>>>
  operator tensor_view<const U>() const {
    return {data, batch, heads, rows, cols, batch_stride, head_stride, row_stride};
  }
};

// A rank-3 view (batch, head, row) with free strides: the row log-sum-exp, per-row statistics.
template <class T>
struct row_stat_view {
  T* data = nullptr;
  index_t batch = 0, heads = 0, rows = 0;
  index_t batch_stride = 0, head_stride = 0, row_stride = 1;

  IKA_HOST_DEVICE T& operator()(index_t b, index_t h, index_t l) const {
    return data[b * batch_stride + h * head_stride + l * row_stride];
  }
  bool empty() const { return data == nullptr; }
};

// (B, H, L, D), contiguous: the layout of PyTorch's scaled_dot_product_attention.
template <class T>
tensor_view<T> bhld(T* data, index_t B, index_t H, index_t L, index_t D) {
  return {data, B, H, L, D, H * L * D, L * D, D};
}

// (B, L, H, D), contiguous: the layout a linear projection produces before any transpose.
template <class T>
tensor_view<T> blhd(T* data, index_t B, index_t L, index_t H, index_t D) {
  return {data, B, H, L, D, L * H * D, D, H * D};
}

// Any strides (in elements) for batch, head and row; unit stride along D.
template <class T>
tensor_view<T> strided(T* data, index_t B, index_t H, index_t L, index_t D, index_t batch_stride,
                       index_t head_stride, index_t row_stride) {
  return {data, B, H, L, D, batch_stride, head_stride, row_stride};
}

template <class T>
struct qkv_views {
  tensor_view<T> q, k, v;
};

// Views into one packed projection buffer laid out (B, L, [Hq·Dqk | Hkv·Dqk | Hkv·Dv]), i.e. the
// output of a fused QKV linear layer; nothing is copied.
template <class T>
qkv_views<T> packed_qkv(T* data, index_t B, index_t L, index_t Hq, index_t Hkv, index_t Dqk, index_t Dv) {
  const index_t token = Hq * Dqk + Hkv * Dqk + Hkv * Dv;
  return {{data, B, Hq, L, Dqk, L * token, Dqk, token},
          {data + Hq * Dqk, B, Hkv, L, Dqk, L * token, Dqk, token},
          {data + Hq * Dqk + Hkv * Dqk, B, Hkv, L, Dv, L * token, Dv, token}};
}

template <class T>
qkv_views<T> packed_qkv(T* data, index_t B, index_t L, index_t H, index_t D) {
  return packed_qkv(data, B, L, H, H, D, D);
}

// (B, H, L) contiguous.
template <class T>
row_stat_view<T> bhl(T* data, index_t B, index_t H, index_t L) {
  return {data, B, H, L, H * L, L, 1};
}

} // namespace ika
