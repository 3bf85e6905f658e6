// SPDX-License-Identifier: MIT
// ika::simd::sincos against xsimd::sincos, float: time per batch over 4096 arguments in
// [-12, 12] (the range of the IKA kernel's projections at the benchmark's shapes), and the largest
// error against libm's double sin and cos for uniform arguments in [-range, range].
//   g++ -std=c++20 -O3 -march=native -DNDEBUG -I include micro.cpp -o micro && ./micro
#include <ika/simd/simd.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using V = ika::simd::batch<float>;

template <class F>
double ns_per_batch(const std::vector<float>& x, std::vector<float>& s, std::vector<float>& c, F sincos) {
  const int reps = 20000;
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r)
    for (std::size_t i = 0; i < x.size(); i += V::size) {
      const auto [a, b] = sincos(V::load_unaligned(&x[i]));
      a.store_unaligned(&s[i]);
      b.store_unaligned(&c[i]);
    }
  const auto t1 = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::nano>(t1 - t0).count() / (double(reps) * double(x.size() / V::size));
}

int main() {
  std::vector<float> x(4096), s(x.size()), c(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 12.0f * std::sin(0.37f * float(i));
  const auto ours = [](const V& v) { return ika::simd::sincos(v); };
  const auto theirs = [](const V& v) { return xsimd::sincos(v); };
  for (int round = 0; round < 3; ++round)
    std::printf("round %d: xsimd %.2f ns, ika %.2f ns per %zu-lane batch\n", round, ns_per_batch(x, s, c, theirs),
                ns_per_batch(x, s, c, ours), V::size);
  std::mt19937 gen(1);
  for (const float range : {1.0f, 100.0f, 8192.0f, 1e5f}) {
    std::uniform_real_distribution<float> u(-range, range);
    double worst[2] = {0, 0};
    for (int i = 0; i < 1 << 16; ++i) {
      alignas(64) float v[V::size], a[V::size], b[V::size];
      for (float& e : v) e = u(gen);
      const auto [vs, vc] = ika::simd::sincos(V::load_aligned(v));
      vs.store_aligned(a);
      vc.store_aligned(b);
      for (std::size_t l = 0; l < V::size; ++l) {
        worst[0] = std::max(worst[0], std::abs(a[l] - std::sin(double(v[l]))));
        worst[1] = std::max(worst[1], std::abs(b[l] - std::cos(double(v[l]))));
      }
    }
    std::printf("|x| <= %g: largest error sin %.2e, cos %.2e\n", double(range), worst[0], worst[1]);
  }
}
