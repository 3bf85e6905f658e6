// SPDX-License-Identifier: MIT
// One-thread IKA backward (Yaglom M = 64 + L3, H = 8, D = 64) at length L, alone or after softmax
// backward calls in the same process (any second argument): the heap-state effect in README.md.
//   after_softmax L [s]   (run under perf stat -e page-faults)
#include <ika/ika.hpp>
#include "../call_timing.hpp"
using call_timing::normal, call_timing::time_calls;
int main(int argc, char** argv) {
  const ika::index_t H = 8, D = 64, L = std::atoi(argv[1]);
  const bool softmax_first = argc > 2;
  const auto softmax = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2});
  const auto ika_logit = ika::log_kernel(ika::yaglom_rff<float>::from_seed(42, H, D, 64)) + ika::magnitude(ika::lp{3.0});
  auto q = normal(H * L * D, 7), k = normal(q.size(), 8), v = normal(q.size(), 9), o = q, lse = normal(H * L, 10);
  auto d_out = normal(q.size(), 11), dq = q, dk = q, dv = q;
  const auto view = [&](std::vector<float>& x) { return ika::bhld(x.data(), 1, H, L, D); };
  const auto run = [&](const char* name, const auto& logit) {
    ika::attention(view(q), view(k), view(v), view(o), logit, {.lse = ika::bhl(lse.data(), 1, H, L), .threads = 1});
    time_calls(name, 200, [&] {
      ika::attention_backward(view(q), view(k), view(v), ika::tensor_view<const float>(view(o)),
                              ika::row_stat_view<const float>{lse.data(), 1, H, L, H * L, L, 1},
                              ika::tensor_view<const float>(view(d_out)), logit,
                              ika::attention_grads<float>{.dq = view(dq), .dk = view(dk), .dv = view(dv)}, 1);
    });
  };
  if (softmax_first) run("softmax", softmax);
  run("ika", ika_logit);
}
