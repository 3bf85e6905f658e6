// SPDX-License-Identifier: MIT
// The fused forward's two micro-kernels alone, on one key tile that stays in cache, against the
// one thread's FMA peak (bench_attention's fma_peak: 100.8 GFLOP/s here): how far from the peak each
// loop is when its data stays in cache, and one variant of the P·V loop.
// Build: g++ -std=c++20 -O3 -march=native -DNDEBUG -I<repo>/include -isystem /usr/include/eigen3 kernels.cpp
#include <chrono>
#include <cstdio>
#include <vector>
#include <algorithm>

#include "ika/cpu/fused.hpp"
#include "ika/kernels/rbf.hpp"

using namespace ika;
using namespace ika::detail;
using V = simd::batch<float>;
using B = engine_blocking<float>;
constexpr index_t MR = B::MR, W = B::W, KT = B::key_tile, D = 64;

// P·V with the key loop unrolled by two (two broadcasts per row in flight)
[[gnu::noinline]] void pv_unroll2(float* o, const float* p, const float* v, index_t keys) {
  for (index_t c = 0; c < D; c += 2 * W) {
    V acc[MR][2];
    for (index_t i = 0; i < MR; ++i) acc[i][0] = V::load_aligned(o + i * D + c), acc[i][1] = V::load_aligned(o + i * D + c + W);
    for (index_t j = 0; j < keys; j += 2) {
      const V a0 = V::load_aligned(v + j * D + c), a1 = V::load_aligned(v + j * D + c + W);
#pragma GCC unroll 16
      for (index_t i = 0; i < MR; ++i) {
        const V w(p[i * KT + j]);
        acc[i][0] = xsimd::fma(w, a0, acc[i][0]);
        acc[i][1] = xsimd::fma(w, a1, acc[i][1]);
      }
      const V b0 = V::load_aligned(v + (j + 1) * D + c), b1 = V::load_aligned(v + (j + 1) * D + c + W);
#pragma GCC unroll 16
      for (index_t i = 0; i < MR; ++i) {
        const V w(p[i * KT + j + 1]);
        acc[i][0] = xsimd::fma(w, b0, acc[i][0]);
        acc[i][1] = xsimd::fma(w, b1, acc[i][1]);
      }
    }
    for (index_t i = 0; i < MR; ++i) acc[i][0].store_aligned(o + i * D + c), acc[i][1].store_aligned(o + i * D + c + W);
  }
}

template <class F>
double best_seconds(F&& f, int reps) {
  double best = 1e30;
  for (int r = 0; r < 7; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps);
  }
  return best;
}

int main() {
    const auto filled = [](std::size_t n, float value) {
    aligned_buffer<float> b(n);
    std::fill(b.data(), b.data() + n, value);
    return b;
  };
  const auto fq = filled(MR * D, 0.01f), panels = filled(KT * D, 0.02f), s = filled(MR * KT, 0.f), p = filled(MR * KT, 1e-3f),
             v = filled(KT * D, 0.5f), o = filled(MR * D, 0.f), alpha = filled(MR, 1.f), vmax = filled(MR * W, 0.f),
             bias = filled(KT, 0.f);
  const double flops = 2.0 * MR * KT * D; // one micro-kernel call: MR rows × KT keys × D
  const auto report = [&](const char* name, double sec) { std::printf("%-40s %7.1f GFLOP/s\n", name, flops / sec * 1e-9); };
  report("tile_product (raw_scores)", best_seconds([&] {
           tile_product<float, pairwise_op::dot>(fq.data(), D, panels.data(), KT / B::NR, D, raw_scores<float>{s.data(), KT});
         }, 400));
  const auto kernel = rbf{}.bind<float>(1, D);
  report("tile_product (logit_scores, rbf)", best_seconds([&] {
           std::fill(vmax.data(), vmax.data() + MR * W, -1e30f);
           tile_product<float, pairwise_op::dot>(fq.data(), D, panels.data(), KT / B::NR, D,
                                                 logit_scores<float, decltype(kernel)>{s.data(), KT, bias.data(), kernel, vmax.data()});
         }, 400));
  report("accumulate_pv (library)", best_seconds([&] { accumulate_pv(o.data(), D, alpha.data(), p.data(), KT, v.data(), D, KT); }, 400));
  report("accumulate_pv unrolled by 2 keys", best_seconds([&] { pv_unroll2(o.data(), p.data(), v.data(), KT); }, 400));
  std::printf("(MR = %ld, W = %ld, key tile %ld, D = %ld; one thread; best of 7 rounds)\n", long(MR), long(W), long(KT), long(D));
}
