// SPDX-License-Identifier: MIT
#pragma once

// Helpers for tests of ika::ad code: random leaves and a finite-difference check of a variable's
// gradient.

#include <algorithm>
#include <cmath>
#include <functional>
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

// max |x.grad() − central difference of loss| / max(1, max |x.grad()|) over the entries of x (the
// gradient must hold d loss/dx already), step 1e-6.
inline double finite_difference_error(ika::ad::variable<double>& x, const std::function<double()>& loss) {
  const std::vector<double> analytic(x.grad().begin(), x.grad().end());
  double worst = 0, scale = 1;
  for (double a : analytic) scale = std::max(scale, std::abs(a));
  for (ika::index_t i = 0; i < x.value().size(); ++i) {
    double& e = x.value()[i];
    const double saved = e, h = 1e-6;
    e = saved + h;
    const double up = loss();
    e = saved - h;
    const double down = loss();
    e = saved;
    worst = std::max(worst, std::abs((up - down) / (2 * h) - analytic[std::size_t(i)]));
  }
  return worst / scale;
}

} // namespace ika_test
