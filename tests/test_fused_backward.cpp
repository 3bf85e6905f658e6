// SPDX-License-Identifier: MIT
// The fused backward against the double reference backward (itself checked by finite
// differences), and bitwise identical gradients for 1 and 2 threads.

#include <doctest/doctest.h>

#include <cstring>
#include <memory>
#include <sstream>
#include <string_view>

#include "support.hpp"

using namespace ika_test;

namespace {

template <class T>
struct backward_problem {
  qkv_problem<T> p;
  std::vector<T> d_out, dq, dk, dv;
  result<T> fwd;
  backward_problem(layout l, index_t B, index_t Hq, index_t Hkv, index_t Lq, index_t Lk, index_t D, index_t Dv,
                   std::uint64_t seed)
      : p(l, B, Hq, Hkv, Lq, Lk, D, Dv, seed, 0.7), d_out(std::size_t(B * Hq * Lq * Dv)), dq(std::size_t(B * Hq * Lq * D)),
        dk(std::size_t(B * Hkv * Lk * D)), dv(std::size_t(B * Hkv * Lk * Dv)), fwd(B, Hq, Lq, Dv) {
    fill_normal(d_out, seed + 7);
  }
  // gradients in (B, H, L, D) order; `extra` carries the optional outputs (spectral, bias, p)
  template <class Expr>
  void run(const Expr& expr, int threads = 2, ika::attention_grads<T> extra = {}) {
    ika::attention(p.q, p.k, p.v, fwd.o(), expr, {.lse = fwd.l()});
    const ika::tensor_view<const T> out = fwd.o();
    const ika::row_stat_view<const T> lse{fwd.lse.data(), p.B, p.Hq, p.Lq, p.Hq * p.Lq, p.Lq, 1};
    extra.dq = ika::bhld(dq.data(), p.B, p.Hq, p.Lq, p.D);
    extra.dk = ika::bhld(dk.data(), p.B, p.Hkv, p.Lk, p.D);
    extra.dv = ika::bhld(dv.data(), p.B, p.Hkv, p.Lk, p.Dv);
    ika::attention_backward(p.q, p.k, p.v, out, lse, ika::tensor_view<const T>(ika::bhld(d_out.data(), p.B, p.Hq, p.Lq, p.Dv)),
                            expr, extra, threads);
  }
  template <class Expr>
  ika::reference::attention_gradients reference(const Expr& expr) {
    return ika::reference::attention_backward(p.q, p.k, p.v, ika::bhld(d_out.data(), p.B, p.Hq, p.Lq, p.Dv), expr);
  }
};

// A graph over Lq query nodes and Lk key nodes with an irregular degree; node 0 has no neighbours
// (a fully masked row).
struct test_graph {
  std::vector<int> offsets{0}, columns;
  test_graph(index_t Lq, index_t Lk) {
    for (index_t i = 0; i < Lq; ++i) {
      for (index_t j = 0; j < Lk && i > 0; ++j)
        if ((i * 7 + j * 3) % 5 < 2 || j == i % Lk) columns.push_back(int(j));
      offsets.push_back(int(columns.size()));
    }
  }
};

template <class Expr>
constexpr bool has_additive_bias = false;
template <class K, class N, class... Ms>
constexpr bool has_additive_bias<ika::logit_expression<K, N, Ms...>> = (ika::detail::is_additive_bias<Ms> || ...);

double scalar_error(double a, double b) { return std::abs(a - b) / std::max(1.0, std::abs(b)); }

} // namespace

