// SPDX-License-Identifier: MIT
// Reverse-mode autodiff (ika::ad): every operation's gradient against central finite differences in
// double on awkward shapes, plus the tape's contract (accumulation, no_grad, reset without
// reallocation) and the error contract.
//
// Gradient check: for an operation y = f(x₁, …) and a random weight R of y's shape, the analytic
// vector-Jacobian product (tape.backward(y, R)) must match the central difference
// (Σ R·f(x + h·eᵢ) − Σ R·f(x − h·eᵢ)) / 2h, h = 1e-6, for every input element i, within
//     max_i |analytic_i − numeric_i| ≤ 1e-6 · max(1, max_i |numeric_i|).

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include <omp.h>

#include <ika/autodiff/autodiff.hpp>
#include <ika/core/random.hpp>

#include "ad_support.hpp"

namespace ad = ika::ad;
using var = ad::variable<double>;
using ika_test::check_gradients;
using ika_test::check_throws_argument;
using ika_test::uniform_leaf;
using ika_test::uniform_tensor;

TEST_CASE("broadcasting add/sub/mul/div: gradients on awkward shapes") {
  const std::vector<std::pair<ad::shape, ad::shape>> pairs = {
      {{3, 7}, {3, 7}}, {{3, 7}, {7}}, {{3, 1}, {1, 7}}, {{1}, {3, 7}}, {{2, 1, 7}, {3, 1}}, {{2, 3, 1, 5}, {1, 7, 1}},
      {{}, {3}}};
  std::uint64_t seed = 1;
  for (const auto& [sa, sb] : pairs) {
    INFO("a ", sa.str(), " b ", sb.str());
    auto a = uniform_leaf(sa, seed++), b = uniform_leaf(sb, seed++), bpos = uniform_leaf(sb, seed++, true, 0.5, 2.0);
    check_gradients({a, b}, [](auto& tp, const auto& x) { return ad::add(tp, x[0], x[1]); });
    check_gradients({a, b}, [](auto& tp, const auto& x) { return ad::sub(tp, x[0], x[1]); });
    check_gradients({a, b}, [](auto& tp, const auto& x) { return ad::mul(tp, x[0], x[1]); });
    check_gradients({a, bpos}, [](auto& tp, const auto& x) { return ad::div(tp, x[0], x[1]); });
  }
  // the same variable on both sides: gradients from both operands add up
  auto x = uniform_leaf({3, 7}, 50);
  check_gradients({x}, [](auto& tp, const auto& v) { return ad::mul(tp, v[0], v[0]); });
  // broadcast values are what NumPy gives: out[i][j] = a[i][0] + b[0][j]
  ad::tape<double> tp;
  auto a = uniform_leaf({3, 1}, 51, false), b = uniform_leaf({1, 7}, 52, false);
  auto y = ad::add(tp, a, b);
  REQUIRE(y.shape() == ad::shape{3, 7});
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 7; ++j) CHECK(y.value()[i * 7 + j] == a.value()[i] + b.value()[j]);
}

TEST_CASE("matmul: 2-D and batched, every transpose combination") {
  std::uint64_t seed = 100;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      INFO("transpose_a ", ta, " transpose_b ", tb);
      const ad::matmul_options opt{ta, tb};
      auto mat = [](bool t, ika::index_t r, ika::index_t c) { return t ? ad::shape{c, r} : ad::shape{r, c}; };
      auto bat = [](bool t, ika::index_t b, ika::index_t r, ika::index_t c) {
        return t ? ad::shape{b, c, r} : ad::shape{b, r, c};
      };
      auto f = [opt](auto& tp, const auto& x) { return ad::matmul(tp, x[0], x[1], opt); };
      check_gradients({uniform_leaf(mat(ta, 3, 7), seed++), uniform_leaf(mat(tb, 7, 1), seed++)}, f);
      check_gradients({uniform_leaf(mat(ta, 1, 3), seed++), uniform_leaf(mat(tb, 3, 7), seed++)}, f);
      check_gradients({uniform_leaf(bat(ta, 2, 3, 7), seed++), uniform_leaf(bat(tb, 2, 7, 5), seed++)}, f);
      check_gradients({uniform_leaf(bat(ta, 3, 1, 7), seed++), uniform_leaf(mat(tb, 7, 3), seed++)}, f); // shared weight
      check_gradients({uniform_leaf(mat(ta, 3, 7), seed++), uniform_leaf(bat(tb, 2, 7, 1), seed++)}, f);
    }
  // value against a plain triple loop
  ad::tape<double> tp;
  auto a = uniform_leaf({3, 7}, 1), b = uniform_leaf({5, 7}, 2);
  auto y = ad::matmul(tp, a, b, {.transpose_b = true});
  REQUIRE(y.shape() == ad::shape{3, 5});
  double worst = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) {
      double s = 0;
      for (int k = 0; k < 7; ++k) s += a.value()[i * 7 + k] * b.value()[j * 7 + k];
      worst = std::max(worst, std::abs(s - y.value()[i * 5 + j]));
    }
  CHECK(worst < 1e-13);
}

