// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <limits>

#include "ika/core/error.hpp"
#include "ika/masks/mask_traits.hpp"

namespace ika {
namespace detail {

// Key j is visible from query i when j <= i + offset.
struct bound_causal {
  index_t offset;
  static constexpr bool device_hooks = true; // tile() and bias() compile for the GPU too
  static constexpr bool hides_only = true;

  IKA_HOST_DEVICE tile_state tile(index_t, index_t, index_t i0, index_t i1, index_t j0, index_t j1) const {
    if (j0 > i1 - 1 + offset) return tile_state::empty;
    if (j1 - 1 <= i0 + offset) return tile_state::full;
    return tile_state::partial;
  }
  index_t key_end(index_t, index_t, index_t, index_t i1) const { return std::max<index_t>(i1 + offset, 0); }
  template <class T>
  void apply(index_t, index_t, index_t i, index_t j0, index_t n, T* logits) const {
    const index_t first_hidden = std::clamp<index_t>(i + offset + 1 - j0, 0, n);
    std::fill(logits + first_hidden, logits + n, -std::numeric_limits<T>::infinity());
  }
  IKA_HOST_DEVICE double bias(index_t, index_t, index_t i, index_t j) const {
    return j <= i + offset ? 0.0 : -std::numeric_limits<double>::infinity();
  }
};

} // namespace detail

// Query i sees keys j <= i: the diagonal starts at the top-left corner (PyTorch's is_causal).
struct causal_upper_left {
  detail::bound_causal bind(const attention_shape&) const { return {0}; }
};

// Query i sees keys j <= i + (Lk - Lq): the last query sees every key (FlashAttention's
// convention; what decoding with a cache needs).
struct causal_lower_right {
  detail::bound_causal bind(const attention_shape& s) const { return {s.k_len - s.q_len}; }
};

// For Lq == Lk both alignments agree; otherwise the caller must say which one is meant.
struct causal {
  detail::bound_causal bind(const attention_shape& s) const {
    detail::require(s.q_len == s.k_len, "causal", "Lq == Lk (got Lq = ", s.q_len, ", Lk = ", s.k_len,
                    "); for Lq != Lk choose causal_upper_left or causal_lower_right");
    return {0};
  }
};

} // namespace ika
