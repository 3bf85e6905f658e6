// SPDX-License-Identifier: MIT
// ad-hoc: linear_attention output, written raw to stdout, for a bitwise comparison of two header trees
#include <ika/ika.hpp>
#include <cstdio>
#include <random>
#include <vector>
int main() {
  const long B = 1, H = 8, D = 64, M = 64;
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0, 0.5f);
  for (long Dv : {5L, 64L, 100L})
    for (long L : {33L, 1000L})
      for (int causal = 0; causal < 2; ++causal) {
        std::vector<float> q(B * H * L * D), k(q.size()), v(B * H * L * Dv), o(v.size());
        for (auto* x : {&q, &k, &v}) for (auto& e : *x) e = n(rng);
        const auto yag = ika::yaglom_rff<float>::from_seed(3, H, D, M);
        const ika::linear_options opt{.features = ika::linear_features::raw};
        if (causal)
          ika::linear_attention(ika::bhld(q.data(), B, H, L, D), ika::bhld(k.data(), B, H, L, D), ika::bhld(v.data(), B, H, L, Dv),
                                ika::bhld(o.data(), B, H, L, Dv), ika::log_kernel(yag) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal{}), opt);
        else
          ika::linear_attention(ika::bhld(q.data(), B, H, L, D), ika::bhld(k.data(), B, H, L, D), ika::bhld(v.data(), B, H, L, Dv),
                                ika::bhld(o.data(), B, H, L, Dv), ika::log_kernel(yag) + ika::magnitude(ika::lp{3.0}), opt);
        fwrite(o.data(), sizeof(float), o.size(), stdout);
      }
}
