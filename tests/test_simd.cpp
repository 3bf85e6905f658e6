// SPDX-License-Identifier: MIT
// ika::simd helpers that have a hand-written fast path per ISA, against plain loops.

#include <doctest/doctest.h>

#include <random>

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
