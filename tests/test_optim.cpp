// SPDX-License-Identifier: MIT
// Optimiser steps against values worked out by hand (the arithmetic is spelled out below,
// following the update rules of torch.optim), and clipping by global norm.

#include <doctest/doctest.h>

#include <cmath>

#include <ika/autodiff/autodiff.hpp>
#include <ika/nn/optim.hpp>

namespace ad = ika::ad;

namespace {

// One scalar parameter whose gradient we set by hand each step.
ad::variable<double> scalar(double value) { return ad::variable<double>(ad::tensor<double>(ad::shape{1}, value), true); }

} // namespace

TEST_CASE("Adam: two steps on one parameter, by hand") {
  auto p = scalar(1.0);
  ika::nn::adam<double> opt({p}, {.lr = 0.1});
  p.grad()[0] = 0.5;
  opt.step();
  // m = 0.05, v = 0.00025; m̂ = 0.05 / 0.1 = 0.5, v̂ = 0.00025 / 0.001 = 0.25; step = 0.1 · 0.5 / (0.5 + 1e-8)
  CHECK(p.value()[0] == doctest::Approx(1.0 - 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(1e-14));
  CHECK(p.value()[0] == doctest::Approx(0.900000002).epsilon(1e-12));
  p.grad()[0] = -0.25;
  opt.step();
  // m = 0.9·0.05 − 0.1·0.25 = 0.02; v = 0.999·0.00025 + 0.001·0.0625 = 0.00031225
  // m̂ = 0.02 / 0.19 = 0.10526315789…; v̂ = 0.00031225 / 0.001999 = 0.15620310155…; √v̂ = 0.39522538…
  // step = 0.1 · 0.10526315789 / 0.39522538 = 0.026633583…
  CHECK(p.value()[0] == doctest::Approx(0.900000002 - 0.1 * (0.02 / 0.19) / (std::sqrt(0.00031225 / 0.001999) + 1e-8)).epsilon(1e-12));
  CHECK(p.value()[0] == doctest::Approx(0.8733664).epsilon(1e-7));
}

TEST_CASE("Adam with L2 weight decay and AdamW with decoupled decay differ as PyTorch's do") {
  auto a = scalar(2.0), w = scalar(2.0);
  ika::nn::adam<double> adam({a}, {.lr = 0.1, .weight_decay = 0.5});
  ika::nn::adam<double> adamw({w}, ika::nn::adamw_options(0.1, 0.5));
  a.grad()[0] = w.grad()[0] = 0.3;
  adam.step();
  adamw.step();
  // Adam: g = 0.3 + 0.5·2 = 1.3; the first step moves by lr · g / (|g| + eps) = 0.1 (almost)
  CHECK(a.value()[0] == doctest::Approx(2.0 - 0.1 * 1.3 / (1.3 + 1e-8)).epsilon(1e-14));
  // AdamW: p = 2·(1 − 0.1·0.5) = 1.9, then the Adam step on g = 0.3: 0.1 · 0.3 / (0.3 + 1e-8)
  CHECK(w.value()[0] == doctest::Approx(1.9 - 0.1 * 0.3 / (0.3 + 1e-8)).epsilon(1e-14));
}

TEST_CASE("SGD with momentum and Nesterov, by hand") {
  auto p = scalar(1.0), n = scalar(1.0);
  ika::nn::sgd<double> plain({p}, {.lr = 0.1, .momentum = 0.9});
  ika::nn::sgd<double> nesterov({n}, {.lr = 0.1, .momentum = 0.9, .nesterov = true});
  p.grad()[0] = n.grad()[0] = 1.0;
  plain.step();
  nesterov.step();
  CHECK(p.value()[0] == doctest::Approx(0.9));  // buf = 1, p = 1 − 0.1
  CHECK(n.value()[0] == doctest::Approx(0.81)); // buf = 1, g = 1 + 0.9·1 = 1.9, p = 1 − 0.19
  p.grad()[0] = n.grad()[0] = 0.5;
  plain.step();
  nesterov.step();
  CHECK(p.value()[0] == doctest::Approx(0.9 - 0.1 * 1.4));              // buf = 0.9 + 0.5 = 1.4
  CHECK(n.value()[0] == doctest::Approx(0.81 - 0.1 * (0.5 + 0.9 * 1.4))); // g = 0.5 + 0.9·1.4
}

TEST_CASE("clip_grad_norm scales by max_norm / (norm + 1e-6) only above the bound") {
  auto a = ad::variable<double>(ad::tensor<double>(ad::shape{2}, 0.0), true), b = scalar(0.0);
  a.grad()[0] = 3;
  a.grad()[1] = 0;
  b.grad()[0] = 4; // global norm 5
  std::vector<ad::variable<double>> params{a, b};
  CHECK(ika::nn::clip_grad_norm(params, 10.0) == doctest::Approx(5.0));
  CHECK(b.grad()[0] == 4.0); // below the bound: untouched
  CHECK(ika::nn::clip_grad_norm(params, 1.0) == doctest::Approx(5.0));
  CHECK(a.grad()[0] == doctest::Approx(3.0 / (5.0 + 1e-6)));
  CHECK(b.grad()[0] == doctest::Approx(4.0 / (5.0 + 1e-6)));
  CHECK_THROWS_AS(ika::nn::clip_grad_norm(params, 0.0), ika::invalid_argument);
}

TEST_CASE("optimisers refuse parameters that do not require grad") {
  auto frozen = ad::variable<double>(ad::tensor<double>(ad::shape{1}, 1.0), false);
  CHECK_THROWS_AS(ika::nn::adam<double>({frozen}, {}), ika::invalid_argument);
  CHECK_THROWS_AS(ika::nn::sgd<double>({frozen}, {}), ika::invalid_argument);
}
