// SPDX-License-Identifier: MIT
// ika::simd helpers that have a hand-written fast path per ISA, against plain loops.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>
#include <type_traits>
#include <vector>

#include "support.hpp"

TEST_CASE_TEMPLATE("simd::reduce_add_each: lane i is the sum of row i", T, float, double) {
  using V = ika::simd::batch<T>;
  constexpr std::size_t W = ika::simd::width<T>;
  std::mt19937 gen(3);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (int trial = 0; trial < 20; ++trial) {
    alignas(64) T values[W * W];
    V rows[W];
    for (std::size_t i = 0; i < W; ++i) {
      // row i has a distinct scale, so a permuted result cannot pass
      for (std::size_t l = 0; l < W; ++l) values[i * W + l] = T(u(gen) + 10.0 * double(i));
      rows[i] = V::load_aligned(values + i * W);
    }
    alignas(64) T sums[W];
    ika::simd::reduce_add_each<T>(rows).store_aligned(sums);
    for (std::size_t i = 0; i < W; ++i) {
      double expected = 0;
      for (std::size_t l = 0; l < W; ++l) expected += double(values[i * W + l]);
      INFO("trial ", trial, " row ", i, " of ", W);
      CHECK(std::abs(double(sums[i]) - expected) <= 1e-5 * std::max(1.0, std::abs(expected)));
    }
  }
}

// Bound: 2e-7, under two float ulps of 1 (1.19e-7 in [1, 2)); libm's double sin and cos are
// the independent reference. Arguments cover every quadrant, the edges of the fast reduction
// (|x| = 8192), beyond it (xsimd's path), and the values where sin or cos is 0.
TEST_CASE_TEMPLATE("simd::sincos: within 2e-7 of libm, every quadrant, both reductions", T, float, double) {
  using V = ika::simd::batch<T>;
  constexpr std::size_t W = ika::simd::width<T>;
  std::mt19937 gen(5);
  std::vector<double> args = {0.0, -0.0, 1e-30, -1e-30, 8192.0, -8192.0, 8192.5, 1e5, -3e6};
  for (int k = -40; k <= 40; ++k) args.push_back(k * std::numbers::pi / 4); // zeros of sin, cos, and ±π/4
  for (const double range : {1.0, 10.0, 100.0, 8192.0, 1e6})
    for (int i = 0; i < 4000; ++i) args.push_back(std::uniform_real_distribution<double>(-range, range)(gen));
  while (args.size() % W != 0) args.push_back(0.5);
  double worst = 0;
  for (std::size_t i = 0; i < args.size(); i += W) {
    alignas(64) T x[W], s[W], c[W];
    for (std::size_t l = 0; l < W; ++l) x[l] = T(args[i + l]);
    const auto [vs, vc] = ika::simd::sincos(V::load_aligned(x));
    vs.store_aligned(s);
    vc.store_aligned(c);
    for (std::size_t l = 0; l < W; ++l) {
      const double es = std::abs(double(s[l]) - std::sin(double(x[l]))), ec = std::abs(double(c[l]) - std::cos(double(x[l])));
      INFO("x = ", double(x[l]));
      CHECK(es <= 2e-7);
      CHECK(ec <= 2e-7);
      worst = std::max({worst, es, ec});
    }
  }
  MESSAGE("largest error ", worst);
  // non-finite arguments give NaN, never a number
  alignas(64) T x[W], s[W], c[W];
  for (std::size_t l = 0; l < W; ++l)
    x[l] = l % 3 == 0 ? std::numeric_limits<T>::quiet_NaN() : l % 3 == 1 ? std::numeric_limits<T>::infinity() : T(0.5);
  const auto [vs, vc] = ika::simd::sincos(V::load_aligned(x));
  vs.store_aligned(s);
  vc.store_aligned(c);
  for (std::size_t l = 0; l < W; ++l) {
    CHECK(std::isnan(s[l]) == (l % 3 != 2));
    CHECK(std::isnan(c[l]) == (l % 3 != 2));
  }
}