TEST_CASE("sum and mean over an axis and over all") {
  std::uint64_t seed = 200;
  for (const ad::shape& s : {ad::shape{7}, ad::shape{3, 7}, ad::shape{2, 3, 1, 7}}) {
    for (int axis = -s.rank(); axis < s.rank(); ++axis)
      for (bool keep : {false, true}) {
        INFO("shape ", s.str(), " axis ", axis, " keepdim ", keep);
        check_gradients({uniform_leaf(s, seed++)}, [=](auto& tp, const auto& x) { return ad::sum(tp, x[0], axis, keep); });
        check_gradients({uniform_leaf(s, seed++)}, [=](auto& tp, const auto& x) { return ad::mean(tp, x[0], axis, keep); });
      }
    check_gradients({uniform_leaf(s, seed++)}, [](auto& tp, const auto& x) { return ad::sum(tp, x[0]); });
    check_gradients({uniform_leaf(s, seed++)}, [](auto& tp, const auto& x) { return ad::mean(tp, x[0]); });
  }
  ad::tape<double> tp;
  auto x = uniform_leaf({3, 7}, 1, false);
  auto m = ad::mean(tp, x, 0, true);
  REQUIRE(m.shape() == ad::shape{1, 7});
  CHECK(m.value()[2] == doctest::Approx((x.value()[2] + x.value()[9] + x.value()[16]) / 3).epsilon(1e-14));
  CHECK(ad::sum(tp, x).shape().rank() == 0);
}

TEST_CASE("reshape, transpose, slice, concat") {
  std::uint64_t seed = 300;
  check_gradients({uniform_leaf({3, 7}, seed++)}, [](auto& tp, const auto& x) { return ad::reshape(tp, x[0], {7, 1, 3}); });
  const ad::shape s{2, 3, 1, 7};
  for (int a0 = 0; a0 < 4; ++a0)
    for (int a1 = 0; a1 < 4; ++a1)
      check_gradients({uniform_leaf(s, seed++)}, [=](auto& tp, const auto& x) { return ad::transpose(tp, x[0], a0, a1); });
  check_gradients({uniform_leaf({3, 7}, seed++)}, [](auto& tp, const auto& x) { return ad::transpose(tp, x[0], -1, -2); });
  check_gradients({uniform_leaf({3, 7, 2}, seed++)}, [](auto& tp, const auto& x) { return ad::slice(tp, x[0], 1, 2, 5); });
  check_gradients({uniform_leaf({3, 7}, seed++)}, [](auto& tp, const auto& x) { return ad::slice(tp, x[0], 0, 1, 2); });
  check_gradients({uniform_leaf({3, 1, 2}, seed++), uniform_leaf({3, 7, 2}, seed++), uniform_leaf({3, 3, 2}, seed++, false)},
                  [](auto& tp, const auto& x) { return ad::concat(tp, {x[0], x[1], x[2]}, 1); });
  check_gradients({uniform_leaf({1, 7}, seed++), uniform_leaf({3, 7}, seed++)},
                  [](auto& tp, const auto& x) { return ad::concat(tp, {x[0], x[1]}, 0); });
  // values: transpose of (3, 7) reads x[j][i]; slice and concat put elements where expected
  ad::tape<double> tp;
  auto x = uniform_leaf({3, 7}, 1, false);
  auto t = ad::transpose(tp, x, 0, 1);
  REQUIRE(t.shape() == ad::shape{7, 3});
  CHECK(t.value()[4 * 3 + 2] == x.value()[2 * 7 + 4]);
  auto sl = ad::slice(tp, x, 1, 2, 5);
  CHECK(sl.value()[1 * 3 + 0] == x.value()[1 * 7 + 2]);
  auto c = ad::concat(tp, {sl, x}, 1);
  REQUIRE(c.shape() == ad::shape{3, 10});
  CHECK(c.value()[2 * 10 + 3] == x.value()[2 * 7 + 0]);
}

