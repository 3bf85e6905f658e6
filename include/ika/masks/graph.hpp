// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <concepts>
#include <limits>
#include <ranges>
#include <span>
#include <vector>

#include "ika/core/error.hpp"
#include "ika/masks/mask_traits.hpp"

namespace ika {

// GAT-style attention over a graph: query node i attends to its neighbours
// col_index[row_offsets[i] .. row_offsets[i+1]) only (CSR, shared by every batch row and head).
// Lq is the number of nodes with neighbour lists, Lk the number of nodes they may point to.
// The engine walks the neighbour lists directly: O(edges · D), no Lq × Lk work.
template <std::integral I>
struct graph_csr {
  std::span<const I> row_offsets; // Lq + 1 entries, non-decreasing, starting at 0
  std::span<const I> col_index;   // row_offsets[Lq] entries in [0, Lk)

  struct bound {
    static constexpr bool sparse = true;
    const I* offsets;
    const I* columns;

    std::span<const I> neighbors(index_t i) const {
      return {columns + offsets[i], std::size_t(offsets[i + 1] - offsets[i])};
    }
    bool is_neighbor(index_t i, index_t j) const {
      const auto n = neighbors(i);
      return std::find(n.begin(), n.end(), I(j)) != n.end();
    }
    // The dense hooks exist so the reference engine and composition stay uniform.
    tile_state tile(index_t, index_t, index_t, index_t, index_t, index_t) const { return tile_state::partial; }
    template <class T>
    void apply(index_t, index_t, index_t i, index_t j0, index_t n, T* logits) const {
      for (index_t j = 0; j < n; ++j)
        if (!is_neighbor(i, j0 + j)) logits[j] = -std::numeric_limits<T>::infinity();
    }
    double bias(index_t, index_t, index_t i, index_t j) const {
      return is_neighbor(i, j) ? 0.0 : -std::numeric_limits<double>::infinity();
    }
  };

  bound bind(const attention_shape& s) const {
    detail::require(index_t(row_offsets.size()) == s.q_len + 1, "graph_csr.row_offsets", "Lq + 1 = ", s.q_len + 1,
                    " entries, got ", row_offsets.size());
    detail::require(row_offsets[0] == 0, "graph_csr.row_offsets", "row_offsets[0] == 0, got ", row_offsets[0]);
    for (std::size_t i = 0; i + 1 < row_offsets.size(); ++i)
      detail::require(row_offsets[i] <= row_offsets[i + 1], "graph_csr.row_offsets", "non-decreasing offsets, got ",
                      row_offsets[i], " then ", row_offsets[i + 1], " at row ", i);
    detail::require(index_t(col_index.size()) == index_t(row_offsets.back()), "graph_csr.col_index",
                    "row_offsets[Lq] = ", row_offsets.back(), " entries, got ", col_index.size());
    for (std::size_t e = 0; e < col_index.size(); ++e)
      detail::require(col_index[e] >= 0 && index_t(col_index[e]) < s.k_len, "graph_csr.col_index",
                      "node indices in [0, Lk = ", s.k_len, "), got col_index[", e, "] = ", col_index[e]);
    std::vector<I> row;
    for (index_t i = 0; i < s.q_len; ++i) {
      row.assign(col_index.begin() + row_offsets[i], col_index.begin() + row_offsets[i + 1]);
      std::sort(row.begin(), row.end());
      detail::require(std::adjacent_find(row.begin(), row.end()) == row.end(), "graph_csr.col_index",
                      "each neighbour at most once per row, got a repeat in row ", i);
    }
    return {row_offsets.data(), col_index.data()};
  }
};

template <class R1, class R2>
graph_csr(R1&&, R2&&) -> graph_csr<std::remove_cvref_t<std::ranges::range_value_t<R1>>>;

} // namespace ika
