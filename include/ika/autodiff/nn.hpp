// SPDX-License-Identifier: MIT
#pragma once

// Layers and losses of ika::ad: layer_norm, softmax cross-entropy, masked MSE, dropout, patches.

#include <cmath>
#include <cstdint>
#include <span>
#include <type_traits>

#include "ika/autodiff/tape.hpp"
#include "ika/autodiff/tensor.hpp"
#include "ika/core/error.hpp"
#include "ika/core/random.hpp"

namespace ika::ad {

// Normalises over the last axis (biased variance, as PyTorch), then y = x̂·weight + bias, with
// weight and bias of shape (n,) for a last axis of n.
template <class T>
variable<T> layer_norm(tape<T>& tp, const variable<T>& x, const variable<T>& weight, const variable<T>& bias,
                       double eps = 1e-5) {
  ika::detail::require(x.defined() && x.shape().rank() >= 1, "x", "a variable of rank >= 1");
  ika::detail::require(eps >= 0, "eps", "eps >= 0, got ", eps);
  const index_t n = x.shape()[x.shape().rank() - 1];
  ika::detail::require(n >= 1, "x", "a last axis of size >= 1, got ", x.shape().str());
  ika::detail::require(weight.defined() && weight.shape() == shape{n}, "weight", "shape (", n, ",), got ",
                       weight.defined() ? weight.shape().str() : "undefined");
  ika::detail::require(bias.defined() && bias.shape() == shape{n}, "bias", "shape (", n, ",), got ",
                       bias.defined() ? bias.shape().str() : "undefined");
  const index_t rows = x.size() / n;
  const bool grad = tape<T>::needs_grad(x, weight, bias);
  variable<T> y = tp.make_result(x.shape(), grad);
  // mean and 1/sqrt(var + eps) of row r, accumulated in double
  auto stats = [n, eps](const T* row, double& mu, double& rstd) {
    double s = 0, ss = 0;
    for (index_t j = 0; j < n; ++j) s += row[j];
    mu = s / double(n);
    for (index_t j = 0; j < n; ++j) ss += (row[j] - mu) * (row[j] - mu);
    rstd = 1.0 / std::sqrt(ss / double(n) + eps);
  };
  for (index_t r = 0; r < rows; ++r) {
    const T* xr = x.value().data() + r * n;
    T* yr = y.value().data() + r * n;
    double mu, rstd;
    stats(xr, mu, rstd);
    for (index_t j = 0; j < n; ++j) yr[j] = T((xr[j] - mu) * rstd) * weight.value()[j] + bias.value()[j];
  }
  if (grad) {
    auto *px = x.impl(), *pw = weight.impl(), *pb = bias.impl(), *py = y.impl();
    tp.record("layer_norm", y, {x, weight, bias}, [px, pw, pb, py, n, rows, stats] {
      for (index_t r = 0; r < rows; ++r) {
        const T* xr = px->value.data() + r * n;
        const T* g = py->grad.data() + r * n;
        double mu, rstd;
        stats(xr, mu, rstd);
        double mean_d = 0, mean_dx = 0; // means of dx̂ and dx̂·x̂
        for (index_t j = 0; j < n; ++j) {
          const double xh = (xr[j] - mu) * rstd, dxh = double(g[j]) * pw->value[j];
          mean_d += dxh;
          mean_dx += dxh * xh;
          if (pw->requires_grad) pw->grad[j] += T(g[j] * xh);
          if (pb->requires_grad) pb->grad[j] += g[j];
        }
        mean_d /= double(n);
        mean_dx /= double(n);
        if (px->requires_grad) {
          T* gx = px->grad.data() + r * n;
          for (index_t j = 0; j < n; ++j) {
            const double xh = (xr[j] - mu) * rstd, dxh = double(g[j]) * pw->value[j];
            gx[j] += T(rstd * (dxh - mean_d - xh * mean_dx));
          }
        }
      }
    });
  }
  return y;
}

// mean_i [ log Σ_c exp(z_ic) − z_i,label_i ] for logits z of shape (N, C) and N labels in [0, C).
template <class T>
variable<T> softmax_cross_entropy(tape<T>& tp, const variable<T>& logits, std::span<const int> labels) {
  ika::detail::require(logits.defined() && logits.shape().rank() == 2 && logits.shape()[0] >= 1 &&
                           logits.shape()[1] >= 1,
                       "logits", "shape (N, C) with N, C >= 1, got ",
                       logits.defined() ? logits.shape().str() : "undefined");
  const index_t N = logits.shape()[0], C = logits.shape()[1];
  ika::detail::require(index_t(labels.size()) == N, "labels", N, " labels (one per row of logits ",
                       logits.shape().str(), "), got ", labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i)
    ika::detail::require(labels[i] >= 0 && labels[i] < C, "labels", "classes in [0, ", C, "), got ", labels[i],
                         " at ", i);
  const bool grad = tape<T>::needs_grad(logits);
  variable<T> y = tp.make_result(shape{}, grad);
  tensor<T>* probs = grad ? &tp.saved(shape{N, C}) : nullptr;
  tensor<T>* saved_labels = grad ? &tp.saved(shape{N}) : nullptr;
  double total = 0;
  for (index_t i = 0; i < N; ++i) {
    const T* z = logits.value().data() + i * C;
    double mx = z[0];
    for (index_t c = 1; c < C; ++c) mx = std::max(mx, double(z[c]));
    double s = 0;
    for (index_t c = 0; c < C; ++c) s += std::exp(z[c] - mx);
    total += mx + std::log(s) - z[labels[std::size_t(i)]];
    if (grad) {
      for (index_t c = 0; c < C; ++c) (*probs)[i * C + c] = T(std::exp(z[c] - mx) / s);
      (*saved_labels)[i] = T(labels[std::size_t(i)]);
    }
  }
  y.value()[0] = T(total / double(N));
  if (grad) {
    auto *pz = logits.impl(), *py = y.impl();
    tp.record("softmax_cross_entropy", y, {logits}, [pz, py, probs, saved_labels, N, C] {
      const T g = py->grad[0] / T(N);
      for (index_t i = 0; i < N; ++i) {
        const index_t label = index_t((*saved_labels)[i]);
        for (index_t c = 0; c < C; ++c)
          pz->grad[i * C + c] += g * ((*probs)[i * C + c] - (c == label ? T(1) : T(0)));
      }
    });
  }
  return y;
}

} // namespace ika::ad

