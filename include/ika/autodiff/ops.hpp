// SPDX-License-Identifier: MIT
#pragma once

// Element-wise, broadcasting, reduction and shape operations of ika::ad. Each is a free function
// (tape, inputs…) → result: it computes the value into tape storage and, when an input requires
// grad and grad mode is on, records one node whose closure accumulates the input gradients.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <initializer_list>
#include <span>
#include <type_traits>

#include "ika/autodiff/tape.hpp"
#include "ika/autodiff/tensor.hpp"
#include "ika/core/error.hpp"

namespace ika::detail {

// NumPy broadcasting of two shapes of rank <= 4, worked out on shapes padded to rank 4.
struct ad_broadcast {
  std::array<index_t, 4> dims{}; // the result, padded
  std::array<index_t, 4> stride_a{}, stride_b{}; // element strides of a and b, 0 along broadcast axes
  ad::shape out;
};

inline std::array<index_t, 4> ad_strides(const std::array<index_t, 4>& dims) {
  std::array<index_t, 4> s{};
  index_t step = 1;
  for (int i = 3; i >= 0; --i) {
    s[std::size_t(i)] = step;
    step *= dims[std::size_t(i)];
  }
  return s;
}

inline ad_broadcast ad_broadcast_shapes(const ad::shape& a, const ad::shape& b, std::string_view b_name = "b") {
  const auto pa = a.padded(), pb = b.padded();
  ad_broadcast r;
  const auto sa = ad_strides(pa), sb = ad_strides(pb);
  for (std::size_t i = 0; i < 4; ++i) {
    require(pa[i] == pb[i] || pa[i] == 1 || pb[i] == 1, b_name, "a shape that broadcasts with ", a.str(), ", got ",
            b.str());
    r.dims[i] = pa[i] == 1 ? pb[i] : pa[i];
    r.stride_a[i] = pa[i] == 1 ? 0 : sa[i];
    r.stride_b[i] = pb[i] == 1 ? 0 : sb[i];
  }
  const int rank = std::max(a.rank(), b.rank());
  r.out = ad::shape(std::span<const index_t>(r.dims.data() + 4 - rank, std::size_t(rank)));
  return r;
}

// f(out_index, a_index, b_index) over the broadcast result, in row-major order.
template <class F>
void ad_for_each(const ad_broadcast& r, F&& f) {
  index_t o = 0;
  for (index_t i0 = 0; i0 < r.dims[0]; ++i0)
    for (index_t i1 = 0; i1 < r.dims[1]; ++i1)
      for (index_t i2 = 0; i2 < r.dims[2]; ++i2) {
        index_t ia = i0 * r.stride_a[0] + i1 * r.stride_a[1] + i2 * r.stride_a[2];
        index_t ib = i0 * r.stride_b[0] + i1 * r.stride_b[1] + i2 * r.stride_b[2];
        for (index_t i3 = 0; i3 < r.dims[3]; ++i3, ++o, ia += r.stride_a[3], ib += r.stride_b[3]) f(o, ia, ib);
      }
}

inline int ad_axis(int axis, int rank, std::string_view name = "axis") {
  require(axis >= -rank && axis < rank, name, "an axis in [", -rank, ", ", rank, "), got ", axis);
  return axis < 0 ? axis + rank : axis;
}

// A shape seen as (outer, n, inner) around one axis.
struct ad_split {
  index_t outer = 1, n = 1, inner = 1;
};
inline ad_split ad_split_at(const ad::shape& s, int axis) {
  ad_split r;
  for (int i = 0; i < axis; ++i) r.outer *= s[i];
  r.n = s[axis];
  for (int i = axis + 1; i < s.rank(); ++i) r.inner *= s[i];
  return r;
}

template <class T, class Fwd, class DA, class DB>
ad::variable<T> ad_binary(ad::tape<T>& tp, const ad::variable<T>& a, const ad::variable<T>& b, const char* name,
                          Fwd fwd, DA da, DB db) {
  require(a.defined(), "a", "a defined variable");
  require(b.defined(), "b", "a defined variable");
  const ad_broadcast r = ad_broadcast_shapes(a.shape(), b.shape());
  const bool grad = ad::tape<T>::needs_grad(a, b);
  ad::variable<T> y = tp.make_result(r.out, grad);
  {
    const T *av = a.value().data(), *bv = b.value().data();
    T* yv = y.value().data();
    ad_for_each(r, [&](index_t o, index_t ia, index_t ib) { yv[o] = fwd(av[ia], bv[ib]); });
  }
  if (grad) {
    auto *pa = a.impl(), *pb = b.impl(), *py = y.impl();
    tp.record(name, y, {a, b}, [pa, pb, py, da, db] {
      const ad_broadcast r = ad_broadcast_shapes(pa->value.shape(), pb->value.shape());
      const T *av = pa->value.data(), *bv = pb->value.data(), *g = py->grad.data();
      T* ga = pa->requires_grad ? pa->grad.data() : nullptr;
      T* gb = pb->requires_grad ? pb->grad.data() : nullptr;
      ad_for_each(r, [&](index_t o, index_t ia, index_t ib) {
        if (ga) ga[ia] += g[o] * da(av[ia], bv[ib]);
        if (gb) gb[ib] += g[o] * db(av[ia], bv[ib]);
      });
    });
  }
  return y;
}

// y = f(x) element-wise; df(x, y) is dy/dx.
template <class T, class F, class DF>
ad::variable<T> ad_unary(ad::tape<T>& tp, const ad::variable<T>& x, const char* name, F f, DF df) {
  require(x.defined(), "x", "a defined variable");
  const bool grad = ad::tape<T>::needs_grad(x);
  ad::variable<T> y = tp.make_result(x.shape(), grad);
  const T* xv = x.value().data();
  T* yv = y.value().data();
  for (index_t i = 0, n = x.size(); i < n; ++i) yv[i] = f(xv[i]);
  if (grad) {
    auto *px = x.impl(), *py = y.impl();
    tp.record(name, y, {x}, [px, py, df] {
      const T *xv = px->value.data(), *yv = py->value.data(), *g = py->grad.data();
      T* gx = px->grad.data();
      for (index_t i = 0, n = px->value.size(); i < n; ++i) gx[i] += g[i] * df(xv[i], yv[i]);
    });
  }
  return y;
}

} // namespace ika::detail

