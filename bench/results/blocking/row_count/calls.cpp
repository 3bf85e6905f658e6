// SPDX-License-Identifier: MIT
// Calls that map one to four rows at a time with a random-feature kernel, one thread: appending
// 1 or 4 keys to a key cache, decoding 1 or 4 queries from it, and a direct decode (query and key
// features both mapped). Median and minimum over CALLS calls, in µs; built once per include tree.
//   calls CALLS
#include <ika/ika.hpp>

#include "../call_timing.hpp"

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

using call_timing::normal, call_timing::time_calls;

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 2000;
  const ika::index_t D = 64, M = 64, H = 8, capacity = 4096;
  const auto logit = ika::log_kernel(ika::yaglom_rff<float>::from_seed(42, H, D, M)) + ika::magnitude(ika::lp{3.0});
  using cache_type = ika::key_cache<float, ika::yaglom_rff<float>, ika::lp>;
  for (const ika::index_t n : {1, 4}) {
    auto k = normal(H * n * D, 1);
    cache_type cache(logit, 1, H, H, D, capacity);
    time_calls("key_cache append H=8 n=" + std::to_string(n), calls, [&] {
      if (cache.size() + n > cache.capacity()) cache.clear();
      cache.append(ika::bhld(k.data(), 1, H, n, D), 1);
    });
  }
  for (const ika::index_t Lk : {256, 4096}) {
    cache_type cache(logit, 1, H, H, D, Lk);
    auto k = normal(H * Lk * D, 2), v = normal(k.size(), 3);
    cache.append(ika::bhld(k.data(), 1, H, Lk, D), 1);
    for (const ika::index_t Lq : {1, 4}) {
      auto q = normal(H * Lq * D, 4), o = q;
      time_calls("cached decode H=8 Lq=" + std::to_string(Lq) + " Lk=" + std::to_string(Lk), calls, [&] {
        ika::attention(ika::bhld(q.data(), 1, H, Lq, D), cache, ika::bhld(v.data(), 1, H, Lk, D),
                       ika::bhld(o.data(), 1, H, Lq, D), ika::mask(ika::causal_lower_right{}), {.threads = 1});
      });
    }
  }
  for (const ika::index_t Lk : {16, 256}) {
    auto q = normal(H * D, 5), k = normal(H * Lk * D, 6), v = normal(k.size(), 7), o = q;
    time_calls("direct decode H=8 Lq=1 Lk=" + std::to_string(Lk), calls, [&] {
      ika::attention(ika::bhld(q.data(), 1, H, 1, D), ika::bhld(k.data(), 1, H, Lk, D), ika::bhld(v.data(), 1, H, Lk, D),
                     ika::bhld(o.data(), 1, H, 1, D), logit, {.threads = 1});
    });
  }
}