TEST_CASE_TEMPLATE("fused backward == reference backward: kernels x norms x masks (every kernel in double); spectral, bias and p gradients", T,
                   float, double) {
  constexpr bool single = std::is_same_v<T, float>;
  constexpr bool all_kernels = every_kernel && !single; // float takes the subset (support.hpp)
  // In float, dℓ = P ⊙ (dP − D_i) carries the rounding of a difference of nearly equal terms; the
  // random-feature log-kernel's slope 2s/(s² + ε) (up to 1/(2√ε) ≈ 158) amplifies it, and dp sums
  // B·H·Lq·Lk such terms that cancel (Σ_j dℓ_ij = 0), hence the looser float bounds there.
  const double base_tol = single ? 2e-4 : 1e-9, spectral_tol = single ? 1e-3 : 1e-9, dp_tol = single ? 2e-3 : 1e-9;
  struct shape {
    index_t Lq, Lk, D, Dv;
  };
  constexpr index_t B = 2, Hq = 4, Hkv = 2, M = 5;
  int configurations = 0;
  for (const shape sh : {shape{1, 1, 8, 8}, shape{7, 33, 33, 9}, shape{70, 65, 16, 5}, shape{33, 130, 64, 64}}) {
    backward_problem<T> bp(layout::blhd, B, Hq, Hkv, sh.Lq, sh.Lk, sh.D, sh.Dv, 11 + sh.Lq);
    const std::vector<int> lengths{int(sh.Lk), int(sh.Lk / 2)};
    std::vector<T> bias(std::size_t(sh.Lq * sh.Lk)), dbias(bias.size());
    fill_normal(bias, 3);
    std::unique_ptr<bool[]> keep(new bool[std::size_t(sh.Lq * sh.Lk)]);
    for (index_t i = 0; i < sh.Lq * sh.Lk; ++i) keep[std::size_t(i)] = (i * 5) % 3 != 0;
    const test_graph graph(sh.Lq, sh.Lk);
    // spectral points: per query head, or one set shared by every head
    std::vector<T> w1(std::size_t(Hq * sh.D * M)), w2(w1.size()), shared(std::size_t(sh.D * M));
    std::vector<T> dw1(w1.size()), dw2(w2.size()), dshared(shared.size());
    fill_normal(w1, 21, 0.4);
    fill_normal(w2, 22, 0.4);
    fill_normal(shared, 23, 0.6);

    // spectral: the gradient arrays to fill, in the kernel's order
    auto check = [&](const std::string& what, const auto& expr, std::vector<std::vector<T>*> spectral) {
      INFO(what << " Lq=" << sh.Lq << " Lk=" << sh.Lk << " D=" << sh.D << " Dv=" << sh.Dv);
      const double tol = spectral.empty() ? base_tol : spectral_tol;
      using expr_type = std::remove_cvref_t<decltype(expr)>;
      ika::attention_grads<T> extra;
      for (std::size_t t = 0; t < spectral.size(); ++t)
        extra.dspectral[t] = ika::spectral(spectral[t]->data(), spectral[t]->size() == dshared.size() ? 1 : Hq, sh.D, M);
      constexpr bool has_bias = has_additive_bias<expr_type>;
      if (has_bias) extra.dbias = ika::dense(dbias.data(), 1, 1, sh.Lq, sh.Lk);
      T dp = std::numeric_limits<T>::quiet_NaN();
      constexpr bool has_p = std::is_same_v<decltype(expr_type::norm), ika::lp>;
      if constexpr (has_p)
        if (std::isfinite(expr.norm.p)) extra.dp = &dp;
      bp.run(expr, 0, extra);
      const auto ref = bp.reference(expr);
      // q and k are read (B, L, H, D); both gradients are (B, H, L, D)
      CHECK(relative_error(bp.dq, ref.dq) <= tol);
      CHECK(relative_error(bp.dk, ref.dk) <= tol);
      CHECK(relative_error(bp.dv, ref.dv) <= tol);
      CHECK_FALSE(any_nan(bp.dq));
      CHECK_FALSE(any_nan(bp.dk));
      REQUIRE(ref.dspectral.size() == spectral.size());
      for (std::size_t t = 0; t < spectral.size(); ++t) CHECK(relative_error(*spectral[t], ref.dspectral[t]) <= tol);
      if (has_bias) {
        REQUIRE(ref.dbias.size() == 1);
        CHECK(relative_error(dbias, ref.dbias[0]) <= tol);
      }
      if (extra.dp) CHECK(scalar_error(dp, ref.dp) <= dp_tol);
      ++configurations;
    };
    auto with_kernel = [&](const auto& k, const std::string& name, std::vector<std::vector<T>*> spectral) {
      check(name, ika::log_kernel(k), spectral);
      check(name + " lp(2)", ika::log_kernel(k) + ika::magnitude(ika::lp{2.0}), spectral);
      check(name + " lp(3, r=p) causal_lower_right",
            ika::log_kernel(k) + ika::magnitude(ika::lp{3.0, ika::norm_exponent::p}) + ika::mask(ika::causal_lower_right{}),
            spectral);
      check(name + " lp(1.8, with query) key_padding",
            ika::log_kernel(k) + ika::magnitude(ika::lp{1.8, ika::norm_exponent::two, ika::norm_divisor::code, true}) +
                ika::mask(ika::key_padding{lengths}),
            spectral);
      check(name + " lp(inf) additive_bias",
            ika::log_kernel(k) + ika::magnitude(ika::lp{ika::lp::infinity}) +
                ika::mask(ika::additive_bias{ika::dense(bias.data(), 1, 1, sh.Lq, sh.Lk)}),
            spectral);
      check(name + " lp(2.5) keep_mask + additive_bias",
            ika::log_kernel(k) + ika::magnitude(ika::lp{2.5}) +
                ika::mask(ika::keep_mask{ika::dense(static_cast<const bool*>(keep.get()), 1, 1, sh.Lq, sh.Lk)}) +
                ika::mask(ika::additive_bias{ika::dense(bias.data(), 1, 1, sh.Lq, sh.Lk)}),
            spectral);
      check(name + " lp(2) graph", ika::log_kernel(k) + ika::magnitude(ika::lp{2.0}) + ika::mask(ika::graph_csr{graph.offsets, graph.columns}),
            spectral);
    };
    const auto W1 = ika::spectral(static_cast<const T*>(w1.data()), Hq, sh.D, M);
    const auto W2 = ika::spectral(static_cast<const T*>(w2.data()), Hq, sh.D, M);
    ika::yaglom_rff clamp{W1, W2, ika::rff_estimate::clamp};
    clamp.epsilon = 1e-3;
    with_kernel(ika::rbf{}, "rbf", {});
    with_kernel(ika::laplacian{}, "laplacian", {});
    with_kernel(clamp, "yaglom_rff(clamp)", {&dw1, &dw2});
    if constexpr (all_kernels) {
      with_kernel(ika::dot_product{}, "dot_product", {});
      with_kernel(ika::random_fourier{ika::spectral(static_cast<const T*>(w1.data()), Hq, sh.D, M)}, "random_fourier",
                  {&dw1});
      with_kernel(ika::random_fourier{ika::spectral(static_cast<const T*>(shared.data()), 1, sh.D, M)},
                  "random_fourier(shared)", {&dshared});
      with_kernel(ika::yaglom_rff{W1, W2}, "yaglom_rff", {&dw1, &dw2});
    }
  }
  CHECK(configurations == 4 * (all_kernels ? 7 : 3) * 7);
}

