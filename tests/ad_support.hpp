// SPDX-License-Identifier: MIT
#pragma once

// Helpers for tests of ika::ad code: random leaves, a finite-difference check of a variable's
// gradient, and the vector-Jacobian check of an operation's gradients against central differences.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <vector>

#include <ika/autodiff/tensor.hpp>
#include <ika/autodiff/tape.hpp>

#include "support.hpp"

namespace ika_test {

// A leaf of shape s with N(0, scale²) values.
template <class T = double>
ika::ad::variable<T> random_variable(ika::ad::shape s, std::uint64_t seed, double scale = 1.0, bool requires_grad = true) {
  std::vector<T> x(std::size_t(s.numel()));
  fill_normal(x, seed, scale);
  return ika::ad::variable<T>(ika::ad::tensor<T>(s, std::span<const T>(x)), requires_grad);
}

// Uniform in [lo, hi], kept at least `gap` away from 0 (kinks of relu and friends).
inline ika::ad::tensor<double> uniform_tensor(const ika::ad::shape& s, std::uint64_t seed, double lo = -1, double hi = 1,
                                              double gap = 0) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  ika::ad::tensor<double> t(s);
  for (double& v : t) {
    do v = u(gen);
    while (std::abs(v) < gap);
  }
  return t;
}

// A leaf of shape s with uniform_tensor's values.
inline ika::ad::variable<double> uniform_leaf(const ika::ad::shape& s, std::uint64_t seed, bool requires_grad = true,
                                              double lo = -1, double hi = 1, double gap = 0) {
  return ika::ad::variable<double>(uniform_tensor(s, seed, lo, hi, gap), requires_grad);
}

// (loss(e + h) − loss(e − h)) / 2h, with e as it was afterwards.
inline double central_difference(double& e, const std::function<double()>& loss, double h = 1e-6) {
  const double saved = e;
  e = saved + h;
  const double up = loss();
  e = saved - h;
  const double down = loss();
  e = saved;
  return (up - down) / (2 * h);
}

// max |x.grad() − central difference of loss| / max(1, max |x.grad()|) over the entries of x (the
// gradient must hold d loss/dx already), step 1e-6.
inline double finite_difference_error(ika::ad::variable<double>& x, const std::function<double()>& loss) {
  const std::vector<double> analytic(x.grad().begin(), x.grad().end());
  double worst = 0, scale = 1;
  for (double a : analytic) scale = std::max(scale, std::abs(a));
  for (ika::index_t i = 0; i < x.value().size(); ++i)
    worst = std::max(worst, std::abs(central_difference(x.value()[i], loss) - analytic[std::size_t(i)]));
  return worst / scale;
}

inline double weighted_sum(const ika::ad::tensor<double>& y, const ika::ad::tensor<double>& w) {
  double s = 0;
  for (ika::index_t i = 0; i < y.size(); ++i) s += y[i] * w[i];
  return s;
}

using gradient_builder = std::function<ika::ad::variable<double>(ika::ad::tape<double>&,
                                                                 const std::vector<ika::ad::variable<double>>&)>;

// For y = f(inputs) and a random weight R of y's shape (from seed), checks every input that requires
// grad: the analytic vector-Jacobian product (tape.backward(y, R)) must match the central difference
// of Σ R·f at every element, within 1e-6 · max(1, max |numeric|).
inline void check_gradients(std::vector<ika::ad::variable<double>> inputs, const gradient_builder& f,
                            std::uint64_t seed = 99) {
  constexpr double tolerance = 1e-6;
  ika::ad::tape<double> tp;
  for (auto& x : inputs) x.zero_grad();
  const ika::ad::variable<double> y = f(tp, inputs);
  const ika::ad::tensor<double> R = uniform_tensor(y.shape(), seed);
  tp.backward(y, R);
  ika::ad::tape<double> scratch; // reset for each evaluation, so it is allocated once
  const auto loss = [&] {
    ika::ad::no_grad ng;
    scratch.reset();
    return weighted_sum(f(scratch, inputs).value(), R);
  };
  for (std::size_t k = 0; k < inputs.size(); ++k) {
    if (!inputs[k].requires_grad()) continue;
    ika::ad::tensor<double>& x = inputs[k].value();
    std::vector<double> numeric(std::size_t(x.size()));
    double scale = 1, worst = 0;
    for (ika::index_t i = 0; i < x.size(); ++i) {
      numeric[std::size_t(i)] = central_difference(x[i], loss);
      scale = std::max(scale, std::abs(numeric[std::size_t(i)]));
    }
    for (ika::index_t i = 0; i < x.size(); ++i)
      worst = std::max(worst, std::abs(inputs[k].grad()[i] - numeric[std::size_t(i)]));
    INFO("input ", k, " of shape ", inputs[k].shape().str());
    CHECK(worst <= tolerance * scale);
  }
}

} // namespace ika_test
