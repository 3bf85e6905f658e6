// SPDX-License-Identifier: MIT
// The reference backward against central finite differences of the reference forward, in double,
// for every kernel × norm × mask kind with grouped heads: gradients for q, k, v, the spectral
// points and an additive bias.

#include <doctest/doctest.h>

#include <functional>
#include <sstream>

#include <ika/cpu/reference_backward.hpp>

#include "support.hpp"

using namespace ika_test;

namespace {

// max |analytic − numeric| / max(1, max |analytic|) over every entry of `x`, where the loss is
// Σ d_out ⊙ out and the numeric derivative is a central difference with step h.
double finite_difference_error(std::vector<double>& x, const std::vector<double>& analytic,
                               const std::function<double()>& loss, double h = 1e-6) {
  REQUIRE(x.size() == analytic.size());
  double worst = 0, scale = 1;
  for (double a : analytic) scale = std::max(scale, std::abs(a));
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    worst = std::max(worst, std::abs((up - down) / (2 * h) - analytic[i]));
  }
  return worst / scale;
}

struct backward_case {
  static constexpr index_t B = 2, Hq = 4, Hkv = 2, Lq = 5, Lk = 7, D = 4, Dv = 3, M = 3;
  std::vector<double> q, k, v, d_out, w1, w2, shared, bias;
  std::vector<int> lengths{Lk, 4}, offsets{0, 2, 2, 5, 6, 7}, neighbours{0, 3, 1, 2, 6, 4, 5};
  std::unique_ptr<bool[]> keep;

  backward_case()
      : q(B * Hq * Lq * D), k(B * Hkv * Lk * D), v(B * Hkv * Lk * Dv), d_out(B * Hq * Lq * Dv), w1(Hq * D * M),
        w2(Hq * D * M), shared(D * M), bias(Lq * Lk), keep(new bool[Lq * Lk]) {
    fill_normal(q, 1, 0.8);
    fill_normal(k, 2, 0.8);
    fill_normal(v, 3);
    fill_normal(d_out, 4);
    fill_normal(w1, 5, 0.3);
    fill_normal(w2, 6, 0.3);
    fill_normal(shared, 8, 0.3);
    fill_normal(bias, 7, 0.5);
    for (index_t i = 0; i < Lq * Lk; ++i) keep[i] = (i * 5) % 3 != 0;
  }
  auto Q() { return ika::bhld(q.data(), B, Hq, Lq, D); }
  auto K() { return ika::blhd(k.data(), B, Lk, Hkv, D); } // a second layout on purpose
  auto V() { return ika::bhld(v.data(), B, Hkv, Lk, Dv); }
  auto dO() { return ika::bhld(d_out.data(), B, Hq, Lq, Dv); }
  auto W1() { return ika::spectral(w1.data(), Hq, D, M); }
  auto W2() { return ika::spectral(w2.data(), Hq, D, M); }
  auto shared_points() { return ika::spectral(shared.data(), 1, D, M); } // one Ω for all heads: gradients sum over heads

  template <class Expr>
  double loss(const Expr& expr) {
    std::vector<double> out(d_out.size());
    ika::reference::attention(Q(), K(), V(), ika::bhld(out.data(), B, Hq, Lq, Dv), expr);
    double s = 0;
    for (std::size_t i = 0; i < out.size(); ++i) s += out[i] * d_out[i];
    return s;
  }
};

// k is laid out (B, L, H, D); the reference gradients are (B, H, L, D): compare in k's order.
std::vector<double> bhld_to_blhd(const std::vector<double>& x, index_t B, index_t L, index_t H, index_t D) {
  std::vector<double> y(x.size());
  for (index_t b = 0; b < B; ++b)
    for (index_t l = 0; l < L; ++l)
      for (index_t h = 0; h < H; ++h)
        for (index_t d = 0; d < D; ++d) y[((b * L + l) * H + h) * D + d] = x[((b * H + h) * L + l) * D + d];
  return y;
}

} // namespace

