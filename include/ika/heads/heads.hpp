// SPDX-License-Identifier: MIT
#pragma once

#include "ika/core/error.hpp"
#include "ika/core/tensor_view.hpp"

namespace ika {

// Which key/value head serves query head h.

// H query heads, H key/value heads.
struct independent_heads {
  static void validate(index_t q_heads, index_t kv_heads) {
    detail::require(kv_heads == q_heads, "k", "as many key/value heads as query heads (", q_heads, ") for independent_heads, got ",
                    kv_heads, "; use grouped_heads for GQA/MQA");
  }
  IKA_HOST_DEVICE static index_t kv_head(index_t h, index_t, index_t) { return h; }
};

// Grouped-query (and multi-query, Hkv = 1) attention: Hq % Hkv == 0, kv head = h / (Hq / Hkv).
// Independent heads are the case Hkv = Hq.
struct grouped_heads {
  static void validate(index_t q_heads, index_t kv_heads) {
    detail::require(kv_heads > 0 && q_heads % kv_heads == 0, "k", "a number of key/value heads that divides the ",
                    q_heads, " query heads (Hq % Hkv == 0), got Hkv = ", kv_heads);
  }
  IKA_HOST_DEVICE static index_t kv_head(index_t h, index_t q_heads, index_t kv_heads) { return h / (q_heads / kv_heads); }
};

} // namespace ika
