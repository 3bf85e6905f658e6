// SPDX-License-Identifier: MIT
// The L3 magnitudes (r = 2) of 8192 key rows of 64 floats, 8 rows per call of the block hook as
// the key passes make it; best of ROUNDS rounds of 20 passes, ms per pass.
#include <ika/ika.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>
int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  const long rows = 8192, dim = 64, block = 8;
  std::mt19937 gen(3);
  std::normal_distribution<float> normal;
  std::vector<float> x(rows * dim);
  for (auto& v : x) v = normal(gen);
  std::vector<const float*> row(rows);
  for (long r = 0; r < rows; ++r) row[r] = x.data() + r * dim;
  const auto norm = ika::lp{3.0}.bind<float>(dim);
  std::vector<double> out(rows);
  double best = 1e9, check = 0;
  for (int round = 0; round < rounds; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int pass = 0; pass < 20; ++pass)
      for (long r = 0; r < rows; r += block) norm.magnitudes(row.data() + r, block, out.data() + r);
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 20);
    check += out[rows - 1];
  }
  std::printf("%.4f ms per 8192 rows (checksum %.6f)\n", best, check);
}