namespace ika::ad {

// --- broadcasting arithmetic ------------------------------------------------------------------

template <class T>
variable<T> add(tape<T>& tp, const variable<T>& a, const variable<T>& b) {
  return ika::detail::ad_binary(
      tp, a, b, "add", [](T x, T y) { return x + y; }, [](T, T) { return T(1); }, [](T, T) { return T(1); });
}
template <class T>
variable<T> sub(tape<T>& tp, const variable<T>& a, const variable<T>& b) {
  return ika::detail::ad_binary(
      tp, a, b, "sub", [](T x, T y) { return x - y; }, [](T, T) { return T(1); }, [](T, T) { return T(-1); });
}
template <class T>
variable<T> mul(tape<T>& tp, const variable<T>& a, const variable<T>& b) {
  return ika::detail::ad_binary(
      tp, a, b, "mul", [](T x, T y) { return x * y; }, [](T, T y) { return y; }, [](T x, T) { return x; });
}
template <class T>
variable<T> div(tape<T>& tp, const variable<T>& a, const variable<T>& b) {
  return ika::detail::ad_binary(
      tp, a, b, "div", [](T x, T y) { return x / y; }, [](T, T y) { return T(1) / y; },
      [](T x, T y) { return -x / (y * y); });
}

// --- element-wise functions ---------------------------------------------------------------------

template <class T>
variable<T> relu(tape<T>& tp, const variable<T>& x) {
  return ika::detail::ad_unary(
      tp, x, "relu", [](T v) { return v > 0 ? v : T(0); }, [](T v, T) { return v > 0 ? T(1) : T(0); });
}

template <class T>
variable<T> leaky_relu(tape<T>& tp, const variable<T>& x, double negative_slope = 0.01) {
  ika::detail::require(std::isfinite(negative_slope), "negative_slope", "a finite value, got ", negative_slope);
  const T s = T(negative_slope);
  return ika::detail::ad_unary(
      tp, x, "leaky_relu", [s](T v) { return v > 0 ? v : s * v; }, [s](T v, T) { return v > 0 ? T(1) : s; });
}

// The exact form x·Φ(x) = x/2·(1 + erf(x/√2)), PyTorch's default (approximate='none').
template <class T>
variable<T> gelu(tape<T>& tp, const variable<T>& x) {
  return ika::detail::ad_unary(
      tp, x, "gelu", [](T v) { return T(0.5) * v * (T(1) + std::erf(v * T(0.70710678118654752440))); },
      [](T v, T) {
        const T cdf = T(0.5) * (T(1) + std::erf(v * T(0.70710678118654752440)));
        const T pdf = T(0.39894228040143267794) * std::exp(T(-0.5) * v * v);
        return cdf + v * pdf;
      });
}

template <class T>
variable<T> tanh(tape<T>& tp, const variable<T>& x) {
  return ika::detail::ad_unary(
      tp, x, "tanh", [](T v) { return std::tanh(v); }, [](T, T y) { return T(1) - y * y; });
}

template <class T>
variable<T> exp(tape<T>& tp, const variable<T>& x) {
  return ika::detail::ad_unary(
      tp, x, "exp", [](T v) { return std::exp(v); }, [](T, T y) { return y; });
}

// Natural logarithm; x ≤ 0 gives −inf or NaN, as std::log does.
template <class T>
variable<T> log(tape<T>& tp, const variable<T>& x) {
  return ika::detail::ad_unary(
      tp, x, "log", [](T v) { return std::log(v); }, [](T v, T) { return T(1) / v; });
}

// |x|, with the subgradient 0 at x = 0.
template <class T>
variable<T> abs(tape<T>& tp, const variable<T>& x) {
  return ika::detail::ad_unary(
      tp, x, "abs", [](T v) { return std::abs(v); }, [](T v, T) { return T((v > 0) - (v < 0)); });
}

// min(max(x, lo), hi); the gradient passes where lo < x < hi.
template <class T>
variable<T> clamp(tape<T>& tp, const variable<T>& x, double lo, double hi) {
  ika::detail::require(lo <= hi, "lo", "lo <= hi, got lo = ", lo, ", hi = ", hi);
  const T a = T(lo), b = T(hi);
  return ika::detail::ad_unary(
      tp, x, "clamp", [a, b](T v) { return std::min(std::max(v, a), b); },
      [a, b](T v, T) { return v > a && v < b ? T(1) : T(0); });
}

// Φ(x), the standard normal distribution function.
template <class T>
variable<T> normal_cdf(tape<T>& tp, const variable<T>& x) {
  return ika::detail::ad_unary(
      tp, x, "normal_cdf", [](T v) { return T(0.5) * std::erfc(-v * T(0.70710678118654752440)); },
      [](T v, T) { return T(0.39894228040143267794) * std::exp(T(-0.5) * v * v); });
}

// y = s·x for a constant s.
template <class T>
variable<T> scale(tape<T>& tp, const variable<T>& x, double s) {
  const T c = T(s);
  return ika::detail::ad_unary(
      tp, x, "scale", [c](T v) { return c * v; }, [c](T, T) { return c; });
}

// --- reductions ----------------------------------------------------------------------------------

} // namespace ika::ad

