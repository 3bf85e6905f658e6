// SPDX-License-Identifier: MIT
// Causal / non-causal time of the IKA kernel (bench_attention's: Yaglom RFF M = 64 + lp{3}, B = 1,
// H = 8, D = 64) call by call in one process: each iteration times one non-causal and one causal
// call (order alternating), and the median over iterations of causal / non-causal is printed with
// its quartiles, so that drift between runs does not enter the ratio.
//   pairs L THREADS ITERATIONS
#include <ika/ika.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: pairs L THREADS ITERATIONS\n");
    return 2;
  }
  const ika::index_t B = 1, H = 8, D = 64, L = std::atol(argv[1]);
  const int threads = std::atoi(argv[2]), iterations = std::atoi(argv[3]);
  std::vector<float> q(std::size_t(B * H * L * D)), k(q.size()), v(q.size()), o(q.size());
  std::mt19937_64 rng(1234);
  std::normal_distribution<float> normal(0, 1);
  for (auto* a : {&q, &k, &v})
    for (float& e : *a) e = normal(rng);
  const auto view = [&](std::vector<float>& x) { return ika::bhld(x.data(), B, H, L, D); };
  const auto kernel = ika::yaglom_rff<float>::from_seed(42, H, D, 64);
  const auto logit = ika::log_kernel(kernel) + ika::magnitude(ika::lp{3.0});
  const ika::attention_options<float> options{.threads = threads};
  const auto timed = [&](bool causal) {
    const auto t0 = std::chrono::steady_clock::now();
    if (causal) ika::attention(view(q), view(k), view(v), view(o), logit + ika::mask(ika::causal_upper_left{}), options);
    else ika::attention(view(q), view(k), view(v), view(o), logit, options);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  timed(false), timed(true); // warm-up
  std::vector<double> ratios, plain, causal;
  for (int i = 0; i < iterations; ++i) {
    double p, c;
    if (i % 2 == 0) p = timed(false), c = timed(true);
    else c = timed(true), p = timed(false);
    plain.push_back(p), causal.push_back(c), ratios.push_back(c / p);
  }
  const auto quantile = [](std::vector<double> x, double f) {
    std::sort(x.begin(), x.end());
    return x[std::size_t(f * double(x.size() - 1) + 0.5)];
  };
  std::printf("L=%ld threads=%d iterations=%d: non-causal %.2f ms, causal %.2f ms (medians); causal/non-causal median %.3f [%.3f, %.3f]\n",
              long(L), threads, iterations, quantile(plain, 0.5), quantile(causal, 0.5), quantile(ratios, 0.5),
              quantile(ratios, 0.25), quantile(ratios, 0.75));
}
