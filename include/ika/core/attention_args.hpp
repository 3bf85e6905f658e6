// SPDX-License-Identifier: MIT
#pragma once

#include <ostream>
#include <string_view>
#include <type_traits>

#include "ika/core/error.hpp"
#include "ika/core/tensor_view.hpp"
#include "ika/masks/mask_traits.hpp"

namespace ika {

// What a call may ask for besides the output.
template <class T>
struct attention_options {
  row_stat_view<T> lse = {}; // optional (B, Hq, Lq) output: log Σ_j exp(logit_ij); −inf for a fully masked row
  // OpenMP threads; 0 = chosen from the call's size, at most the OpenMP default. Results do not depend on it.
  int threads = 0;
};

namespace detail {

template <class T>
void check_view(const tensor_view<T>& t, std::string_view name) {
  require(t.batch >= 0 && t.heads >= 0 && t.rows >= 0 && t.cols >= 0, name, "non-negative sizes, got (", t.batch, ", ",
          t.heads, ", ", t.rows, ", ", t.cols, ")");
  require(t.data != nullptr || t.batch * t.heads * t.rows * t.cols == 0, name, "a non-null pointer for a non-empty tensor");
}

struct view_sizes {
  index_t batch, heads, rows, cols;
  friend std::ostream& operator<<(std::ostream& out, const view_sizes& s) {
    return out << "(" << s.batch << ", " << s.heads << ", " << s.rows << ", " << s.cols << ")";
  }
};

// The shape contract shared by every engine; returns the sizes the policies are bound to.
template <class Heads, class Q, class K, class V, class T>
attention_shape check_attention_args(const tensor_view<Q>& q, const tensor_view<K>& k, const tensor_view<V>& v,
                                     const tensor_view<T>& out, const attention_options<T>& options) {
  const row_stat_view<T>& lse = options.lse;
  require(options.threads >= 0, "threads", "a thread count >= 0 (0 = chosen from the call's size), got ", options.threads);
  check_view(q, "q");
  check_view(k, "k");
  check_view(v, "v");
  check_view(out, "out");
  // a view's sizes, formatted only when a check fails (formatting them on every call cost
  // microseconds, a visible share of a short decode call)
  auto shape = [](const auto& t) { return view_sizes{t.batch, t.heads, t.rows, t.cols}; };
  require(q.heads > 0 && q.cols > 0, "q", "at least one head and D >= 1, got ", shape(q));
  require(k.batch == q.batch && k.cols == q.cols, "k", "(B = ", q.batch, ", Hkv, Lk, D = ", q.cols,
          ") to match q ", shape(q), ", got ", shape(k));
  Heads::validate(q.heads, k.heads);
  require(v.batch == q.batch && v.heads == k.heads && v.rows == k.rows, "v", "(", q.batch, ", ", k.heads, ", ", k.rows,
          ", Dv) to match k ", shape(k), ", got ", shape(v));
  require(v.cols > 0, "v", "Dv >= 1, got ", shape(v));
  require(out.batch == q.batch && out.heads == q.heads && out.rows == q.rows && out.cols == v.cols, "out", "(",
          q.batch, ", ", q.heads, ", ", q.rows, ", ", v.cols, ") = (B, Hq, Lq, Dv), got ", shape(out));
  if (!lse.empty())
    require(lse.batch == q.batch && lse.heads == q.heads && lse.rows == q.rows, "lse", "(", q.batch, ", ", q.heads,
            ", ", q.rows, ") = (B, Hq, Lq), got (", lse.batch, ", ", lse.heads, ", ", lse.rows, ")");
  return {q.batch, q.heads, k.heads, q.rows, k.rows, q.cols, v.cols};
}

template <class Q, class K, class V, class T>
constexpr void check_value_types() {
  static_assert(std::is_same_v<std::remove_const_t<Q>, T> && std::is_same_v<std::remove_const_t<K>, T> &&
                    std::is_same_v<std::remove_const_t<V>, T>,
                "ika::attention: q, k, v and out must have the same value type");
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "ika::attention (CPU): value type must be float or double");
  static_assert(!std::is_const_v<T>, "ika::attention: out must be a view of non-const values");
}

} // namespace detail
} // namespace ika
