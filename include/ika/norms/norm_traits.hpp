// SPDX-License-Identifier: MIT
#pragma once

#include <concepts>
#include <utility>

#include "ika/core/tensor_view.hpp"

namespace ika::detail {

// A norm policy is a parameter struct whose bind<T>(dim) returns the bound form with
//   magnitude(x) -> double     μ(x) of one row of length dim
//   include_query              whether μ(q_i) enters the logit (it moves only the log-sum-exp)
template <class Norm, class T>
constexpr void check_norm_policy() {
  static_assert(requires(const Norm& n) { n.template bind<T>(index_t{}); },
                "ika norm policy: missing hook 'template <class T> bind(index_t dim) const'");
  using bound = decltype(std::declval<const Norm&>().template bind<T>(index_t{}));
  static_assert(requires(const bound& b, const T* x) { { b.magnitude(x) } -> std::convertible_to<double>; },
                "ika norm policy: bound norm lacks hook 'magnitude(row) -> double'");
  static_assert(requires(const bound& b) { { b.include_query } -> std::convertible_to<bool>; },
                "ika norm policy: bound norm lacks member 'include_query'");
}

} // namespace ika::detail