namespace ika::detail {
template <class T, class M>
ad::variable<T> ad_masked_mse(ad::tape<T>& tp, const ad::variable<T>& pred, const ad::variable<T>& target,
                              std::span<const M> mask) {
  require(pred.defined(), "pred", "a defined variable");
  require(target.defined() && target.shape() == pred.shape(), "target", "the shape of pred ", pred.shape().str(),
          ", got ", target.defined() ? target.shape().str() : "undefined");
  require(index_t(mask.size()) == pred.size(), "mask", pred.size(), " entries (one per element of pred ",
          pred.shape().str(), "), got ", mask.size());
  const bool grad = ad::tape<T>::needs_grad(pred, target);
  ad::variable<T> y = tp.make_result(ad::shape{}, grad);
  ad::tensor<T>* keep = grad ? &tp.saved(pred.shape()) : nullptr;
  index_t count = 0;
  double total = 0;
  for (index_t i = 0; i < pred.size(); ++i) {
    const bool on = bool(mask[std::size_t(i)]);
    if (keep) (*keep)[i] = on ? T(1) : T(0);
    if (!on) continue;
    ++count;
    const double d = double(pred.value()[i]) - double(target.value()[i]);
    total += d * d;
  }
  y.value()[0] = count ? T(total / double(count)) : T(0); // no entry: 0, never NaN
  if (grad) {
    auto *pp = pred.impl(), *pt = target.impl(), *py = y.impl();
    tp.record("masked_mse", y, {pred, target}, [pp, pt, py, keep, count] {
      if (count == 0) return;
      const T g = T(2) * py->grad[0] / T(count);
      for (index_t i = 0; i < pp->value.size(); ++i) {
        const T d = (*keep)[i] * g * (pp->value[i] - pt->value[i]);
        if (pp->requires_grad) pp->grad[i] += d;
        if (pt->requires_grad) pt->grad[i] -= d;
      }
    });
  }
  return y;
}
} // namespace ika::detail