namespace ika::detail {
template <class T>
ad::variable<T> ad_reduce_axis(ad::tape<T>& tp, const ad::variable<T>& x, int axis, bool keepdim, bool mean, const char* name) {
  require(x.defined(), "x", "a defined variable");
  axis = ad_axis(axis, x.shape().rank());
  const auto sp = ad_split_at(x.shape(), axis);
  std::array<index_t, 4> dims{};
  int rank = 0;
  for (int i = 0; i < x.shape().rank(); ++i) {
    if (i != axis) dims[std::size_t(rank++)] = x.shape()[i];
    else if (keepdim) dims[std::size_t(rank++)] = 1;
  }
  const bool grad = ad::tape<T>::needs_grad(x);
  ad::variable<T> y = tp.make_result(ad::shape(std::span<const index_t>(dims.data(), std::size_t(rank))), grad);
  const T s = mean ? T(1) / T(sp.n) : T(1);
  const T* xv = x.value().data();
  T* yv = y.value().data();
  for (index_t o = 0; o < sp.outer; ++o)
    for (index_t i = 0; i < sp.inner; ++i) {
      T acc = 0;
      for (index_t k = 0; k < sp.n; ++k) acc += xv[(o * sp.n + k) * sp.inner + i];
      yv[o * sp.inner + i] = acc * s;
    }
  if (grad) {
    auto *px = x.impl(), *py = y.impl();
    tp.record(name, y, {x}, [px, py, sp, s] {
      const T* g = py->grad.data();
      T* gx = px->grad.data();
      for (index_t o = 0; o < sp.outer; ++o)
        for (index_t k = 0; k < sp.n; ++k)
          for (index_t i = 0; i < sp.inner; ++i) gx[(o * sp.n + k) * sp.inner + i] += s * g[o * sp.inner + i];
    });
  }
  return y;
}

template <class T>
ad::variable<T> ad_reduce_all(ad::tape<T>& tp, const ad::variable<T>& x, bool mean, const char* name) {
  require(x.defined(), "x", "a defined variable");
  const bool grad = ad::tape<T>::needs_grad(x);
  ad::variable<T> y = tp.make_result(ad::shape{}, grad);
  const T s = mean ? T(1) / T(x.size()) : T(1);
  T acc = 0;
  for (T v : x.value()) acc += v;
  y.value()[0] = acc * s;
  if (grad) {
    auto *px = x.impl(), *py = y.impl();
    tp.record(name, y, {x}, [px, py, s] {
      const T g = py->grad[0] * s;
      for (T& v : px->grad) v += g;
    });
  }
  return y;
}
} // namespace ika::detail

