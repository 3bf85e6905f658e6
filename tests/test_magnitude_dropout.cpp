// SPDX-License-Identifier: MIT
// Dropout on the magnitude matrix (the public code's training path): the fused forward against the
// reference, the reference backward against finite differences, the drop rate, thread-count
// independence and the rate-0 identity.

#include <doctest/doctest.h>

#include <cstring>
#include <functional>

#include <ika/cpu/reference_backward.hpp>

#include "support.hpp"

using namespace ika_test;

namespace {

template <class T, class Expr>
double fused_vs_reference(qkv_problem<T>& p, const Expr& expr, int threads = 2, std::vector<T>* out_copy = nullptr) {
  result<T> fused(p.B, p.Hq, p.Lq, p.Dv), ref(p.B, p.Hq, p.Lq, p.Dv);
  ika::attention(p.q, p.k, p.v, fused.o(), expr, {.lse = fused.l(), .threads = threads});
  ika::reference::attention(p.q, p.k, p.v, ref.o(), expr, {.lse = ref.l()});
  if (out_copy) *out_copy = fused.out;
  return std::max(relative_error(fused.out, ref.out), relative_error(fused.lse, ref.lse));
}

} // namespace

TEST_CASE_TEMPLATE("magnitude dropout: fused forward == reference", T, float, double) {
  const double tol = tolerance<T>();
  std::vector<T> w1(4 * 16 * 5), w2(w1.size());
  fill_normal(w1, 1, 0.3);
  fill_normal(w2, 2, 0.3);
  for (const auto& [Lq, Lk] : {std::pair<index_t, index_t>{1, 1}, {7, 33}, {70, 65}, {33, 257}}) {
    INFO("Lq=" << Lq << " Lk=" << Lk);
    qkv_problem<T> p(layout::blhd, 2, 4, 2, Lq, Lk, 16, 9, 5 + Lq, 0.8);
    const ika::magnitude_dropout<ika::lp> drop{ika::lp{3.0}, 0.3, 17, 4};
    const ika::magnitude_dropout<ika::lp> drop_query{ika::lp{1.8, ika::norm_exponent::two, ika::norm_divisor::code, true},
                                                     0.1, 5, 0};
    CHECK(fused_vs_reference(p, ika::log_kernel(ika::rbf{}) + ika::magnitude(drop)) <= tol);
    CHECK(fused_vs_reference(p, ika::log_kernel(ika::rbf{}) + ika::magnitude(drop_query) +
                                    ika::mask(ika::causal_lower_right{})) <= tol);
    const auto yaglom = ika::yaglom_rff{ika::spectral(static_cast<const T*>(w1.data()), 4, 16, 5),
                                        ika::spectral(static_cast<const T*>(w2.data()), 4, 16, 5)};
    CHECK(fused_vs_reference(p, ika::log_kernel(yaglom) + ika::magnitude(drop)) <= tol);
    std::vector<int> offsets{0}, columns;
    for (index_t i = 0; i < Lq; ++i) {
      for (index_t j = 0; j < Lk; ++j)
        if ((i + 2 * j) % 3 == 0) columns.push_back(int(j));
      offsets.push_back(int(columns.size()));
    }
    CHECK(fused_vs_reference(p, ika::log_kernel(ika::laplacian{}) + ika::magnitude(drop) +
                                    ika::mask(ika::graph_csr{offsets, columns})) <= tol);
  }
}

TEST_CASE("magnitude dropout: drop rate, the identity at rate 0, thread-count independence") {
  const ika::attention_shape s{2, 4, 2, 64, 128, 8, 8};
  const ika::magnitude_dropout<ika::lp> drop{ika::lp{2.0}, 0.25, 3, 1};
  index_t dropped = 0, total = 0, other = 0;
  for (index_t b = 0; b < s.batch; ++b)
    for (index_t h = 0; h < s.q_heads; ++h)
      for (index_t i = 0; i < s.q_len; ++i)
        for (index_t j = 0; j < s.k_len; ++j, ++total) {
          const double f = drop.factor(s, b, h, i, j);
          other += f != 0.0 && f != 1 / 0.75;
          dropped += f == 0.0;
        }
  CHECK(other == 0);
  // 65536 Bernoulli(0.25) draws: the standard deviation of the rate is 0.0017
  CHECK(std::abs(double(dropped) / double(total) - 0.25) < 0.01);

  qkv_problem<float> p(layout::bhld, 2, 4, 2, 150, 170, 32, 24, 5);
  // rate 0 is the plain norm (the extra term adds 0·μ)
  std::vector<float> plain, dropped_out, one, two;
  fused_vs_reference(p, ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{3.0}), 0, &plain);
  fused_vs_reference(p, ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::magnitude_dropout<ika::lp>{ika::lp{3.0}, 0.0, 3, 1}),
                     0, &dropped_out);
  CHECK(relative_error(dropped_out, plain) <= 1e-5);
  const auto expr = ika::log_kernel(ika::rbf{}) + ika::magnitude(drop);
  fused_vs_reference(p, expr, 1, &one);
  fused_vs_reference(p, expr, 2, &two);
  CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
  CHECK(relative_error(one, plain) > 1e-3); // it does change the output
}