TEST_CASE("reference backward == central finite differences for every kernel x norm x mask") {
  backward_case c;
  using C = backward_case;
  const double tol = 1e-6;
  int configurations = 0;

  // spectral: the arrays behind the kernel's points, in the order of attention_gradients::dspectral
  using spectral_arrays = std::vector<std::vector<double>*>;
  auto check = [&](const std::string& what, const auto& expr, const spectral_arrays& spectral) {
    INFO(what);
    const auto g = ika::reference::attention_backward(c.Q(), c.K(), c.V(), c.dO(), expr);
    const std::function<double()> loss = [&] { return c.loss(expr); };
    CHECK(finite_difference_error(c.q, g.dq, loss) <= tol);
    CHECK(finite_difference_error(c.k, bhld_to_blhd(g.dk, C::B, C::Lk, C::Hkv, C::D), loss) <= tol);
    CHECK(finite_difference_error(c.v, g.dv, loss) <= tol);
    REQUIRE(g.dspectral.size() == spectral.size());
    for (std::size_t s = 0; s < spectral.size(); ++s) CHECK(finite_difference_error(*spectral[s], g.dspectral[s], loss) <= tol);
    ++configurations;
  };

  auto for_each_mask = [&](const auto& base, const std::string& name, const spectral_arrays& spectral_tensors) {
    check(name + " mask=none", base, spectral_tensors);
    check(name + " mask=causal_lower_right", base + ika::mask(ika::causal_lower_right{}), spectral_tensors);
    check(name + " mask=key_padding", base + ika::mask(ika::key_padding{c.lengths}), spectral_tensors);
    check(name + " mask=keep_mask", base + ika::mask(ika::keep_mask{ika::dense(c.keep.get(), 1, 1, C::Lq, C::Lk)}),
          spectral_tensors);
    check(name + " mask=graph_csr", base + ika::mask(ika::graph_csr{c.offsets, c.neighbours}), spectral_tensors);
    // the bias gradient, broadcast over batch and heads
    const auto with_bias = base + ika::mask(ika::additive_bias{ika::dense(c.bias.data(), 1, 1, C::Lq, C::Lk)});
    const auto g = ika::reference::attention_backward(c.Q(), c.K(), c.V(), c.dO(), with_bias);
    REQUIRE(g.dbias.size() == 1);
    INFO(name << " additive_bias");
    CHECK(finite_difference_error(c.bias, g.dbias[0], [&] { return c.loss(with_bias); }) <= tol);
    check(name + " mask=additive_bias", with_bias, spectral_tensors);
  };

  auto for_each_norm = [&](const auto& kernel, const std::string& name, const spectral_arrays& spectral_tensors) {
    for_each_mask(ika::log_kernel(kernel), name + " norm=none", spectral_tensors);
    for_each_mask(ika::log_kernel(kernel) + ika::magnitude(ika::lp{2.0}), name + " norm=lp(2)", spectral_tensors);
    for_each_mask(ika::log_kernel(kernel) + ika::magnitude(ika::lp{3.0, ika::norm_exponent::p, ika::norm_divisor::code}),
                  name + " norm=lp(3, r=p, code)", spectral_tensors);
    for_each_mask(ika::log_kernel(kernel) + ika::magnitude(ika::lp{1.8, ika::norm_exponent::two, ika::norm_divisor::paper, true}),
                  name + " norm=lp(1.8, with query)", spectral_tensors);
    for_each_mask(ika::log_kernel(kernel) + ika::magnitude(ika::lp{ika::lp::infinity}), name + " norm=lp(inf)",
                  spectral_tensors);
  };

  for_each_norm(ika::rbf{}, "rbf", {});
  for_each_norm(ika::dot_product{}, "dot_product", {});
  for_each_norm(ika::laplacian{}, "laplacian", {});
  for_each_norm(ika::random_fourier{c.shared_points()}, "random_fourier(shared points)", {&c.shared});
  for_each_norm(ika::yaglom_rff{c.W1(), c.W2()}, "yaglom_rff", {&c.w1, &c.w2});
  ika::yaglom_rff clamp{c.W1(), c.W2(), ika::rff_estimate::clamp};
  clamp.epsilon = 1e-3;
  for_each_norm(clamp, "yaglom_rff(clamp)", {&c.w1, &c.w2});
  CHECK(configurations == 6 * 5 * 6);
}

TEST_CASE("a fully masked row contributes no gradient") {
  backward_case c;
  c.lengths = {backward_case::Lk, 0};
  const auto expr = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}) + ika::mask(ika::key_padding{c.lengths});
  const auto g = ika::reference::attention_backward(c.Q(), c.K(), c.V(), c.dO(), expr);
  const std::size_t half_q = g.dq.size() / 2, half_k = g.dk.size() / 2, half_v = g.dv.size() / 2;
  for (std::size_t i = half_q; i < g.dq.size(); ++i) CHECK(g.dq[i] == 0.0);
  for (std::size_t i = half_k; i < g.dk.size(); ++i) CHECK(g.dk[i] == 0.0);
  for (std::size_t i = half_v; i < g.dv.size(); ++i) CHECK(g.dv[i] == 0.0);
  CHECK(std::any_of(g.dq.begin(), g.dq.begin() + half_q, [](double x) { return x != 0.0; }));
}

TEST_CASE("reference backward: d/dp of the lp norm (a learnable p) == central finite differences") {
  backward_case c;
  ika::lp norms[] = {ika::lp{2.0}, ika::lp{3.0, ika::norm_exponent::p, ika::norm_divisor::code},
                     ika::lp{1.8, ika::norm_exponent::two, ika::norm_divisor::paper, true}, ika::lp{0.7}};
  for (ika::lp n : norms) {
    INFO("p=" << n.p << " r=" << (n.exponent == ika::norm_exponent::p ? "p" : "2") << " query=" << n.include_query);
    auto expr_at = [&](double p) {
      ika::lp m = n;
      m.p = p;
      return ika::log_kernel(ika::yaglom_rff{c.W1(), c.W2()}) + ika::magnitude(m) + ika::mask(ika::key_padding{c.lengths});
    };
    const auto g = ika::reference::attention_backward(c.Q(), c.K(), c.V(), c.dO(), expr_at(n.p));
    const double h = 1e-6;
    const double numeric = (c.loss(expr_at(n.p + h)) - c.loss(expr_at(n.p - h))) / (2 * h);
    CHECK(std::abs(g.dp - numeric) <= 1e-6 * std::max(1.0, std::abs(numeric)));
    CHECK(g.dp != 0.0); // the loss does depend on p here
  }
}