namespace ika::ad {

// Mean of (pred − target)² over the entries where mask is true (0 when none is).
template <class T>
variable<T> masked_mse(tape<T>& tp, const variable<T>& pred, const variable<T>& target, std::span<const bool> mask) {
  return ika::detail::ad_masked_mse(tp, pred, target, mask);
}
template <class T>
variable<T> masked_mse(tape<T>& tp, const variable<T>& pred, const variable<T>& target,
                       std::span<const std::uint8_t> mask) {
  return ika::detail::ad_masked_mse(tp, pred, target, mask);
}

// Inverted dropout: element i is kept when counter_rng(seed).uniform(stream, i) >= p and then
// scaled by 1/(1 − p). The mask is a pure function of (seed, stream, i): no thread or call order
// enters it, and backward recomputes it instead of storing it.
template <class T>
variable<T> dropout(tape<T>& tp, const variable<T>& x, double p, std::uint64_t seed, std::uint64_t stream = 0) {
  ika::detail::require(x.defined(), "x", "a defined variable");
  ika::detail::require(p >= 0 && p < 1, "p", "a drop probability in [0, 1), got ", p);
  const counter_rng rng(seed);
  const T scale = T(1.0 / (1.0 - p));
  const bool grad = tape<T>::needs_grad(x);
  variable<T> y = tp.make_result(x.shape(), grad);
  for (index_t i = 0; i < x.size(); ++i)
    y.value()[i] = rng.uniform(stream, std::uint64_t(i)) >= p ? x.value()[i] * scale : T(0);
  if (grad) {
    auto *px = x.impl(), *py = y.impl();
    tp.record("dropout", y, {x}, [px, py, rng, stream, p, scale] {
      for (index_t i = 0; i < px->value.size(); ++i)
        if (rng.uniform(stream, std::uint64_t(i)) >= p) px->grad[i] += py->grad[i] * scale;
    });
  }
  return y;
}

// Non-overlapping square patches of images (B, C, H, W) → (B, (H/p)·(W/p), C·p·p), patches in
// row-major order over the grid, features ordered (channel, dy, dx): what a Conv2d with kernel
// and stride p flattens, as a Vision Transformer's patch embedding reads it.
template <class T>
variable<T> patches(tape<T>& tp, const variable<T>& x, index_t patch) {
  ika::detail::require(x.defined() && x.shape().rank() == 4, "x", "images (B, C, H, W), got ",
                       x.defined() ? x.shape().str() : "undefined");
  const index_t B = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
  ika::detail::require(patch >= 1 && H % patch == 0 && W % patch == 0, "patch",
                       "a patch size >= 1 that divides H = ", H, " and W = ", W, ", got ", patch);
  const index_t gh = H / patch, gw = W / patch, F = C * patch * patch;
  const bool grad = tape<T>::needs_grad(x);
  variable<T> y = tp.make_result(shape{B, gh * gw, F}, grad);
  // f(output index, input index) for every element
  auto walk = [B, C, H, W, gh, gw, patch, F](auto&& f) {
    for (index_t b = 0; b < B; ++b)
      for (index_t py = 0; py < gh; ++py)
        for (index_t px = 0; px < gw; ++px)
          for (index_t c = 0; c < C; ++c)
            for (index_t dy = 0; dy < patch; ++dy)
              for (index_t dx = 0; dx < patch; ++dx)
                f(((b * gh + py) * gw + px) * F + (c * patch + dy) * patch + dx,
                  ((b * C + c) * H + py * patch + dy) * W + px * patch + dx);
  };
  const T* xv = x.value().data();
  T* yv = y.value().data();
  walk([&](index_t o, index_t i) { yv[o] = xv[i]; });
  if (grad) {
    auto *px = x.impl(), *py = y.impl();
    tp.record("patches", y, {x}, [px, py, walk] {
      const T* g = py->grad.data();
      T* gx = px->grad.data();
      walk([&](index_t o, index_t i) { gx[i] += g[o]; });
    });
  }
  return y;
}

} // namespace ika::ad
