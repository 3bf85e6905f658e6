// SPDX-License-Identifier: MIT
// A downstream project: softmax attention through ika's fused engine, checked against a
// plain loop, built with nothing but ika::ika (no -march, no standard flag of its own).
#include <ika/ika.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  const int B = 1, H = 2, L = 9, D = 8;
  std::vector<float> q(B * H * L * D), k(q.size()), v(q.size()), o(q.size());
  for (std::size_t i = 0; i < q.size(); ++i) {
    q[i] = std::sin(0.37f * float(i));
    k[i] = std::cos(0.11f * float(i));
    v[i] = float(i % 7) - 3.0f;
  }
  ika::attention(ika::bhld(q.data(), B, H, L, D), ika::bhld(k.data(), B, H, L, D), ika::bhld(v.data(), B, H, L, D),
                 ika::bhld(o.data(), B, H, L, D), ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}));
  double worst = 0;
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < L; ++i) {
      double w[L], sum = 0, m = -1e300;
      for (int j = 0; j < L; ++j) {
        double s = 0;
        for (int d = 0; d < D; ++d) s += double(q[(h * L + i) * D + d]) * k[(h * L + j) * D + d];
        w[j] = s / std::sqrt(double(D));
        m = std::max(m, w[j]);
      }
      for (int j = 0; j < L; ++j) sum += (w[j] = std::exp(w[j] - m));
      for (int d = 0; d < D; ++d) {
        double expect = 0;
        for (int j = 0; j < L; ++j) expect += w[j] / sum * v[(h * L + j) * D + d];
        worst = std::max(worst, std::abs(expect - o[(h * L + i) * D + d]));
      }
    }
  std::printf("ika consumer: max error vs plain softmax attention %.2e\n", worst);
  if (worst > 1e-5) return 1;
  std::puts("ika consumer ok");
  return 0;
}
