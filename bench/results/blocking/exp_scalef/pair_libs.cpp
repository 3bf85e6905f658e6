// SPDX-License-Identifier: MIT
// Call-by-call A/B of builds of bench/paired/ika_capi.cpp in one process (the C++ counterpart of
// bench/torch_paired.py without torch): each iteration calls every library once, the order
// rotating, on the same inputs; prints each build's median time and the median over iterations of
// first time / build time (> 1: the build is faster) with its quartiles, and the largest output
// difference from the first build.
//   pair_libs L THREADS CAUSAL ITERATIONS LIB...
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

using attention_fn = int (*)(const float*, const float*, const float*, float*, long long, long long, long long,
                             long long, int, int);

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: pair_libs L THREADS CAUSAL ITERATIONS LIB...\n");
    return 2;
  }
  const long long B = 1, H = 8, D = 64, L = std::atoll(argv[1]);
  const int threads = std::atoi(argv[2]), causal = std::atoi(argv[3]), iterations = std::atoi(argv[4]);
  std::vector<attention_fn> fns;
  for (int i = 5; i < argc; ++i) {
    void* lib = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      std::fprintf(stderr, "%s\n", dlerror());
      return 1;
    }
    fns.push_back(reinterpret_cast<attention_fn>(dlsym(lib, "ika_bench_softmax_attention")));
  }
  const std::size_t n = std::size_t(B * H * L * D);
  std::vector<float> q(n), k(n), v(n);
  std::vector<std::vector<float>> out(fns.size(), std::vector<float>(n));
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0, 1);
  for (auto* a : {&q, &k, &v})
    for (float& e : *a) e = normal(rng);
  const auto call = [&](std::size_t f) {
    const auto t0 = std::chrono::steady_clock::now();
    if (fns[f](q.data(), k.data(), v.data(), out[f].data(), B, H, L, D, causal, threads) != 0) std::abort();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  for (std::size_t f = 0; f < fns.size(); ++f) call(f); // warm-up
  std::vector<std::vector<double>> times(fns.size());
  for (int i = 0; i < iterations; ++i)
    for (std::size_t j = 0; j < fns.size(); ++j) {
      const std::size_t f = (std::size_t(i) + j) % fns.size();
      times[f].push_back(call(f));
    }
  const auto quantile = [](std::vector<double> x, double p) {
    std::sort(x.begin(), x.end());
    return x[std::size_t(p * double(x.size() - 1) + 0.5)];
  };
  for (std::size_t f = 0; f < fns.size(); ++f) {
    std::vector<double> ratio;
    for (int i = 0; i < iterations; ++i) ratio.push_back(times[0][std::size_t(i)] / times[f][std::size_t(i)]);
    double diff = 0;
    for (std::size_t e = 0; e < n; ++e) diff = std::max(diff, double(std::fabs(out[f][e] - out[0][e])));
    std::printf("L=%lld threads=%d causal=%d %s: %.3f ms; first/this %.3f [%.3f, %.3f]; max |out - first| %.3g\n", L,
                threads, causal, argv[5 + f], quantile(times[f], 0.5), quantile(ratio, 0.5), quantile(ratio, 0.25),
                quantile(ratio, 0.75), diff);
  }
}