TEST_CASE("fused backward: gradients are bitwise identical for 1 and 2 threads") {
  auto same = [](const auto& x, const auto& y) {
    return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(x[0])) == 0;
  };
  {
    backward_problem<float> a(layout::bhld, 2, 4, 2, 150, 170, 32, 24, 5), b(layout::bhld, 2, 4, 2, 150, 170, 32, 24, 5);
    const auto expr = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal_upper_left{});
    a.run(expr, 1);
    b.run(expr, 2);
    CHECK(same(a.dq, b.dq));
    CHECK(same(a.dk, b.dk));
    CHECK(same(a.dv, b.dv));
  }
  // spectral points shared by the heads, a broadcast bias and p: every reduction of the backward
  constexpr index_t D = 16, M = 7, L = 90;
  std::vector<float> omega(std::size_t(D * M)), bias(std::size_t(L * L));
  fill_normal(omega, 3, 0.5);
  fill_normal(bias, 4);
  const auto expr = ika::log_kernel(ika::random_fourier{ika::spectral(static_cast<const float*>(omega.data()), 1, D, M)}) +
                    ika::magnitude(ika::lp{2.5}) + ika::mask(ika::additive_bias{ika::dense(bias.data(), 1, 1, L, L)});
  std::vector<float> d_omega[2], d_bias[2];
  float dp[2];
  backward_problem<float> a(layout::bhld, 2, 4, 2, L, L, D, 8, 5), b(layout::bhld, 2, 4, 2, L, L, D, 8, 5);
  for (int t = 0; t < 2; ++t) {
    d_omega[t].resize(omega.size());
    d_bias[t].resize(bias.size());
    ika::attention_grads<float> extra;
    extra.dspectral[0] = ika::spectral(d_omega[t].data(), 1, D, M);
    extra.dbias = ika::dense(d_bias[t].data(), 1, 1, L, L);
    extra.dp = &dp[t];
    (t == 0 ? a : b).run(expr, t + 1, extra);
  }
  CHECK(same(a.dq, b.dq));
  CHECK(same(a.dk, b.dk));
  CHECK(same(a.dv, b.dv));
  CHECK(same(d_omega[0], d_omega[1]));
  CHECK(same(d_bias[0], d_bias[1]));
  CHECK(std::memcmp(&dp[0], &dp[1], sizeof(float)) == 0);
}

