// SPDX-License-Identifier: MIT
#pragma once

#include <concepts>

#include "ika/core/tensor_view.hpp"

namespace ika {

// The sizes every policy is bound to at the start of a call.
struct attention_shape {
  index_t batch = 0, q_heads = 0, kv_heads = 0, q_len = 0, k_len = 0, qk_dim = 0, v_dim = 0;
};

// What a mask says about a rectangle of (query, key) pairs: lets the engine skip empty tiles and
// run the per-key fast path on full ones.
enum class tile_state { empty, full, partial };

// A mask policy is a parameter struct whose bind(shape) validates the sizes (throwing
// ika::invalid_argument) and returns the bound form with the hooks
//   tile(b, h, i0, i1, j0, j1)     state of rows [i0, i1) × keys [j0, j1)
//   apply(b, h, i, j0, n, logits)  adds the mask's term to logits[0:n] of keys j0 … j0+n-1
//   bias(b, h, i, j)               the same term for one pair, in double (the reference engine)
// Optional: key_end(b, h, i0, i1), an exclusive bound on the keys rows [i0, i1) may see, lets the
// engine stop the tile product early (causal, key padding); `static constexpr bool hides_only =
// true` says that the term is 0 or −inf (the mask hides keys, never reweights them), which lets
// the exp-free epilogue of bounded kernels run on partially masked tiles too.
// A sparse mask (graph) also says `static constexpr bool sparse = true` and gives neighbors(i).
namespace detail {

template <class Mask>
constexpr void check_mask_policy() {
  static_assert(requires(const Mask& m, const attention_shape& s) { m.bind(s); },
                "ika mask policy: missing hook 'bind(const attention_shape&) const'");
  using bound = decltype(std::declval<const Mask&>().bind(std::declval<const attention_shape&>()));
  static_assert(requires(const bound& m, index_t i) { { m.tile(i, i, i, i, i, i) } -> std::same_as<tile_state>; },
                "ika mask policy: bound mask lacks hook 'tile(b, h, i0, i1, j0, j1) -> tile_state'");
  static_assert(requires(const bound& m, index_t i, float* f, double* d) {
                  m.apply(i, i, i, i, i, f);
                  m.apply(i, i, i, i, i, d);
                }, "ika mask policy: bound mask lacks hook 'apply(b, h, i, j0, n, logits)' for float and double");
  static_assert(requires(const bound& m, index_t i) { { m.bias(i, i, i, i) } -> std::convertible_to<double>; },
                "ika mask policy: bound mask lacks hook 'bias(b, h, i, j) -> double'");
}

} // namespace detail
} // namespace ika
