// SPDX-License-Identifier: MIT
#pragma once

// ika — implicit kernel attention.
//
// Every attention here is  softmax_j( log κ(q_i, k_j) + μ(k_j) + mask_ij ) · V  (SPEC §1):
// a kernel κ, a magnitude μ from an Lᵖ norm, and masks, written as one expression and fused by
// the engine into a single pass over tiles.
//
//   #include <ika/ika.hpp>
//   auto q = ika::bhld(q_ptr, B, H, L, D);            // views over your memory, no copies
//   auto k = ika::bhld(k_ptr, B, H, L, D), v = ika::bhld(v_ptr, B, H, L, D);
//   auto o = ika::bhld(o_ptr, B, H, L, D);
//   // softmax(QKᵀ/√D)·V, as the rbf kernel plus the L2 magnitude:
//   ika::attention(q, k, v, o, ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}));
//   // implicit kernel attention: Yaglom random features, L3 magnitude, causal mask, log-sum-exp out
//   auto kernel = ika::yaglom_rff<float>::from_seed(42, H, D, 64);
//   ika::attention(q, k, v, o, ika::log_kernel(kernel) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal{}),
//                  {.lse = ika::bhl(lse_ptr, B, H, L)});
//
// ika::reference::attention has the same signature and computes in double, pair by pair.

#include "ika/core/attention_args.hpp"
#include "ika/core/error.hpp"
#include "ika/core/logit_expression.hpp"
#include "ika/core/random.hpp"
#include "ika/core/tensor_view.hpp"
#include "ika/cpu/attention.hpp"
#include "ika/cpu/fused_backward.hpp"
#include "ika/cpu/key_cache.hpp"
#include "ika/cpu/linear.hpp"
#include "ika/cpu/reference.hpp"
#include "ika/cpu/reference_backward.hpp"
#include "ika/heads/heads.hpp"
#include "ika/kernels/random_fourier.hpp"
#include "ika/kernels/rbf.hpp"
#include "ika/masks/causal.hpp"
#include "ika/masks/dense.hpp"
#include "ika/masks/graph.hpp"
#include "ika/masks/key_padding.hpp"
#include "ika/norms/lp_norm.hpp"