TEST_CASE("element-wise functions") {
  std::uint64_t seed = 400;
  for (const ad::shape& s : {ad::shape{1}, ad::shape{3, 7}, ad::shape{2, 1, 3, 7}}) {
    INFO("shape ", s.str());
    // keep 1e-3 away from the kinks of relu / leaky_relu (h = 1e-6 never crosses them)
    check_gradients({uniform_leaf(s, seed++, true, -2, 2, 1e-3)}, [](auto& tp, const auto& x) { return ad::relu(tp, x[0]); });
    check_gradients({uniform_leaf(s, seed++, true, -2, 2, 1e-3)},
                    [](auto& tp, const auto& x) { return ad::leaky_relu(tp, x[0], 0.2); });
    check_gradients({uniform_leaf(s, seed++, true, -3, 3)}, [](auto& tp, const auto& x) { return ad::gelu(tp, x[0]); });
    check_gradients({uniform_leaf(s, seed++, true, -2, 2)}, [](auto& tp, const auto& x) { return ad::tanh(tp, x[0]); });
    check_gradients({uniform_leaf(s, seed++, true, -2, 2)}, [](auto& tp, const auto& x) { return ad::exp(tp, x[0]); });
    check_gradients({uniform_leaf(s, seed++, true, 0.3, 3)}, [](auto& tp, const auto& x) { return ad::log(tp, x[0]); });
    check_gradients({uniform_leaf(s, seed++)}, [](auto& tp, const auto& x) { return ad::scale(tp, x[0], -2.5); });
    check_gradients({uniform_leaf(s, seed++, true, -2, 2, 1e-3)}, [](auto& tp, const auto& x) { return ad::abs(tp, x[0]); });
    // x in (−2, 2) against the bounds ±1: both clamped and passing entries (1e-3 from the kinks)
    check_gradients({uniform_leaf(s, seed++, true, -2, 2, 1e-3)},
                    [](auto& tp, const auto& x) { return ad::clamp(tp, x[0], -1.0, 1.0); });
    check_gradients({uniform_leaf(s, seed++, true, -3, 3)}, [](auto& tp, const auto& x) { return ad::normal_cdf(tp, x[0]); });
  }
  {
    // values: Φ(0) = 1/2, Φ(1.959963984540054) = 0.975 (the two-sided 95 % quantile), Φ(−1) = 0.15865525393145707
    ad::tape<double> tp;
    var z(ad::tensor<double>({3}, {0.0, 1.959963984540054, -1.0}));
    auto phi = ad::normal_cdf(tp, z);
    CHECK(phi.value()[0] == 0.5);
    CHECK(phi.value()[1] == doctest::Approx(0.975).epsilon(1e-14));
    CHECK(phi.value()[2] == doctest::Approx(0.15865525393145707).epsilon(1e-14));
    auto c = ad::clamp(tp, z, -0.5, 1.0);
    CHECK(c.value()[1] == 1.0);
    CHECK(c.value()[2] == -0.5);
    CHECK(ad::abs(tp, z).value()[2] == 1.0);
  }
  // values: PyTorch's exact gelu(1) = 0.8413447460685429, gelu(-1) = -0.15865525393145707
  ad::tape<double> tp;
  var x(ad::tensor<double>({3}, {1.0, -1.0, -2.0}));
  auto g = ad::gelu(tp, x);
  CHECK(g.value()[0] == doctest::Approx(0.8413447460685429).epsilon(1e-14));
  CHECK(g.value()[1] == doctest::Approx(-0.15865525393145707).epsilon(1e-14));
  auto l = ad::leaky_relu(tp, x, 0.1);
  CHECK(l.value()[0] == 1.0);
  CHECK(l.value()[2] == doctest::Approx(-0.2).epsilon(1e-15));
  CHECK(ad::relu(tp, x).value()[1] == 0.0);
}

