// SPDX-License-Identifier: MIT
// Where does a second thread start to pay? Median time per call of every CPU engine over a range
// of small sizes with 1 and 2 threads (and threads = 0), in µs, with the call's work in
// multiply-adds as the engines count it (detail::attention_work). Built once per include/ tree (README.md).
//   sweep CALLS
#include <ika/ika.hpp>

#include "../call_timing.hpp"

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace {

using call_timing::normal;

double median_us(int calls, const std::function<void()>& call) {
  const std::vector<double> t = call_timing::times_us(calls, call);
  return t[t.size() / 2];
}

// one row: name, work, then the time with 1, 2 and 0 (automatic) threads
void row(const std::string& name, double work, int calls, const std::function<void(int)>& call) {
  double t[3];
  const int threads[3] = {1, 2, 0};
  for (int i = 0; i < 3; ++i) t[i] = median_us(calls, [&] { call(threads[i]); });
  std::printf("%-34s work %10.0f  t1 %9.2f  t2 %9.2f  t0 %9.2f  t2/t1 %5.2f\n", name.c_str(), work, t[0], t[1], t[2],
              t[1] / t[0]);
  std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
  const int calls = argc > 1 ? std::atoi(argv[1]) : 400;
  const ika::index_t D = 64;
  const double Dd = double(D);
  const auto softmax = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2});
  const ika::index_t M = 64;
  const auto ika_logit = [&](ika::index_t H) {
    return ika::log_kernel(ika::yaglom_rff<float>::from_seed(42, H, D, M)) + ika::magnitude(ika::lp{3.0});
  };
  const double F_ika = 2.0 * M;
  // quadratic forward: B·Hq·Lq·Lk·(F + Dv) + feature rows (Lq + Lk)·Hf·(F·D, or D for row kernels)
  for (const ika::index_t H : {1, 8})
    for (const ika::index_t L : {8, 16, 24, 32, 48, 64, 96, 128}) {
      auto q = normal(H * L * D, 1), k = normal(q.size(), 2), v = normal(q.size(), 3), o = q;
      const auto view = [&](std::vector<float>& x) { return ika::bhld(x.data(), 1, H, L, D); };
      row("forward softmax H=" + std::to_string(H) + " L=" + std::to_string(L),
          H * (L * L * (Dd + Dd) + 2.0 * L * Dd), calls,
          [&](int threads) { ika::attention(view(q), view(k), view(v), view(o), softmax, {.threads = threads}); });
    }
  for (const ika::index_t L : {8, 16, 32, 64}) {
    const ika::index_t H = 8;
    const auto logit = ika_logit(H);
    auto q = normal(H * L * D, 1), k = normal(q.size(), 2), v = normal(q.size(), 3), o = q;
    const auto view = [&](std::vector<float>& x) { return ika::bhld(x.data(), 1, H, L, D); };
    row("forward IKA H=8 L=" + std::to_string(L), H * (L * L * (F_ika + Dd) + 2.0 * L * F_ika * Dd), calls,
        [&](int threads) { ika::attention(view(q), view(k), view(v), view(o), logit, {.threads = threads}); });
  }
  // decode (Lq = 1)
  for (const ika::index_t H : {1, 8})
    for (const ika::index_t Lk : {64, 128, 256, 512, 1024, 2048, 4096}) {
      auto q = normal(H * D, 4), k = normal(H * Lk * D, 5), v = normal(k.size(), 6), o = q;
      row("decode softmax H=" + std::to_string(H) + " Lk=" + std::to_string(Lk), H * (Lk * (Dd + Dd) + (Lk + 1) * Dd),
          calls, [&](int threads) {
            ika::attention(ika::bhld(q.data(), 1, H, 1, D), ika::bhld(k.data(), 1, H, Lk, D),
                           ika::bhld(v.data(), 1, H, Lk, D), ika::bhld(o.data(), 1, H, 1, D), softmax,
                           {.threads = threads});
          });
    }
  for (const ika::index_t Lk : {16, 64, 256}) {
    const ika::index_t H = 8;
    const auto logit = ika_logit(H);
    auto q = normal(H * D, 4), k = normal(H * Lk * D, 5), v = normal(k.size(), 6), o = q;
    row("decode IKA H=8 Lk=" + std::to_string(Lk), H * (Lk * (F_ika + Dd) + (Lk + 1) * F_ika * Dd), calls,
        [&](int threads) {
          ika::attention(ika::bhld(q.data(), 1, H, 1, D), ika::bhld(k.data(), 1, H, Lk, D),
                         ika::bhld(v.data(), 1, H, Lk, D), ika::bhld(o.data(), 1, H, 1, D), logit, {.threads = threads});
        });
  }
  // key cache: append n keys, IKA kernel, H = 8
  for (const ika::index_t n : {1, 4, 16, 64}) {
    const ika::index_t H = 8;
    const auto logit = ika_logit(H);
    auto k = normal(H * n * D, 5);
    ika::key_cache<float, ika::yaglom_rff<float>, ika::lp> cache(logit, 1, H, H, D, 64 * 1024);
    row("key_cache append IKA H=8 n=" + std::to_string(n), H * n * F_ika * Dd, calls, [&](int threads) {
      if (cache.size() + n > cache.capacity()) cache.clear();
      cache.append(ika::bhld(k.data(), 1, H, n, D), threads);
    });
  }
  // linear-time (raw features), IKA kernel: L·F·(Dv + 1)·2 + feature rows 2·L·F·D
  for (const ika::index_t H : {1, 8})
    for (const ika::index_t L : {8, 16, 32, 64}) {
      const auto logit = ika_logit(H);
      auto q = normal(H * L * D, 7), k = normal(q.size(), 8), v = normal(q.size(), 9), o = q;
      const auto view = [&](std::vector<float>& x) { return ika::bhld(x.data(), 1, H, L, D); };
      row("linear raw IKA H=" + std::to_string(H) + " L=" + std::to_string(L),
          H * (2.0 * L * F_ika * (Dd + 1) + 2.0 * L * F_ika * Dd), calls, [&](int threads) {
            ika::linear_attention(view(q), view(k), view(v), view(o), logit,
                                  {.features = ika::linear_features::raw, .threads = threads});
          });
    }
  // backward, 2.5x the forward's attention work
  for (const bool ika_kernel : {false, true})
    for (const ika::index_t L : {8, 16, 32, 64}) {
      const ika::index_t H = 8;
      auto q = normal(H * L * D, 7), k = normal(q.size(), 8), v = normal(q.size(), 9), o = q, lse = normal(H * L, 10);
      auto d_out = normal(q.size(), 11), dq = q, dk = q, dv = q;
      const auto view = [&](std::vector<float>& x) { return ika::bhld(x.data(), 1, H, L, D); };
      const auto run = [&](const auto& logit) {
        ika::attention(view(q), view(k), view(v), view(o), logit, {.lse = ika::bhl(lse.data(), 1, H, L)});
        const double F = ika_kernel ? F_ika : Dd;
        row(std::string("backward ") + (ika_kernel ? "IKA" : "softmax") + " H=8 L=" + std::to_string(L),
            H * (2.5 * L * L * (F + Dd) + 2.0 * L * (ika_kernel ? F * Dd : Dd)), calls, [&](int threads) {
              ika::attention_backward(view(q), view(k), view(v), ika::tensor_view<const float>(view(o)),
                                      ika::row_stat_view<const float>{lse.data(), 1, H, L, H * L, L, 1},
                                      ika::tensor_view<const float>(view(d_out)), logit,
                                      ika::attention_grads<float>{.dq = view(dq), .dk = view(dk), .dv = view(dv)},
                                      threads);
            });
      };
      if (ika_kernel) run(ika_logit(H));
      else run(softmax);
    }
}
