// SPDX-License-Identifier: MIT
#pragma once

#include <tuple>
#include <type_traits>

#include "ika/norms/lp_norm.hpp"

namespace ika {

// The logit of SPEC §1 as a compile-time expression:
//     log_kernel(κ) + magnitude(μ) + mask(m₁) + mask(m₂) + …
// Terms may be added in any order; the engines read the kernel, the norm and the masks off the
// type, so the whole expression is fused into one tile epilogue.

struct no_kernel {};

template <class Kernel, class Norm, class... Masks>
struct logit_expression {
  Kernel kernel;
  Norm norm;
  std::tuple<Masks...> masks;
};

template <class Kernel>
logit_expression<Kernel, no_norm> log_kernel(Kernel kernel) {
  return {std::move(kernel), no_norm{}, {}};
}
template <class Norm>
logit_expression<no_kernel, Norm> magnitude(Norm norm) {
  return {no_kernel{}, std::move(norm), {}};
}
template <class Mask>
logit_expression<no_kernel, no_norm, Mask> mask(Mask m) {
  return {no_kernel{}, no_norm{}, std::tuple<Mask>{std::move(m)}};
}

template <class K1, class N1, class... M1, class K2, class N2, class... M2>
auto operator+(const logit_expression<K1, N1, M1...>& a, const logit_expression<K2, N2, M2...>& b) {
  static_assert(std::is_same_v<K1, no_kernel> || std::is_same_v<K2, no_kernel>,
                "ika: a logit expression takes one log_kernel(...) term");
  static_assert(std::is_same_v<N1, no_norm> || std::is_same_v<N2, no_norm>,
                "ika: a logit expression takes one magnitude(...) term");
  using K = std::conditional_t<std::is_same_v<K1, no_kernel>, K2, K1>;
  using N = std::conditional_t<std::is_same_v<N1, no_norm>, N2, N1>;
  K kernel = [&] {
    if constexpr (std::is_same_v<K1, no_kernel>) return b.kernel;
    else return a.kernel;
  }();
  N norm = [&] {
    if constexpr (std::is_same_v<N1, no_norm>) return b.norm;
    else return a.norm;
  }();
  return logit_expression<K, N, M1..., M2...>{std::move(kernel), std::move(norm), std::tuple_cat(a.masks, b.masks)};
}

} // namespace ika
