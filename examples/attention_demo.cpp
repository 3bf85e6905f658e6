// SPDX-License-Identifier: MIT
// A tour of ika on random data: softmax attention as a point of the implicit-kernel family,
// the IKA kernel (Yaglom random features + L3 magnitude), masks, grouped heads, and how the fused
// engine compares with the double-precision reference and with itself on 1 and 2 threads.

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include <ika/ika.hpp>

namespace {

using ika::index_t;

std::vector<float> random_tensor(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(n);
  for (auto& e : x) e = normal(gen);
  return x;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

template <class F>
double seconds(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

int main() {
  const index_t B = 2, H = 8, Hkv = 2, L = 512, D = 64;
  auto q = random_tensor(std::size_t(B * H * L * D), 1);
  auto k = random_tensor(std::size_t(B * Hkv * L * D), 2);
  auto v = random_tensor(std::size_t(B * Hkv * L * D), 3);
  std::vector<float> fused(q.size()), reference(q.size()), lse(std::size_t(B * H * L));

  // (B, L, H, D) views, as a projection writes them; grouped-query attention with 8 query heads on 2 kv heads
  const auto Q = ika::blhd(q.data(), B, L, H, D);
  const auto K = ika::blhd(k.data(), B, L, Hkv, D);
  const auto V = ika::blhd(v.data(), B, L, Hkv, D);
  const auto O = ika::blhd(fused.data(), B, L, H, D);
  const auto R = ika::blhd(reference.data(), B, L, H, D);

  std::printf("ika attention demo: B=%ld Hq=%ld Hkv=%ld L=%ld D=%ld, float\n\n", long(B), long(H), long(Hkv), long(L),
              long(D));
  std::printf("%-44s %12s %12s %14s\n", "logit expression", "fused ms", "max|d| ref", "max|d| 1v2 thr");

  auto show = [&](const char* name, const auto& logit) {
    const double t = seconds([&] { ika::attention(Q, K, V, O, logit, {.lse = ika::bhl(lse.data(), B, H, L)}); });
    ika::reference::attention(Q, K, V, R, logit);
    std::vector<float> one_thread(fused.size());
    ika::attention(Q, K, V, ika::blhd(one_thread.data(), B, L, H, D), logit, {.threads = 1});
    std::printf("%-44s %12.2f %12.2e %14.1e\n", name, t * 1e3, max_abs_diff(fused, reference),
                max_abs_diff(fused, one_thread));
  };

  show("softmax = rbf(sigma2=sqrt D) + L2 magnitude", ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}));
  show("dot product (plain SDPA)", ika::log_kernel(ika::dot_product{}));
  const auto yaglom = ika::yaglom_rff<float>::from_seed(42, H, D, 64);
  show("IKA: Yaglom RFF (M=64) + L3 magnitude", ika::log_kernel(yaglom) + ika::magnitude(ika::lp{3.0}));
  show("IKA + causal mask", ika::log_kernel(yaglom) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal{}));
  show("laplacian + L1.8 magnitude", ika::log_kernel(ika::laplacian{}) + ika::magnitude(ika::lp{1.8}));
  const std::vector<int> lengths{L, L / 3};
  show("rbf + Linf magnitude + key padding", ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{ika::lp::infinity}) +
                                              ika::mask(ika::key_padding{lengths}));

  // One row of attention weights for the IKA kernel, to show what the magnitude does.
  std::vector<double> weights;
  const index_t Ls = 16;
  const auto Qs = ika::blhd(q.data(), 1, Ls, 1, D), Ks = ika::blhd(k.data(), 1, Ls, 1, D), Vs = ika::blhd(v.data(), 1, Ls, 1, D);
  std::vector<float> out_small(std::size_t(Ls * D));
  for (const double p : {1.8, 2.0, 3.0}) {
    ika::reference::attention(Qs, Ks, Vs, ika::bhld(out_small.data(), 1, 1, Ls, D),
                              ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{p}), {}, &weights);
    double max_weight = 0;
    for (index_t j = 0; j < Ls; ++j) max_weight = std::max(max_weight, weights[std::size_t(j)]);
    std::printf("\nrbf + L%.1f magnitude, query 0 over %ld keys: largest weight %.3f", p, long(Ls), max_weight);
  }
  std::printf("\n");
  return 0;
}