TEST_CASE("layer_norm over the last axis with affine weight and bias") {
  std::uint64_t seed = 500;
  for (const ad::shape& s : {ad::shape{1}, ad::shape{7}, ad::shape{3, 7}, ad::shape{2, 3, 5}, ad::shape{3, 1}}) {
    INFO("shape ", s.str());
    const ika::index_t n = s[s.rank() - 1];
    check_gradients({uniform_leaf(s, seed++), uniform_leaf({n}, seed++, true, 0.5, 1.5), uniform_leaf({n}, seed++)},
                    [](auto& tp, const auto& x) { return ad::layer_norm(tp, x[0], x[1], x[2]); });
  }
  // values: (x − mean)/sqrt(biased var + 1e-5)·w + b, written out here
  ad::tape<double> tp;
  auto x = uniform_leaf({2, 7}, 1, false), w = uniform_leaf({7}, 2, false), b = uniform_leaf({7}, 3, false);
  auto y = ad::layer_norm(tp, x, w, b);
  double worst = 0;
  for (int r = 0; r < 2; ++r) {
    double mu = 0, var = 0;
    for (int j = 0; j < 7; ++j) mu += x.value()[r * 7 + j] / 7;
    for (int j = 0; j < 7; ++j) var += (x.value()[r * 7 + j] - mu) * (x.value()[r * 7 + j] - mu) / 7;
    for (int j = 0; j < 7; ++j) {
      const double expect = (x.value()[r * 7 + j] - mu) / std::sqrt(var + 1e-5) * w.value()[j] + b.value()[j];
      worst = std::max(worst, std::abs(expect - y.value()[r * 7 + j]));
    }
  }
  CHECK(worst < 1e-13);
}

TEST_CASE("softmax cross-entropy and masked MSE") {
  std::uint64_t seed = 600;
  for (auto [N, C] : {std::pair<int, int>{1, 1}, {1, 3}, {3, 7}, {7, 2}}) {
    std::vector<int> labels(static_cast<std::size_t>(N));
    for (int i = 0; i < N; ++i) labels[std::size_t(i)] = (3 * i + 1) % C;
    check_gradients({uniform_leaf({N, C}, seed++, true, -3, 3)}, [labels](auto& tp, const auto& x) {
      return ad::softmax_cross_entropy(tp, x[0], std::span<const int>(labels));
    });
  }
  // value: mean of −log softmax at the label
  ad::tape<double> tp;
  auto z = uniform_leaf({3, 7}, 7, false);
  const std::vector<int> labels{6, 0, 3};
  auto ce = ad::softmax_cross_entropy(tp, z, std::span<const int>(labels));
  double expect = 0;
  for (int i = 0; i < 3; ++i) {
    double s = 0;
    for (int c = 0; c < 7; ++c) s += std::exp(z.value()[i * 7 + c]);
    expect -= std::log(std::exp(z.value()[i * 7 + labels[std::size_t(i)]]) / s) / 3;
  }
  CHECK(ce.value()[0] == doctest::Approx(expect).epsilon(1e-13));

  static const bool mask[21] = {true, false, true, true, false, false, true, true, true, false, true,
                                false, false, true, true, true, false, true, false, true, true};
  check_gradients({uniform_leaf({3, 7}, seed++), uniform_leaf({3, 7}, seed++)}, [](auto& tp, const auto& x) {
    return ad::masked_mse(tp, x[0], x[1], std::span<const bool>(mask, 21));
  });
  auto p = uniform_leaf({3, 7}, 8, false), t = uniform_leaf({3, 7}, 9, false);
  auto mse = ad::masked_mse(tp, p, t, std::span<const bool>(mask, 21));
  double sq = 0;
  int count = 0;
  for (int i = 0; i < 21; ++i)
    if (mask[i]) sq += (p.value()[i] - t.value()[i]) * (p.value()[i] - t.value()[i]), ++count;
  CHECK(mse.value()[0] == doctest::Approx(sq / count).epsilon(1e-14));
  static const bool none[21] = {};
  CHECK(ad::masked_mse(tp, p, t, std::span<const bool>(none, 21)).value()[0] == 0.0);
}

