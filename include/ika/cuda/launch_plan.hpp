// SPDX-License-Identifier: MIT
#pragma once

// Tile sizes of the CUDA forward, chosen on the host from the shapes and the device's shared
// memory. Plain C++ (no CUDA headers), so that it is tested on machines without a GPU.

#include <cstddef>

#include "ika/core/error.hpp"
#include "ika/core/tensor_view.hpp"

namespace ika::cuda::detail {

// One thread block: query_tile query rows (one thread each) against key tiles of key_tile keys.
// Shared memory holds the block's query features and output accumulators, and one key tile's
// features, values and key terms.
struct forward_plan {
  int query_tile = 0;
  int key_tile = 0;
  std::size_t shared_bytes = 0;
};

inline constexpr int forward_key_tile = 32; // the per-thread logits of a tile live in registers

inline std::size_t forward_shared_bytes(int query_tile, int key_tile, index_t features, index_t v_dim,
                                        std::size_t element_size) {
  const auto qt = std::size_t(query_tile), kt = std::size_t(key_tile);
  const auto F = std::size_t(features), Dv = std::size_t(v_dim);
  return element_size * (qt * F + qt * Dv + kt * F + kt * Dv + kt);
}

// The largest query tile in {128, 64, 32} whose shared memory fits shared_limit (the device's
// opt-in limit per block); throws naming q and v when even 32 rows do not fit.
inline forward_plan plan_forward(index_t features, index_t v_dim, std::size_t shared_limit, std::size_t element_size) {
  for (const int query_tile : {128, 64, 32}) {
    const std::size_t bytes = forward_shared_bytes(query_tile, forward_key_tile, features, v_dim, element_size);
    if (bytes <= shared_limit) return {query_tile, forward_key_tile, bytes};
  }
  ika::detail::require(false, "q", "a kernel feature dimension F and value dimension Dv whose tiles fit the GPU's ",
                       shared_limit, " bytes of shared memory per block (F = ", features, ", Dv = ", v_dim, " need ",
                       forward_shared_bytes(32, forward_key_tile, features, v_dim, element_size), " bytes)");
  return {};
}

} // namespace ika::cuda::detail