TEST_CASE("magnitude dropout: reference backward == central finite differences") {
  constexpr index_t B = 2, Hq = 4, Hkv = 2, Lq = 5, Lk = 7, D = 4, Dv = 3;
  std::vector<double> q(B * Hq * Lq * D), k(B * Hkv * Lk * D), v(B * Hkv * Lk * Dv), d_out(B * Hq * Lq * Dv);
  fill_normal(q, 1, 0.8);
  fill_normal(k, 2, 0.8);
  fill_normal(v, 3);
  fill_normal(d_out, 4);
  auto Q = [&] { return ika::bhld(q.data(), B, Hq, Lq, D); };
  auto K = [&] { return ika::bhld(k.data(), B, Hkv, Lk, D); };
  auto V = [&] { return ika::bhld(v.data(), B, Hkv, Lk, Dv); };
  for (bool include_query : {false, true}) {
    INFO("include_query=" << include_query);
    const auto expr = ika::log_kernel(ika::rbf{}) +
                      ika::magnitude(ika::magnitude_dropout<ika::lp>{
                          ika::lp{2.5, ika::norm_exponent::two, ika::norm_divisor::paper, include_query}, 0.4, 9, 2});
    auto loss = [&] {
      std::vector<double> out(d_out.size());
      ika::reference::attention(Q(), K(), V(), ika::bhld(out.data(), B, Hq, Lq, Dv), expr);
      double s = 0;
      for (std::size_t i = 0; i < out.size(); ++i) s += out[i] * d_out[i];
      return s;
    };
    const auto g = ika::reference::attention_backward(Q(), K(), V(), ika::bhld(d_out.data(), B, Hq, Lq, Dv), expr);
    for (auto [x, analytic] : {std::pair{&q, &g.dq}, std::pair{&k, &g.dk}, std::pair{&v, &g.dv}}) {
      double worst = 0, scale = 1;
      for (double a : *analytic) scale = std::max(scale, std::abs(a));
      for (std::size_t i = 0; i < x->size(); ++i) {
        const double saved = (*x)[i], h = 1e-6;
        (*x)[i] = saved + h;
        const double up = loss();
        (*x)[i] = saved - h;
        const double down = loss();
        (*x)[i] = saved;
        worst = std::max(worst, std::abs((up - down) / (2 * h) - (*analytic)[i]));
      }
      CHECK(worst / scale <= 1e-6);
    }
  }
}

TEST_CASE_TEMPLATE("magnitude dropout: fused backward == reference backward, bitwise for 1 and 2 threads", T, float, double) {
  const double tol = std::is_same_v<T, float> ? 1e-3 : 1e-9;
  constexpr index_t B = 2, Hq = 4, Hkv = 2, D = 16, Dv = 8, M = 5;
  std::vector<T> w1(Hq * D * M), w2(w1.size());
  fill_normal(w1, 1, 0.3);
  fill_normal(w2, 2, 0.3);
  const auto yaglom = ika::yaglom_rff{ika::spectral(static_cast<const T*>(w1.data()), Hq, D, M),
                                      ika::spectral(static_cast<const T*>(w2.data()), Hq, D, M)};
  for (const auto& [Lq, Lk] : {std::pair<index_t, index_t>{7, 33}, {70, 140}}) {
    qkv_problem<T> p(layout::blhd, B, Hq, Hkv, Lq, Lk, D, Dv, 3 + Lq, 0.8);
    std::vector<T> d_out(std::size_t(B * Hq * Lq * Dv));
    fill_normal(d_out, 4);
    auto check = [&](const std::string& what, const auto& expr) {
      INFO(what << " Lq=" << Lq << " Lk=" << Lk);
      result<T> fwd(B, Hq, Lq, Dv);
      ika::attention(p.q, p.k, p.v, fwd.o(), expr, {.lse = fwd.l()});
      std::vector<T> grads[2][3];
      T dp[2];
      for (int t = 0; t < 2; ++t) {
        grads[t][0].resize(std::size_t(B * Hq * Lq * D));
        grads[t][1].resize(std::size_t(B * Hkv * Lk * D));
        grads[t][2].resize(std::size_t(B * Hkv * Lk * Dv));
        ika::attention_grads<T> g{ika::bhld(grads[t][0].data(), B, Hq, Lq, D), ika::bhld(grads[t][1].data(), B, Hkv, Lk, D),
                                  ika::bhld(grads[t][2].data(), B, Hkv, Lk, Dv)};
        g.dp = &dp[t];
        ika::attention_backward(p.q, p.k, p.v, ika::tensor_view<const T>(fwd.o()),
                                ika::row_stat_view<const T>{fwd.lse.data(), B, Hq, Lq, Hq * Lq, Lq, 1},
                                ika::tensor_view<const T>(ika::bhld(d_out.data(), B, Hq, Lq, Dv)), expr, g, t + 1);
      }
      const auto ref = ika::reference::attention_backward(p.q, p.k, p.v, ika::bhld(d_out.data(), B, Hq, Lq, Dv), expr);
      CHECK(relative_error(grads[0][0], ref.dq) <= tol);
      CHECK(relative_error(grads[0][1], ref.dk) <= tol);
      CHECK(relative_error(grads[0][2], ref.dv) <= tol);
      CHECK(std::abs(double(dp[0]) - ref.dp) <= 10 * tol * std::max(1.0, std::abs(ref.dp)));
      for (int g = 0; g < 3; ++g)
        CHECK(std::memcmp(grads[0][g].data(), grads[1][g].data(), grads[0][g].size() * sizeof(T)) == 0);
      CHECK(std::memcmp(&dp[0], &dp[1], sizeof(T)) == 0);
    };
    const ika::magnitude_dropout<ika::lp> drop{ika::lp{3.0}, 0.3, 17, 4};
    const ika::magnitude_dropout<ika::lp> drop_query{ika::lp{1.8, ika::norm_exponent::two, ika::norm_divisor::code, true},
                                                     0.2, 5, 1};
    check("rbf", ika::log_kernel(ika::rbf{}) + ika::magnitude(drop));
    check("rbf, query magnitude, causal",
          ika::log_kernel(ika::rbf{}) + ika::magnitude(drop_query) + ika::mask(ika::causal_lower_right{}));
    check("yaglom", ika::log_kernel(yaglom) + ika::magnitude(drop_query));
  }
}
