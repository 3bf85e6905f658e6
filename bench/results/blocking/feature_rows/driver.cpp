// SPDX-License-Identifier: MIT
// Ad-hoc driver for the feature-rows A/B (bench/results/blocking/feature_rows.md): ika::attention
// with the IKA kernel (Yaglom RFF, M = 64, p = 3), H = 8, D = 64, 1 thread; prints ms per call.
//   driver plain|causal ITERATIONS [L]
#include <ika/ika.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>
#include <string>
int main(int argc, char** argv) {
  const ika::index_t B = 1, H = 8, L = argc > 3 ? std::atoi(argv[3]) : 1024, D = 64;
  const std::string mode = argv[1];
  const int iters = std::atoi(argv[2]);
  std::vector<float> q(B*H*L*D), k(q.size()), v(q.size()), o(q.size());
  std::mt19937_64 rng(1234 + L); std::normal_distribution<float> n(0, 1);
  for (auto* a : {&q, &k, &v}) for (float& e : *a) e = n(rng);
  auto view = [&](float* p) { return ika::bhld(p, B, H, L, D); };
  auto cview = [&](const float* p) { return ika::bhld(p, B, H, L, D); };
  const auto kern = ika::yaglom_rff<float>::from_seed(42, H, D, 64);
  auto logit = ika::log_kernel(kern) + ika::magnitude(ika::lp{3.0});
  auto run = [&] {
    if (mode == "causal") ika::attention(cview(q.data()), cview(k.data()), cview(v.data()), view(o.data()), logit + ika::mask(ika::causal_upper_left{}), {.threads = 1});
    else ika::attention(cview(q.data()), cview(k.data()), cview(v.data()), view(o.data()), logit, {.threads = 1});
  };
  run();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) run();
  auto t1 = std::chrono::steady_clock::now();
  std::printf("%s %.3f ms/call  o[5]=%g\n", mode.c_str(), std::chrono::duration<double, std::milli>(t1 - t0).count() / iters, o[5]);
}