namespace ika::ad {

// Sum over one axis (negative counts from the end); keepdim leaves it as size 1.
template <class T>
variable<T> sum(tape<T>& tp, const variable<T>& x, int axis, bool keepdim = false) {
  return ika::detail::ad_reduce_axis(tp, x, axis, keepdim, false, "sum");
}
template <class T>
variable<T> mean(tape<T>& tp, const variable<T>& x, int axis, bool keepdim = false) {
  return ika::detail::ad_reduce_axis(tp, x, axis, keepdim, true, "mean");
}
// Sum / mean of every element: a rank-0 result.
template <class T>
variable<T> sum(tape<T>& tp, const variable<T>& x) {
  return ika::detail::ad_reduce_all(tp, x, false, "sum");
}
template <class T>
variable<T> mean(tape<T>& tp, const variable<T>& x) {
  return ika::detail::ad_reduce_all(tp, x, true, "mean");
}

// --- shape operations (results are copies; gradients flow back by the inverse mapping) -----------

template <class T>
variable<T> reshape(tape<T>& tp, const variable<T>& x, const shape& s) {
  ika::detail::require(x.defined(), "x", "a defined variable");
  ika::detail::require(s.numel() == x.size(), "shape", "a shape of ", x.size(), " elements like ", x.shape().str(),
                       ", got ", s.str());
  const bool grad = tape<T>::needs_grad(x);
  variable<T> y = tp.make_result(s, grad);
  std::copy(x.value().begin(), x.value().end(), y.value().begin());
  if (grad) {
    auto *px = x.impl(), *py = y.impl();
    tp.record("reshape", y, {x}, [px, py] {
      for (index_t i = 0, n = px->grad.size(); i < n; ++i) px->grad[i] += py->grad[i];
    });
  }
  return y;
}

// Swaps two axes (negative counts from the end).
template <class T>
variable<T> transpose(tape<T>& tp, const variable<T>& x, int axis0, int axis1) {
  ika::detail::require(x.defined(), "x", "a defined variable");
  const int rank = x.shape().rank();
  axis0 = ika::detail::ad_axis(axis0, rank, "axis0");
  axis1 = ika::detail::ad_axis(axis1, rank, "axis1");
  shape s = x.shape();
  std::swap(s[axis0], s[axis1]);
  // Output dims padded to 4, and the input stride each output axis walks.
  const auto pin = x.shape().padded();
  auto in_stride = ika::detail::ad_strides(pin);
  const std::size_t a0 = std::size_t(4 - rank + axis0), a1 = std::size_t(4 - rank + axis1);
  std::swap(in_stride[a0], in_stride[a1]);
  const auto dims = s.padded();
  const bool grad = tape<T>::needs_grad(x);
  variable<T> y = tp.make_result(s, grad);
  ika::detail::ad_broadcast walk; // output index → input index as a broadcast with b = a
  walk.dims = dims;
  walk.stride_a = in_stride;
  walk.stride_b = in_stride;
  {
    const T* xv = x.value().data();
    T* yv = y.value().data();
    ika::detail::ad_for_each(walk, [&](index_t o, index_t i, index_t) { yv[o] = xv[i]; });
  }
  if (grad) {
    auto *px = x.impl(), *py = y.impl();
    tp.record("transpose", y, {x}, [px, py, dims, in_stride] {
      ika::detail::ad_broadcast walk;
      walk.dims = dims;
      walk.stride_a = in_stride;
      walk.stride_b = in_stride;
      const T* g = py->grad.data();
      T* gx = px->grad.data();
      ika::detail::ad_for_each(walk, [&](index_t o, index_t i, index_t) { gx[i] += g[o]; });
    });
  }
  return y;
}

// Elements [start, stop) along one axis.
template <class T>
variable<T> slice(tape<T>& tp, const variable<T>& x, int axis, index_t start, index_t stop) {
  ika::detail::require(x.defined(), "x", "a defined variable");
  axis = ika::detail::ad_axis(axis, x.shape().rank());
  const index_t n = x.shape()[axis];
  ika::detail::require(start >= 0 && start <= n, "start", "0 <= start <= ", n, ", got ", start);
  ika::detail::require(stop >= start && stop <= n, "stop", start, " <= stop <= ", n, ", got ", stop);
  const auto sp = ika::detail::ad_split_at(x.shape(), axis);
  shape s = x.shape();
  s[axis] = stop - start;
  const index_t m = stop - start;
  const bool grad = tape<T>::needs_grad(x);
  variable<T> y = tp.make_result(s, grad);
  const T* xv = x.value().data();
  T* yv = y.value().data();
  for (index_t o = 0; o < sp.outer; ++o)
    std::copy(xv + (o * n + start) * sp.inner, xv + (o * n + stop) * sp.inner, yv + o * m * sp.inner);
  if (grad) {
    auto *px = x.impl(), *py = y.impl();
    tp.record("slice", y, {x}, [px, py, sp, start, m] {
      const T* g = py->grad.data();
      T* gx = px->grad.data();
      for (index_t o = 0; o < sp.outer; ++o)
        for (index_t i = 0; i < m * sp.inner; ++i) gx[(o * sp.n + start) * sp.inner + i] += g[o * m * sp.inner + i];
    });
  }
  return y;
}

// Joins tensors of equal shape except along `axis`.
template <class T>
variable<T> concat(tape<T>& tp, std::type_identity_t<std::span<const variable<T>>> xs, int axis) {
  ika::detail::require(!xs.empty(), "xs", "at least one variable");
  for (const auto& x : xs) ika::detail::require(x.defined(), "xs", "defined variables");
  const shape& first = xs[0].shape();
  axis = ika::detail::ad_axis(axis, first.rank());
  shape s = first;
  s[axis] = 0;
  bool grad = false;
  for (const auto& x : xs) {
    bool same = x.shape().rank() == first.rank();
    for (int i = 0; same && i < first.rank(); ++i) same = i == axis || x.shape()[i] == first[i];
    ika::detail::require(same, "xs", "shapes equal to ", first.str(), " except along axis ", axis, ", got ",
                         x.shape().str());
    s[axis] += x.shape()[axis];
    grad = grad || tape<T>::needs_grad(x);
  }
  const auto sp = ika::detail::ad_split_at(s, axis);
  variable<T> y = tp.make_result(s, grad);
  T* yv = y.value().data();
  index_t offset = 0;
  for (const auto& x : xs) {
    const index_t m = x.shape()[axis];
    for (index_t o = 0; o < sp.outer; ++o)
      std::copy(x.value().data() + o * m * sp.inner, x.value().data() + (o + 1) * m * sp.inner,
                yv + (o * sp.n + offset) * sp.inner);
    offset += m;
  }
  if (grad) {
    std::size_t first_link = 0;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      const std::size_t l = tp.link(xs[i]);
      if (i == 0) first_link = l;
    }
    const std::size_t count = xs.size();
    auto* py = y.impl();
    tape<T>* t = &tp;
    tp.record("concat", y, {}, [t, first_link, count, py, axis, sp] {
      const T* g = py->grad.data();
      index_t offset = 0;
      for (std::size_t k = 0; k < count; ++k) {
        auto* px = t->linked(first_link + k);
        const index_t m = px->value.shape()[axis];
        if (px->requires_grad)
          for (index_t o = 0; o < sp.outer; ++o)
            for (index_t i = 0; i < m * sp.inner; ++i)
              px->grad[o * m * sp.inner + i] += g[(o * sp.n + offset) * sp.inner + i];
        offset += m;
      }
    });
  }
  return y;
}
template <class T>
variable<T> concat(tape<T>& tp, std::initializer_list<variable<T>> xs, int axis) {
  return concat(tp, std::span<const variable<T>>(xs.begin(), xs.size()), axis);
}

} // namespace ika::ad
