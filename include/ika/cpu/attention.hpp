// SPDX-License-Identifier: MIT
#pragma once

#include <type_traits>

#include "ika/core/attention_args.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/cpu/decode.hpp"
#include "ika/cpu/fused.hpp"
#include "ika/heads/heads.hpp"
#include "ika/kernels/kernel_traits.hpp"
#include "ika/masks/mask_traits.hpp"
#include "ika/norms/magnitude_dropout.hpp"
#include "ika/norms/norm_traits.hpp"

namespace ika {

// out_i = Σ_j softmax_j(logit_ij) v_j with logit = log κ(q_i, k_j) + μ(k_j) + masks (SPEC §1),
// computed by the fused CPU engine (by the split-key engine when Lq ≤ 4: decoding).
// q (B, Hq, Lq, D), k (B, Hkv, Lk, D), v (B, Hkv, Lk, Dv),
// out (B, Hq, Lq, Dv); float or double. Heads: grouped_heads (default; Hq % Hkv == 0) or
// independent_heads (Hq == Hkv). Throws ika::invalid_argument on a bad shape or parameter.
template <class Heads = grouped_heads, class Q, class K, class V, class T, class Kernel, class Norm, class... Masks>
void attention(tensor_view<Q> q, tensor_view<K> k, tensor_view<V> v, tensor_view<T> out,
               const logit_expression<Kernel, Norm, Masks...>& logit,
               const std::type_identity_t<attention_options<T>>& options = {}) {
  static_assert(!std::is_same_v<Kernel, no_kernel>, "ika::attention: the logit needs a log_kernel(...) term");
  if constexpr (detail::is_magnitude_dropout<Norm>) {
    detail::check_value_types<Q, K, V, T>();
    detail::check_attention_args<Heads>(q, k, v, out, options);
    logit.norm.check();
    const detail::row_magnitudes<std::remove_const_t<T>, decltype(logit.norm.norm)> magnitudes(logit.norm.norm, q, k);
    attention<Heads>(q, k, v, out, detail::expand_magnitude_dropout<std::remove_const_t<T>, Heads>(logit, magnitudes),
                     options);
  } else {
    detail::check_value_types<Q, K, V, T>();
    detail::check_kernel_policy<Kernel, T>();
    detail::check_norm_policy<Norm, T>();
    (detail::check_mask_policy<Masks>(), ...);
    static_assert((0 + ... + int(detail::is_sparse_mask<decltype(std::declval<const Masks&>().bind(attention_shape{}))>)) <= 1,
                  "ika::attention: at most one graph mask per logit expression");
    const attention_shape shape = detail::check_attention_args<Heads>(q, k, v, out, options);
    using decode_engine = detail::split_key_engine<T, Heads, Kernel, Norm, Masks...>;
    if (decode_engine::serves(shape)) {
      decode_engine engine(shape, logit);
      engine.run(q, k, v, out, options.lse, options.threads);
    } else {
      detail::fused_engine<T, Heads, Kernel, Norm, Masks...> engine(shape, logit);
      engine.run(q, k, v, out, options.lse, options.threads);
    }
  }
}

} // namespace ika
