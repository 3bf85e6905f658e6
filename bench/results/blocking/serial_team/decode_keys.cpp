// SPDX-License-Identifier: MIT
// Time per key of the softmax decode (Lq = 1, D = Dv = 64) against a plain read of the same K and
// V, for K + V sizes from L2 to DRAM.  decode_keys H LK CALLS THREADS
#include <ika/ika.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>
int main(int argc, char** argv) {
  if (argc != 5) return 2;
  const ika::index_t B = 1, H = std::atoi(argv[1]), Lk = std::atoi(argv[2]), D = 64;
  const int calls = std::atoi(argv[3]), threads = std::atoi(argv[4]);
  std::vector<float> q(H * D), k(H * Lk * D), v(k.size()), o(q.size());
  std::mt19937_64 rng(7);
  std::normal_distribution<float> n(0, 1);
  for (auto* a : {&q, &k, &v}) for (float& e : *a) e = n(rng);
  const ika::attention_options<float> options{.threads = threads};
  auto run = [&] {
    ika::attention(ika::bhld(q.data(), B, H, 1, D), ika::bhld(k.data(), B, H, Lk, D), ika::bhld(v.data(), B, H, Lk, D),
                   ika::bhld(o.data(), B, H, 1, D), ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2}), options);
  };
  volatile float sink = 0;
  auto read = [&] {
    using V = ika::simd::batch<float>;
    V a(0.f), b(0.f);
    for (std::size_t i = 0; i < k.size(); i += 2 * V::size) {
      a += V::load_unaligned(k.data() + i) + V::load_unaligned(v.data() + i);
      b += V::load_unaligned(k.data() + i + V::size) + V::load_unaligned(v.data() + i + V::size);
    }
    sink = sink + ika::simd::reduce_add(a + b);
  };
  std::vector<double> td, tr;
  run(); read();
  for (int c = 0; c < calls; ++c) {
    auto t0 = std::chrono::steady_clock::now();
    run();
    auto t1 = std::chrono::steady_clock::now();
    read();
    auto t2 = std::chrono::steady_clock::now();
    td.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
    tr.push_back(std::chrono::duration<double, std::nano>(t2 - t1).count());
  }
  std::sort(td.begin(), td.end());
  std::sort(tr.begin(), tr.end());
  const double keys = double(H * Lk);
  std::printf("H=%ld Lk=%ld K+V %.2f MiB t=%d: decode %.2f ns/key (min %.2f), 1-thread read %.2f ns/key (min %.2f)\n",
              long(H), long(Lk), 2.0 * k.size() * 4 / 1048576, threads, td[td.size() / 2] / keys, td[0] / keys,
              tr[tr.size() / 2] / keys, tr[0] / keys);
}
