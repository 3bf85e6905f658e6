// SPDX-License-Identifier: MIT
// Calls that map one to four rows at a time with a random-feature kernel, one thread: appending
// 1 or 4 keys to a key cache, decoding 1 or 4 queries from it, and a direct decode (query and key
// features both mapped). Median and minimum over CALLS calls, in µs; built once per include tree.
//   calls CALLS
#include <ika/ika.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

std::vector<float> normal(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> x(n);
  for (float& e : x) e = d(rng);
  return x;
}

void time_calls(const std::string& name, int calls, const std::function<void()>& call) {
  std::vector<double> t;
  call();
  for (int c = 0; c < calls; ++c) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  std::printf("%-40s median %9.2f us  min %9.2f us\n", name.c_str(), t[t.size() / 2], t.front());
  std::fflush(stdout);
}

} // namespace

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