TEST_CASE("seeded dropout: inverted scaling, counter-based mask, gradient") {
  const double p = 0.3;
  check_gradients({uniform_leaf({3, 7}, 700)}, [p](auto& tp, const auto& x) { return ad::dropout(tp, x[0], p, 42, 5); });
  ad::tape<double> tp;
  var x(ad::tensor<double>({100, 100}, 2.0));
  auto y = ad::dropout(tp, x, p, 42, 5);
  const ika::counter_rng rng(42);
  int kept = 0, mismatches = 0;
  for (ika::index_t i = 0; i < y.size(); ++i) {
    const bool keep = rng.uniform(5, std::uint64_t(i)) >= p;
    kept += keep;
    if (y.value()[i] != (keep ? 2.0 / (1 - p) : 0.0)) ++mismatches;
  }
  CHECK(mismatches == 0);
  CHECK(std::abs(kept / 1e4 - (1 - p)) < 0.02); // 1e4 Bernoulli(0.7): sd 0.0046
  // a different seed or stream gives a different mask
  auto y2 = ad::dropout(tp, x, p, 43, 5), y3 = ad::dropout(tp, x, p, 42, 6);
  int differ2 = 0, differ3 = 0;
  for (ika::index_t i = 0; i < y.size(); ++i) differ2 += y.value()[i] != y2.value()[i], differ3 += y.value()[i] != y3.value()[i];
  CHECK(differ2 > 1000);
  CHECK(differ3 > 1000);
  check_throws_argument([&] { ad::dropout(tp, x, 1.0, 1); }, "p");
}

TEST_CASE("patch extraction for images") {
  check_gradients({uniform_leaf({2, 3, 4, 6}, 800)}, [](auto& tp, const auto& x) { return ad::patches(tp, x[0], 2); });
  ad::tape<double> tp;
  auto x = uniform_leaf({1, 2, 4, 6}, 801, false);
  auto y = ad::patches(tp, x, 2);
  REQUIRE(y.shape() == ad::shape{1, 6, 8});
  // patch (row 1, col 2) = index 5, channel 1, dy 1, dx 0 → pixel (c 1, h 3, w 4)
  CHECK(y.value()[5 * 8 + (1 * 2 + 1) * 2 + 0] == x.value()[(1 * 4 + 3) * 6 + 4]);
  check_throws_argument([&] { ad::patches(tp, x, 3); }, "patch");
}

TEST_CASE("a small network end to end: gradients through a composed graph") {
  // (B=2, L=3, D=4) → linear → layer_norm → gelu → mean over L → linear → cross-entropy
  std::uint64_t seed = 900;
  std::vector<var> in{uniform_leaf({2, 3, 4}, seed++, false), uniform_leaf({4, 7}, seed++), uniform_leaf({7}, seed++),
                      uniform_leaf({7}, seed++, true, 0.5, 1.5), uniform_leaf({7}, seed++), uniform_leaf({7, 3}, seed++)};
  check_gradients(in, [](auto& tp, const auto& x) {
    auto h = ad::add(tp, ad::matmul(tp, x[0], x[1]), x[2]);
    h = ad::gelu(tp, ad::layer_norm(tp, h, x[3], x[4]));
    auto pooled = ad::mean(tp, h, 1);
    auto logits = ad::matmul(tp, pooled, x[5]);
    static const std::vector<int> labels{2, 0};
    return ad::softmax_cross_entropy(tp, logits, std::span<const int>(labels));
  });
}

