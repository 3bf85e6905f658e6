// SPDX-License-Identifier: MIT
// Per-call heap buffers against per-thread arenas: every engine at a few sizes, called in turn
// (round by round, as a training step calls its layers), so each call finds the heap as the
// others left it. Median time per call in µs and minor page faults per call (getrusage).
//   calls ROUNDS THREADS
#include <ika/ika.hpp>

#include "../call_timing.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace {

using call_timing::normal;

long minor_faults() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_minflt;
}

struct call_case {
  std::string name;
  std::function<void()> call;
  std::vector<double> us;
  long faults = 0;
};

} // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 50;
  const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  const ika::index_t D = 64, H = 8;
  const auto softmax = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2});
  const auto ika_logit = ika::log_kernel(ika::yaglom_rff<float>::from_seed(42, H, D, 64)) + ika::magnitude(ika::lp{3.0});
  const auto small_rff = ika::log_kernel(ika::yaglom_rff<float>::from_seed(42, H, D, 16)) + ika::magnitude(ika::lp{3.0});
  std::vector<call_case> cases;
  std::vector<std::vector<float>> keep; // inputs and outputs, alive for the whole run
  const auto tensor = [&](std::size_t n, unsigned seed) -> float* { return keep.emplace_back(normal(n, seed)).data(); };
  for (const ika::index_t L : {16, 256}) {
    const std::size_t n = std::size_t(H * L * D);
    float *q = tensor(n, 1), *k = tensor(n, 2), *v = tensor(n, 3), *o = tensor(n, 4), *o2 = tensor(n, 4);
    float *lse = tensor(std::size_t(H * L), 5), *lse2 = tensor(std::size_t(H * L), 5), *d_out = tensor(n, 6);
    float *dq = tensor(n, 7), *dk = tensor(n, 8), *dv = tensor(n, 9);
    const auto view = [=](float* x) { return ika::bhld(x, 1, H, L, D); };
    const std::string size = " L=" + std::to_string(L);
    ika::attention(view(q), view(k), view(v), view(o), softmax, {.lse = ika::bhl(lse, 1, H, L), .threads = threads});
    ika::attention(view(q), view(k), view(v), view(o2), ika_logit, {.lse = ika::bhl(lse2, 1, H, L), .threads = threads});
    cases.push_back({"forward softmax" + size, [=] {
                       ika::attention(view(q), view(k), view(v), view(o), softmax, {.threads = threads});
                     }});
    cases.push_back({"forward IKA" + size, [=] {
                       ika::attention(view(q), view(k), view(v), view(o2), ika_logit, {.threads = threads});
                     }});
    const auto backward = [=](const auto& logit, float* out, float* stats) {
      ika::attention_backward(view(q), view(k), view(v), ika::tensor_view<const float>(view(out)),
                              ika::row_stat_view<const float>{stats, 1, H, L, H * L, L, 1},
                              ika::tensor_view<const float>(view(d_out)), logit,
                              ika::attention_grads<float>{.dq = view(dq), .dk = view(dk), .dv = view(dv)}, threads);
    };
    cases.push_back({"backward softmax" + size, [=] { backward(softmax, o, lse); }});
    cases.push_back({"backward IKA" + size, [=] { backward(ika_logit, o2, lse2); }});
    cases.push_back({"linear raw IKA" + size, [=] {
                       ika::linear_attention(view(q), view(k), view(v), view(dq), ika_logit,
                                             {.features = ika::linear_features::raw, .threads = threads});
                     }});
    cases.push_back({"linear exact M=16" + size, [=] {
                       ika::linear_attention(view(q), view(k), view(v), view(dq), small_rff,
                                             {.features = ika::linear_features::exact, .threads = threads});
                     }});
  }
  for (auto& c : cases) c.call(); // warm-up
  for (int r = 0; r < rounds; ++r)
    for (auto& c : cases) {
      const long f0 = minor_faults();
      const auto t0 = std::chrono::steady_clock::now();
      c.call();
      c.us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      c.faults += minor_faults() - f0;
    }
  for (auto& c : cases) {
    std::sort(c.us.begin(), c.us.end());
    std::printf("%-28s median %10.2f us  min %10.2f us  faults/call %8.1f\n", c.name.c_str(), c.us[c.us.size() / 2],
                c.us.front(), double(c.faults) / rounds);
  }
}
