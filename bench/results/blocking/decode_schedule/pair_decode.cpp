// SPDX-License-Identifier: MIT
// Call-by-call A/B of decode builds (decode_capi.cpp against copies of the headers) in one
// process, with a streaming read of the same K and V (the bandwidth baseline) in the same
// rotation: each iteration calls the stream and every library once, the order rotating. Prints
// each one's median GB/s of K and V, the median over iterations of its GB/s / the stream's in that
// iteration with quartiles, and the largest output difference from the first build. K and V start
// OFFSET floats past a 64-byte boundary: 0 as a framework's tensors (64-byte aligned), 8 as
// bench_decode's std::vector<float> before it took aligned arrays (32 bytes past a page: glibc's
// malloc header and bench/common.hpp's counting header).
//   pair_decode KEYS THREADS ITERATIONS OFFSET LIB...
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

using decode_fn = void (*)(const float*, const float*, const float*, float*, long long, long long, long long, int);

// four independent sums per thread over K and V side by side, as bench_decode's stream
static float stream(const float* k, const float* v, std::size_t n, int threads) {
  float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    float acc[64] = {};
#pragma omp for schedule(static)
    for (std::size_t i = 0; i < n; i += 64)
#pragma omp simd
      for (std::size_t u = 0; u < 64; ++u) acc[u] += k[i + u] + v[i + u];
    for (float a : acc) total += a;
  }
  return total;
}

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: pair_decode KEYS THREADS ITERATIONS OFFSET LIB...\n");
    return 2;
  }
  const long long H = 8, D = 64, keys = std::atoll(argv[1]);
  const int threads = std::atoi(argv[2]), iterations = std::atoi(argv[3]), offset = std::atoi(argv[4]);
  constexpr int first_lib = 5;
  std::vector<decode_fn> fns;
  for (int i = first_lib; i < argc; ++i) {
    void* lib = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      std::fprintf(stderr, "%s\n", dlerror());
      return 1;
    }
    fns.push_back(reinterpret_cast<decode_fn>(dlsym(lib, "ika_decode")));
  }
  const std::size_t n = std::size_t(H * keys * D);
  std::vector<float> q(std::size_t(H * D));
  const auto allocate = [&] { // n floats, OFFSET past a 64-byte boundary
    float* p = static_cast<float*>(std::aligned_alloc(64, (n + 64) * sizeof(float)));
    return p == nullptr ? nullptr : p + offset;
  };
  float *k = allocate(), *v = allocate();
  if (k == nullptr || v == nullptr || offset < 0 || offset >= 64) return 1;
  std::vector<std::vector<float>> out(fns.size(), std::vector<float>(std::size_t(H * D)));
  std::mt19937_64 rng(7);
  std::normal_distribution<float> normal(0, 1);
  for (float& e : q) e = normal(rng);
  for (float* a : {k, v})
    for (std::size_t i = 0; i < n; ++i) a[i] = normal(rng);
  const double bytes = 2.0 * double(n) * sizeof(float);
  volatile float sink = 0;
  const auto call = [&](std::size_t f) { // f = fns.size(): the stream
    const auto t0 = std::chrono::steady_clock::now();
    if (f == fns.size()) sink = sink + stream(k, v, n, threads);
    else fns[f](q.data(), k, v, out[f].data(), H, keys, D, threads);
    return bytes * 1e-9 / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const std::size_t m = fns.size() + 1;
  for (std::size_t f = 0; f < m; ++f) call(f); // warm-up
  std::vector<std::vector<double>> rate(m);
  for (int i = 0; i < iterations; ++i)
    for (std::size_t j = 0; j < m; ++j) {
      const std::size_t f = (std::size_t(i) + j) % m;
      rate[f].push_back(call(f));
    }
  const auto quantile = [](std::vector<double> x, double p) {
    std::sort(x.begin(), x.end());
    return x[std::size_t(p * double(x.size() - 1) + 0.5)];
  };
  for (std::size_t f = 0; f < m; ++f) {
    std::vector<double> ratio;
    for (int i = 0; i < iterations; ++i) ratio.push_back(rate[f][std::size_t(i)] / rate[fns.size()][std::size_t(i)]);
    double diff = 0;
    if (f < fns.size())
      for (std::size_t e = 0; e < out[f].size(); ++e) diff = std::max(diff, double(std::fabs(out[f][e] - out[0][e])));
    std::printf("keys=%lld threads=%d offset=%d %-28s %6.1f GB/s; / stream %.3f [%.3f, %.3f]; max |out - first| %.3g\n", keys,
                threads, offset, f < fns.size() ? argv[first_lib + f] : "stream", quantile(rate[f], 0.5), quantile(ratio, 0.5),
                quantile(ratio, 0.25), quantile(ratio, 0.75), diff);
  }
}