// The online softmax's exp. float: a degree-5 polynomial whose own error is 2.1e-7 (relative, on
// the reduced range), plus the rounding of the steps that evaluate it; 3.5e-7 is that bound plus
// about one ulp. Below log(FLT_MIN) (the results xsimd::exp too flushes or makes subnormal) and at
// −∞, exactly 0: the weights of hidden keys. double takes xsimd::exp, so its bits are checked.
TEST_CASE_TEMPLATE("simd::exp_nonpositive: within 3.5e-7 of exp over [log(FLT_MIN), 0], 0 below, NaN kept", T, float,
                   double) {
  using V = ika::simd::batch<T>;
  constexpr std::size_t W = ika::simd::width<T>;
  std::vector<T> args = {T(0), T(-0.0), T(-1e-30), T(-std::numbers::ln2 / 2), T(-std::numbers::ln2)};
  for (int k = 1; k <= 126; ++k) // multiples of ln 2, where the reduction changes k, and either side
    for (const double off : {-1e-6, 0.0, 1e-6}) args.push_back(T(-k * std::numbers::ln2 + off));
  std::mt19937 gen(9);
  for (int i = 0; i < 200000; ++i) args.push_back(T(std::uniform_real_distribution<double>(-87.33, 0.0)(gen)));
  for (int i = 0; i < 20000; ++i) args.push_back(T(std::uniform_real_distribution<double>(-1.0, 0.0)(gen)));
  const double cutoff = std::log(double(std::numeric_limits<float>::min())); // −87.3365
  const std::size_t finite_args = args.size();
  for (const double below : {cutoff - 1e-4, -88.0, -88.38, -100.0, -1e4, -1e30}) args.push_back(T(below));
  do args.push_back(-std::numeric_limits<T>::infinity()); // at least once; fills the last vector
  while (args.size() % W != 0);
  double worst = 0;
  for (std::size_t i = 0; i < args.size(); i += W) {
    alignas(64) T x[W], e[W], reference[W];
    std::copy(args.begin() + std::ptrdiff_t(i), args.begin() + std::ptrdiff_t(i + W), x);
    ika::simd::exp_nonpositive(V::load_aligned(x)).store_aligned(e);
    xsimd::exp(V::load_aligned(x)).store_aligned(reference);
    for (std::size_t l = 0; l < W; ++l) {
      INFO("x = ", double(x[l]));
      if constexpr (std::is_same_v<T, double>) {
        CHECK(e[l] == reference[l]);
      } else if (i + l < finite_args && double(x[l]) >= cutoff) {
        const double exact = std::exp(double(x[l])), error = std::abs(double(e[l]) - exact) / exact;
        CHECK(error <= 3.5e-7);
        worst = std::max(worst, error);
      } else if (i + l >= finite_args) {
        CHECK(e[l] == T(0));
        CHECK_FALSE(std::signbit(e[l]));
      }
    }
  }
  MESSAGE("largest relative error ", worst);
  alignas(64) T x[W], e[W];
  for (std::size_t l = 0; l < W; ++l) x[l] = l % 2 == 0 ? std::numeric_limits<T>::quiet_NaN() : T(l % 4 == 1 ? 0.0 : -0.0);
  ika::simd::exp_nonpositive(V::load_aligned(x)).store_aligned(e);
  for (std::size_t l = 0; l < W; ++l) {
    if (l % 2 == 0) CHECK(std::isnan(e[l]));
    else CHECK(e[l] == T(1)); // the row's maximum gets weight 1 exactly
  }
}

