// SPDX-License-Identifier: MIT
#pragma once

#include <array>
#include <cmath>
#include <limits>
#include <string_view>
#include <type_traits>

#include "ika/core/error.hpp"
#include "ika/masks/mask_traits.hpp"

namespace ika {

// A (B, H, Lq, Lk) array that broadcasts like PyTorch's attn_mask: a size-1 dimension (stride 0)
// applies to every batch row, head, query or key.
template <class V>
struct dense_view {
  V* data = nullptr;
  std::array<index_t, 4> sizes{};   // B, H, Lq, Lk (each the full size or 1)
  std::array<index_t, 4> strides{}; // in elements

  V& operator()(index_t b, index_t h, index_t i, index_t j) const {
    return data[b * strides[0] + h * strides[1] + i * strides[2] + j * strides[3]];
  }

  template <class U = V, class = std::enable_if_t<!std::is_const_v<U>>>
  operator dense_view<const U>() const {
    return {data, sizes, strides};
  }
};

// Contiguous (B, H, Lq, Lk); pass 1 for a dimension to broadcast it.
template <class V>
dense_view<V> dense(V* data, index_t B, index_t H, index_t Lq, index_t Lk) {
  auto stride = [](index_t size, index_t step) { return size == 1 ? 0 : step; };
  return {data, {B, H, Lq, Lk}, {stride(B, H * Lq * Lk), stride(H, Lq * Lk), stride(Lq, Lk), stride(Lk, 1)}};
}

namespace detail {

template <class V>
void check_dense(const dense_view<const V>& m, std::string_view name, const attention_shape& s) {
  const bool empty = s.batch * s.q_heads * s.q_len * s.k_len == 0;
  require(m.data != nullptr || empty, name, "a non-null (B, H, Lq, Lk) array");
  const std::array<index_t, 4> want{s.batch, s.q_heads, s.q_len, s.k_len};
  const char* dims[4] = {"B", "H", "Lq", "Lk"};
  for (int d = 0; d < 4; ++d)
    require(m.sizes[d] == want[d] || m.sizes[d] == 1, name, "shape (", s.batch, ", ", s.q_heads, ", ", s.q_len, ", ",
            s.k_len, ") or 1 to broadcast along ", dims[d], ", got (", m.sizes[0], ", ", m.sizes[1], ", ", m.sizes[2],
            ", ", m.sizes[3], ")");
}

// The view to read from: size-1 dimensions get stride 0, so indexing broadcasts.
template <class V>
dense_view<const V> checked_broadcast(const dense_view<const V>& m, std::string_view name, const attention_shape& s) {
  check_dense(m, name, s);
  dense_view<const V> out = m;
  for (int d = 0; d < 4; ++d)
    if (out.sizes[d] == 1) out.strides[d] = 0;
  return out;
}

} // namespace detail

// Boolean keep-mask: true = attend (PyTorch SDPA's convention).
struct keep_mask {
  dense_view<const bool> keep;

  struct bound {
    dense_view<const bool> keep;
    static constexpr bool hides_only = true;
    // every pair is looked up, so every tile is partial
    tile_state tile(index_t, index_t, index_t, index_t, index_t, index_t) const { return tile_state::partial; }
    template <class T>
    void apply(index_t b, index_t h, index_t i, index_t j0, index_t n, T* logits) const {
      for (index_t j = 0; j < n; ++j)
        if (!keep(b, h, i, j0 + j)) logits[j] = -std::numeric_limits<T>::infinity();
    }
    double bias(index_t b, index_t h, index_t i, index_t j) const {
      return keep(b, h, i, j) ? 0.0 : -std::numeric_limits<double>::infinity();
    }
  };

  bound bind(const attention_shape& s) const {
    return {detail::checked_broadcast(keep, "keep_mask", s)};
  }
};

// Additive bias added to every logit (relative positions, ALiBi, −inf entries as a mask).
template <class V>
struct additive_bias {
  dense_view<const V> values;

  struct bound {
    dense_view<const V> values;
    tile_state tile(index_t, index_t, index_t, index_t, index_t, index_t) const { return tile_state::partial; }
    template <class T>
    void apply(index_t b, index_t h, index_t i, index_t j0, index_t n, T* logits) const {
      for (index_t j = 0; j < n; ++j) logits[j] += T(values(b, h, i, j0 + j));
    }
    double bias(index_t b, index_t h, index_t i, index_t j) const { return double(values(b, h, i, j)); }
  };

  bound bind(const attention_shape& s) const {
    return {detail::checked_broadcast(values, "additive_bias", s)};
  }
};

namespace detail {
template <class Mask>
inline constexpr bool is_additive_bias = false;
template <class V>
inline constexpr bool is_additive_bias<additive_bias<V>> = true;
} // namespace detail

template <class V>
additive_bias(dense_view<V>) -> additive_bias<std::remove_const_t<V>>;

} // namespace ika
