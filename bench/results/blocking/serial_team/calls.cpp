// SPDX-License-Identifier: MIT
// Time per call of short calls of every CPU engine, with 1 and 2 threads: median and minimum
// over CALLS calls, in µs. Built once per include/ tree being compared (README.md).
//   calls CALLS
#include <ika/ika.hpp>

#include "../call_timing.hpp"

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

using call_timing::normal, call_timing::time_calls;

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 2000;
  const ika::index_t D = 64;
  const auto softmax = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2});
  for (const int threads : {1, 2}) {
    const std::string t = "/threads:" + std::to_string(threads);
    const ika::attention_options<float> options{.threads = threads};
    // quadratic forward, H = 8, L = 16 and 64
    for (const ika::index_t L : {16, 64}) {
      const ika::index_t H = 8;
      auto q = normal(H * L * D, 1), k = normal(q.size(), 2), v = normal(q.size(), 3), o = q;
      time_calls("forward softmax H=8 L=" + std::to_string(L) + t, calls, [&] {
        ika::attention(ika::bhld(q.data(), 1, H, L, D), ika::bhld(k.data(), 1, H, L, D), ika::bhld(v.data(), 1, H, L, D),
                       ika::bhld(o.data(), 1, H, L, D), softmax, options);
      });
    }
    // decode, Lq = 1
    for (const auto [H, Lk] : {std::pair<ika::index_t, ika::index_t>{1, 64}, {1, 512}, {8, 256}, {8, 2048}}) {
      auto q = normal(H * D, 4), k = normal(H * Lk * D, 5), v = normal(k.size(), 6), o = q;
      time_calls("decode softmax H=" + std::to_string(H) + " Lk=" + std::to_string(Lk) + t, calls, [&] {
        ika::attention(ika::bhld(q.data(), 1, H, 1, D), ika::bhld(k.data(), 1, H, Lk, D), ika::bhld(v.data(), 1, H, Lk, D),
                       ika::bhld(o.data(), 1, H, 1, D), softmax, options);
      });
    }
    // linear-time and backward, IKA kernel, H = 8, L = 64
    {
      const ika::index_t H = 8, L = 64;
      const auto logit = ika::log_kernel(ika::yaglom_rff<float>::from_seed(42, H, D, 64)) + ika::magnitude(ika::lp{3.0});
      auto q = normal(H * L * D, 7), k = normal(q.size(), 8), v = normal(q.size(), 9), o = q, lse = normal(H * L, 10);
      auto d_out = normal(q.size(), 11), dq = q, dk = q, dv = q;
      const auto view = [&](std::vector<float>& x) { return ika::bhld(x.data(), 1, H, L, D); };
      time_calls("linear raw IKA H=8 L=64" + t, calls, [&] {
        ika::linear_attention(view(q), view(k), view(v), view(o), logit,
                              {.features = ika::linear_features::raw, .threads = threads});
      });
      ika::attention(view(q), view(k), view(v), view(o), logit, {.lse = ika::bhl(lse.data(), 1, H, L), .threads = threads});
      time_calls("backward IKA H=8 L=64" + t, calls, [&] {
        ika::attention_backward(view(q), view(k), view(v), ika::tensor_view<const float>(view(o)),
                                ika::row_stat_view<const float>{lse.data(), 1, H, L, H * L, L, 1},
                                ika::tensor_view<const float>(view(d_out)), logit,
                                ika::attention_grads<float>{.dq = view(dq), .dk = view(dk), .dv = view(dv)}, threads);
      });
    }
  }
}
