// SPDX-License-Identifier: MIT
// The IKA kernel's feature map alone (yaglom_rff, M = 64, D = 64): prepare_rows over H = 8 heads of
// L = 1024 rows in blocks of rows_per_block, with or without ika::detail::prefetch_rows of the
// next block, into one block of features that stays in L1 (as the engines' query tiles and staged
// key panels do). `copies` copies of the rows are cycled through: 1 (2 MiB, stays in L3) or 32
// (64 MiB, from DRAM). Prints ms per 8192 rows, best of `rounds` rounds of 100 passes each.
//   row_prefetch COPIES PREFETCH(0|1) [rounds]
#include <ika/ika.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

int main(int argc, char** argv) {
  using ika::index_t;
  const index_t H = 8, L = 1024, D = 64, M = 64;
  const index_t copies = std::atoi(argv[1]);
  const bool prefetch = std::atoi(argv[2]) != 0;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 5;
  std::vector<float> x(std::size_t(copies * H * L * D));
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0, 1);
  for (float& e : x) e = normal(rng);
  const auto kernel = ika::yaglom_rff<float>::from_seed(42, H, D, M).bind<float>(H, D);
  constexpr index_t R = decltype(kernel)::rows_per_block;
  std::vector<float> features(std::size_t(R * 2 * M));
  double terms[R], checksum = 0;
  index_t copy = 0;
  const auto pass = [&] {
    for (index_t h = 0; h < H; ++h) {
      const auto row_of = [&](index_t i) { return x.data() + ((copy * H + h) * L + i) * D; };
      for (index_t i = 0; i < L; i += R) {
        const float* rows[R];
        for (index_t r = 0; r < R; ++r) rows[r] = row_of(i + r);
        if (prefetch) ika::detail::prefetch_rows(row_of, i + R, std::min(L, i + 2 * R), D);
        kernel.prepare_rows(h, rows, R, features.data(), terms);
      }
    }
    checksum += features[5];
    copy = (copy + 1) % copies;
  };
  double best = 1e30;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < 100; ++i) pass();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 100);
  }
  std::printf("copies %ld prefetch %d: %.3f ms per %ld rows (checksum %g)\n", long(copies), int(prefetch), best,
              long(H * L), checksum);
}