TEST_CASE("fused backward: optional gradients the expression cannot produce are refused by name") {
  backward_problem<float> bp(layout::bhld, 1, 2, 2, 5, 6, 4, 3, 9);
  std::vector<float> omega(4 * 3), d_omega(omega.size() + 4), bias(5 * 6), d_bias(bias.size());
  fill_normal(omega, 1);
  const auto rff = ika::log_kernel(ika::random_fourier{ika::spectral(static_cast<const float*>(omega.data()), 1, 4, 3)});
  auto refused = [&](const auto& expr, ika::attention_grads<float> extra, const char* argument, const char* text) {
    INFO(argument << ": " << text);
    try {
      bp.run(expr, 0, extra);
      FAIL("accepted");
    } catch (const ika::invalid_argument& e) {
      CHECK(e.argument() == std::string_view(argument));
      CHECK(std::string(e.what()).find(text) != std::string::npos);
    }
  };
  ika::attention_grads<float> g;
  g.dspectral[0] = ika::spectral(d_omega.data(), 1, 4, 3);
  refused(ika::log_kernel(ika::rbf{}), g, "grads.dspectral", "this kernel has no spectral points");
  g.dspectral[0] = ika::spectral(d_omega.data(), 1, 4, 4);
  refused(rff, g, "grads.dspectral", "the shape of the kernel's spectral points (1, 4, 3)");
  g.dspectral[0] = ika::spectral(d_omega.data(), 1, 4, 3);
  g.dspectral[1] = ika::spectral(d_omega.data(), 1, 4, 3);
  refused(rff, g, "grads.dspectral", "a null view at index 1");
  ika::attention_grads<float> b;
  b.dbias = ika::dense(d_bias.data(), 1, 1, 5, 6);
  refused(rff, b, "grads.dbias", "the expression has no additive_bias mask");
  b.dbias = ika::dense(d_bias.data(), 1, 2, 5, 6);
  refused(rff + ika::mask(ika::additive_bias{ika::dense(bias.data(), 1, 1, 5, 6)}), b, "grads.dbias",
          "the sizes of the additive bias (1, 1, 5, 6)");
  float dp = 0;
  ika::attention_grads<float> p;
  p.dp = &dp;
  refused(rff, p, "grads.dp", "only the lp norm has an exponent p");
  refused(rff + ika::magnitude(ika::lp{ika::lp::infinity}), p, "grads.dp", "a finite p");
}

// The backward's buffers live in per-thread arenas reused across calls: a call must not depend on
// what an earlier, larger call of the same engine type left there (every sum starts from zero).
TEST_CASE("fused backward: the same bits whatever an earlier call left in the scratch memory") {
  using expr_type = decltype(ika::log_kernel(ika::random_fourier{ika::spectral(static_cast<const float*>(nullptr), 1, 1, 1)}) +
                             ika::magnitude(ika::lp{2.5}) +
                             ika::mask(ika::additive_bias{ika::dense(static_cast<float*>(nullptr), 1, 1, 1, 1)}));
  struct run_result {
    std::vector<float> dq, dk, dv, d_omega, d_bias;
    float dp = 0;
  };
  // one call of the same expression type at a shape of its own
  const auto run = [](index_t Hq, index_t Hkv, index_t L, index_t D, index_t M, std::uint64_t seed) {
    std::vector<float> omega(std::size_t(D * M)), bias(std::size_t(L * L));
    fill_normal(omega, seed, 0.5);
    fill_normal(bias, seed + 1);
    const expr_type expr = ika::log_kernel(ika::random_fourier{ika::spectral(static_cast<const float*>(omega.data()), 1, D, M)}) +
                           ika::magnitude(ika::lp{2.5}) +
                           ika::mask(ika::additive_bias{ika::dense(bias.data(), 1, 1, L, L)});
    backward_problem<float> problem(layout::bhld, 2, Hq, Hkv, L, L, D, 8, seed);
    run_result r;
    r.d_omega.resize(omega.size());
    r.d_bias.resize(bias.size());
    ika::attention_grads<float> extra;
    extra.dspectral[0] = ika::spectral(r.d_omega.data(), 1, D, M);
    extra.dbias = ika::dense(r.d_bias.data(), 1, 1, L, L);
    extra.dp = &r.dp;
    problem.run(expr, 2, extra);
    r.dq = problem.dq;
    r.dk = problem.dk;
    r.dv = problem.dv;
    return r;
  };
  const run_result first = run(4, 2, 37, 16, 7, 11);
  (void)run(4, 4, 260, 24, 33, 12); // larger: its values fill more of every buffer
  const run_result again = run(4, 2, 37, 16, 7, 11);
  CHECK(first.dq == again.dq);
  CHECK(first.dk == again.dk);
  CHECK(first.dv == again.dv);
  CHECK(first.d_omega == again.d_omega);
  CHECK(first.d_bias == again.d_bias);
  CHECK(std::memcmp(&first.dp, &again.dp, sizeof(float)) == 0);
}
