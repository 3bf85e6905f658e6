// SPDX-License-Identifier: MIT
// Ad-hoc A/B driver (bench/results/pytorch/intel_wide_tile, intel_prefetch): ika::attention, B = 1,
// H = 8, D = 64, softmax (rbf + lp{2}) or the IKA kernel (yaglom_rff M = 64 + lp{3}), optionally
// causal_upper_left; prints ms per call.  ab_driver softmax|ika plain|causal ITERATIONS L THREADS
// Built like feature_rows/driver.cpp, once per include/ tree being compared.
#include <ika/ika.hpp>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>
int main(int argc, char** argv) {
  const std::string kind = argv[1], mode = argv[2];
  const int iters = std::atoi(argv[3]);
  const ika::index_t B = 1, H = 8, L = std::atoi(argv[4]), D = 64;
  const int threads = std::atoi(argv[5]);
  std::vector<float> q(B * H * L * D), k(q.size()), v(q.size()), o(q.size());
  std::mt19937_64 rng(1234 + L);
  std::normal_distribution<float> n(0, 1);
  for (auto* a : {&q, &k, &v}) for (float& e : *a) e = n(rng);
  auto cv = [&](const float* p) { return ika::bhld(p, B, H, L, D); };
  auto ov = ika::bhld(o.data(), B, H, L, D);
  const auto yag = ika::yaglom_rff<float>::from_seed(42, H, D, 64);
  const ika::attention_options<float> options{.threads = threads};
  const auto attend = [&](const auto& logit) {
    if (mode == "causal")
      ika::attention(cv(q.data()), cv(k.data()), cv(v.data()), ov, logit + ika::mask(ika::causal_upper_left{}), options);
    else
      ika::attention(cv(q.data()), cv(k.data()), cv(v.data()), ov, logit, options);
  };
  auto run = [&] {
    if (kind == "softmax") attend(ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2}));
    else attend(ika::log_kernel(yag) + ika::magnitude(ika::lp{3.0}));
  };
  run();
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) run();
  auto t1 = std::chrono::steady_clock::now();
  std::printf("%s %s L=%ld t=%d %.3f ms/call o[5]=%g\n", kind.c_str(), mode.c_str(), long(L), threads,
              std::chrono::duration<double, std::milli>(t1 - t0).count() / iters, o[5]);
}
