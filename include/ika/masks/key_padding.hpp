// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <concepts>
#include <limits>
#include <ranges>
#include <span>

#include "ika/core/error.hpp"
#include "ika/masks/mask_traits.hpp"

namespace ika {

// Batch row b attends to its first lengths[b] keys only (variable-length sequences padded to Lk).
template <std::integral I>
struct key_padding {
  std::span<const I> lengths;

  struct bound {
    const I* lengths;
    static constexpr bool hides_only = true;

    tile_state tile(index_t b, index_t, index_t, index_t, index_t j0, index_t j1) const {
      const index_t len = index_t(lengths[b]);
      if (j0 >= len) return tile_state::empty;
      return j1 <= len ? tile_state::full : tile_state::partial;
    }
    index_t key_end(index_t b, index_t, index_t, index_t) const { return index_t(lengths[b]); }
    template <class T>
    void apply(index_t b, index_t, index_t, index_t j0, index_t n, T* logits) const {
      const index_t visible = std::clamp<index_t>(index_t(lengths[b]) - j0, 0, n);
      std::fill(logits + visible, logits + n, -std::numeric_limits<T>::infinity());
    }
    double bias(index_t b, index_t, index_t, index_t j) const {
      return j < index_t(lengths[b]) ? 0.0 : -std::numeric_limits<double>::infinity();
    }
  };

  bound bind(const attention_shape& s) const {
    detail::require(index_t(lengths.size()) == s.batch, "key_padding.lengths", "one length per batch row (", s.batch,
                    "), got ", lengths.size());
    for (std::size_t b = 0; b < lengths.size(); ++b)
      detail::require(lengths[b] >= 0 && index_t(lengths[b]) <= s.k_len, "key_padding.lengths",
                      "lengths in [0, Lk = ", s.k_len, "], got lengths[", b, "] = ", lengths[b]);
    return {lengths.data()};
  }
};

template <class R>
key_padding(R&&) -> key_padding<std::remove_cvref_t<std::ranges::range_value_t<R>>>;

} // namespace ika