TEST_CASE("gradients accumulate over backward passes until zero_grad") {
  auto w = uniform_leaf({3, 7}, 1), x = uniform_leaf({7, 1}, 2, false);
  ad::tape<double> tp;
  auto run = [&] {
    tp.reset();
    auto loss = ad::sum(tp, ad::tanh(tp, ad::matmul(tp, w, x)));
    tp.backward(loss);
  };
  run();
  const ad::tensor<double> once = w.grad();
  double norm = 0;
  for (double g : once) norm += std::abs(g);
  REQUIRE(norm > 0);
  run();
  double worst = 0;
  for (ika::index_t i = 0; i < once.size(); ++i) worst = std::max(worst, std::abs(w.grad()[i] - 2 * once[i]));
  CHECK(worst < 1e-14);
  // a second backward over the same recording adds once more; intermediates restart from zero
  auto loss = ad::sum(tp, ad::tanh(tp, ad::matmul(tp, w, x)));
  w.zero_grad();
  tp.backward(loss);
  tp.backward(loss);
  worst = 0;
  for (ika::index_t i = 0; i < once.size(); ++i) worst = std::max(worst, std::abs(w.grad()[i] - 2 * once[i]));
  CHECK(worst < 1e-14);
}

TEST_CASE("no_grad records nothing; scopes nest") {
  auto w = uniform_leaf({3, 7}, 1);
  ad::tape<double> tp;
  {
    ad::no_grad outer;
    {
      ad::no_grad inner;
    }
    CHECK_FALSE(ad::grad_enabled());
    auto y = ad::sum(tp, ad::relu(tp, w));
    CHECK(tp.size() == 0);
    CHECK_FALSE(y.requires_grad());
    check_throws_argument([&] { tp.backward(y); }, "loss");
  }
  CHECK(ad::grad_enabled());
  auto y = ad::sum(tp, ad::relu(tp, w));
  CHECK(tp.size() == 2);
  CHECK(y.requires_grad());
  // inputs that need no grad record nothing either
  auto c = uniform_leaf({3}, 2, false);
  tp.reset();
  ad::exp(tp, c);
  CHECK(tp.size() == 0);
}

TEST_CASE("tape reset keeps capacity: the same graph re-recorded allocates nothing") {
  auto w1 = uniform_leaf({4, 7}, 1), b1 = uniform_leaf({7}, 2), g = uniform_leaf({7}, 3), beta = uniform_leaf({7}, 4);
  auto x = uniform_leaf({3, 4}, 5, false);
  const std::vector<int> labels{1, 6, 0};
  ad::tape<double> tp;
  const double* first_hidden = nullptr;
  std::size_t nodes = 0, capacity = 0, storage = 0;
  for (int step = 0; step < 3; ++step) {
    tp.reset();
    if (step > 0) CHECK(tp.node_capacity() == capacity);
    auto h = ad::add(tp, ad::matmul(tp, x, w1), b1);
    auto n = ad::layer_norm(tp, h, g, beta);
    auto loss = ad::softmax_cross_entropy(tp, ad::dropout(tp, n, 0.1, 7, std::uint64_t(step)), labels);
    tp.backward(loss);
    if (step == 0) {
      first_hidden = h.value().data();
      nodes = tp.size();
      capacity = tp.node_capacity();
      storage = tp.storage_count();
    } else {
      CHECK(tp.size() == nodes);
      CHECK(tp.node_capacity() == capacity);
      CHECK(tp.storage_count() == storage);
      CHECK(h.value().data() == first_hidden); // the result buffer was reused, not reallocated
    }
  }
  CHECK(nodes == 5);
  CHECK(std::string(tp.node_name(0)) == "matmul");
}