TEST_CASE_TEMPLATE("simd::row_sums_abs_pow: each row's Σ|x|^p, any row count and length", T, float, double) {
  std::mt19937 gen(5);
  std::uniform_real_distribution<double> u(-2.0, 2.0);
  for (const double p : {1.0, 2.0, 3.0, 4.0, 2.5}) {
    for (const std::ptrdiff_t n : {1, 7, 16, 33}) {
      for (const std::ptrdiff_t dim : {1, 7, 16, 33, 64}) {
        std::vector<T> data(std::size_t(n * dim));
        for (auto& x : data) x = T(u(gen));
        // rows of different scales, so a sum landing in the wrong row cannot pass
        std::vector<const T*> rows(static_cast<std::size_t>(n));
        for (std::ptrdiff_t r = 0; r < n; ++r) {
          for (std::ptrdiff_t d = 0; d < dim; ++d) data[std::size_t(r * dim + d)] *= T(1 + r % 5);
          rows[std::size_t(r)] = data.data() + r * dim;
        }
        std::vector<T> sums(static_cast<std::size_t>(n));
        ika::simd::row_sums_abs_pow(rows.data(), n, dim, T(p), [&](std::ptrdiff_t r, T sum) { sums[std::size_t(r)] = sum; });
        for (std::ptrdiff_t r = 0; r < n; ++r) {
          double expected = 0;
          for (std::ptrdiff_t d = 0; d < dim; ++d) expected += std::pow(std::abs(double(rows[std::size_t(r)][d])), p);
          INFO("p ", p, " rows ", n, " dim ", dim, " row ", r);
          CHECK(std::abs(double(sums[std::size_t(r)]) - expected) <= 1e-5 * std::max(1.0, expected));
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("simd::pow_abs_each: |x|^y as libm, zeros kept, independent of the position", T, float, double) {
  std::mt19937 gen(9);
  std::uniform_real_distribution<double> uniform(-50.0, 50.0);
  // libm in double as the reference; T's exp and log are within a few ulp
  const double tolerance = std::is_same_v<T, float> ? 2e-6 : 2e-14;
  for (const ika::index_t n : {1, 7, 33, 257})
    for (const T y : {T(2) / T(3), T(0.5), T(1.7)}) {
      std::vector<T> x(static_cast<std::size_t>(n));
      for (auto& v : x) v = T(uniform(gen));
      x[0] = T(0);
      x[std::size_t(n - 1)] = T(3.25); // the last, partial vector: compared with the same value first below
      std::vector<T> result = x;
      ika::simd::pow_abs_each(result.data(), n, y);
      for (ika::index_t i = 0; i < n; ++i) {
        INFO("n ", n, " y ", y, " i ", i, " x ", x[std::size_t(i)]);
        const double expected = std::pow(std::abs(double(x[std::size_t(i)])), double(y));
        CHECK(std::abs(double(result[std::size_t(i)]) - expected) <= tolerance * expected);
      }
      T first = T(3.25);
      ika::simd::pow_abs_each(&first, 1, y);
      CHECK(first == result[std::size_t(n - 1)]);
    }
}

TEST_CASE_TEMPLATE("block hooks (rbf key_terms, lp magnitudes) agree with the row-by-row hooks", T, float, double) {
  std::mt19937 gen(6);
  std::normal_distribution<double> normal;
  for (const ika::index_t dim : {1, 7, 33, 64}) {
    const ika::index_t n = 19;
    std::vector<T> data(std::size_t(n * dim));
    for (auto& x : data) x = T(normal(gen));
    std::vector<const T*> rows(static_cast<std::size_t>(n));
    for (ika::index_t r = 0; r < n; ++r) rows[std::size_t(r)] = data.data() + r * dim;
    const auto kernel = ika::rbf{}.bind<T>(1, dim);
    std::vector<double> terms(static_cast<std::size_t>(n));
    kernel.key_terms(0, rows.data(), n, terms.data());
    std::vector<T> features(static_cast<std::size_t>(dim));
    for (ika::index_t r = 0; r < n; ++r) {
      INFO("rbf dim ", dim, " row ", r);
      const double expected = kernel.prepare_key(0, rows[std::size_t(r)], features.data());
      CHECK(std::abs(terms[std::size_t(r)] - expected) <= 1e-5 * std::max(1.0, std::abs(expected)));
    }
    for (const double p : {1.0, 2.0, 3.0, 2.5, ika::lp::infinity}) {
      for (const auto exponent : {ika::norm_exponent::two, ika::norm_exponent::p}) {
        if (std::isinf(p) && exponent == ika::norm_exponent::p) continue;
        const auto norm = ika::lp{p, exponent}.bind<T>(dim);
        std::vector<double> magnitudes(static_cast<std::size_t>(n));
        norm.magnitudes(rows.data(), n, magnitudes.data());
        for (ika::index_t r = 0; r < n; ++r) {
          INFO("lp p ", p, " dim ", dim, " row ", r);
          const double expected = norm.magnitude(rows[std::size_t(r)]);
          CHECK(std::abs(magnitudes[std::size_t(r)] - expected) <= 1e-5 * std::max(1.0, std::abs(expected)));
        }
      }
    }
    // rbf with σ² = √D and the L2 magnitude |k|²/2√D: the key terms cancel exactly (the softmax point)
    std::vector<double> magnitudes(static_cast<std::size_t>(n));
    ika::lp{2.0}.bind<T>(dim).magnitudes(rows.data(), n, magnitudes.data());
    for (ika::index_t r = 0; r < n; ++r) CHECK(terms[std::size_t(r)] + magnitudes[std::size_t(r)] == 0.0);
  }
}