TEST_CASE("bad shapes raise ika::invalid_argument naming the argument") {
  ad::tape<double> tp;
  auto a = uniform_leaf({3, 7}, 1), b = uniform_leaf({5, 2}, 2);
  check_throws_argument([&] { ad::matmul(tp, a, b); }, "b");
  check_throws_argument([&] { ad::matmul(tp, a, b, {.transpose_a = true}); }, "b");
  check_throws_argument([&] { ad::matmul(tp, uniform_leaf({2, 3, 7}, 3), uniform_leaf({4, 7, 2}, 4)); }, "b");
  check_throws_argument([&] { ad::matmul(tp, uniform_leaf({7}, 3), a); }, "a");
  check_throws_argument([&] { ad::add(tp, a, uniform_leaf({3, 5}, 5)); }, "b");
  check_throws_argument([&] { ad::mul(tp, a, uniform_leaf({2, 1, 7}, 5)), ad::mul(tp, a, uniform_leaf({4, 7}, 6)); }, "b");
  const std::vector<int> two{0, 1}, bad{0, 1, 7};
  check_throws_argument([&] { ad::softmax_cross_entropy(tp, a, std::span<const int>(two)); }, "labels");
  check_throws_argument([&] { ad::softmax_cross_entropy(tp, a, std::span<const int>(bad)); }, "labels");
  check_throws_argument([&] { ad::reshape(tp, a, {4, 5}); }, "shape");
  check_throws_argument([&] { ad::sum(tp, a, 2); }, "axis");
  check_throws_argument([&] { ad::layer_norm(tp, a, uniform_leaf({6}, 1), uniform_leaf({7}, 2)); }, "weight");
  check_throws_argument([&] { ad::concat(tp, {a, uniform_leaf({3, 6}, 1)}, 0); }, "xs");
  check_throws_argument([&] { ad::slice(tp, a, 1, 3, 8); }, "stop");
  static const bool mask[3] = {true, true, true};
  check_throws_argument([&] { ad::masked_mse(tp, a, a, std::span<const bool>(mask, 3)); }, "mask");
  check_throws_argument([&] { ad::masked_mse(tp, a, b, std::span<const bool>(mask, 3)); }, "target");
  check_throws_argument([&] { tp.backward(a); }, "loss"); // not one element
  check_throws_argument([] { ad::shape{1, 2, 3, 4, 5}; }, "shape");
}

TEST_CASE("float: the same graph agrees with double") {
  auto run = [](auto zero) {
    using T = decltype(zero);
    ad::variable<T> x(ad::tensor<T>({3, 7})), w(ad::tensor<T>({7, 5}), true), g(ad::tensor<T>({5}, T(1)), true),
        b(ad::tensor<T>({5}), true);
    for (int i = 0; i < 21; ++i) x.value()[i] = T(std::sin(0.7 * i));
    for (int i = 0; i < 35; ++i) w.value()[i] = T(std::cos(0.3 * i));
    ad::tape<T> tp;
    auto loss = ad::mean(tp, ad::gelu(tp, ad::layer_norm(tp, ad::matmul(tp, x, w), g, b)));
    tp.backward(loss);
    std::vector<double> out{double(loss.value()[0])};
    for (T v : w.grad()) out.push_back(double(v));
    return out;
  };
  const auto d = run(0.0);
  const auto f = run(0.0f);
  double worst = 0;
  for (std::size_t i = 0; i < d.size(); ++i) worst = std::max(worst, std::abs(d[i] - f[i]));
  CHECK(worst < 1e-4);
}

TEST_CASE("matmul: values and gradients are bitwise identical for 1 and 2 threads") {
  // long inner dimensions (the weight gradient of a linear layer over many rows), where a threaded
  // GEMM's blocking would otherwise depend on the thread count
  auto run = [](int threads) {
    omp_set_num_threads(threads);
    ad::tape<float> tp;
    auto to_float = [](const ad::tensor<double>& t) {
      ad::tensor<float> f(t.shape());
      for (ika::index_t i = 0; i < t.size(); ++i) f[i] = float(t[i]);
      return f;
    };
    ad::variable<float> x(to_float(uniform_tensor({1000, 70}, 1)), true), w(to_float(uniform_tensor({70, 65}, 2)), true);
    auto y = ad::matmul(tp, x, w);
    tp.backward(ad::sum(tp, ad::tanh(tp, y)));
    std::vector<float> all(y.value().begin(), y.value().end());
    all.insert(all.end(), x.grad().begin(), x.grad().end());
    all.insert(all.end(), w.grad().begin(), w.grad().end());
    return all;
  };
  const int saved = omp_get_max_threads();
  const auto one = run(1), two = run(2);
  omp_set_num_threads(saved);
  CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
}
