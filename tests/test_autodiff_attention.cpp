// SPDX-License-Identifier: MIT
// The attention node on the tape: gradients of a loss built from ops around it, against central
// finite differences in double (bound 1e-6 relative to the largest gradient).

#include <doctest/doctest.h>

#include <functional>

#include <ika/autodiff/autodiff.hpp>
#include <ika/ika.hpp>

#include "ad_support.hpp"

namespace ad = ika::ad;
using ika::index_t;

using ika_test::finite_difference_error;
using ika_test::random_variable;

TEST_CASE("ad::attention: gradients for q, k, v through the tape match finite differences") {
  const index_t B = 2, Hq = 4, Hkv = 2, Lq = 9, Lk = 11, D = 5, Dv = 3;
  auto q = random_variable({B, Hq, Lq, D}, 1, 0.8), k = random_variable({B, Hkv, Lk, D}, 2, 0.8),
       v = random_variable({B, Hkv, Lk, Dv}, 3, 0.8);
  auto w = random_variable({B, Hq, Lq, Dv}, 4, 0.8); // the loss is Σ w ⊙ tanh(attention)
  const std::vector<int> lengths{int(Lk), 6};
  const auto logit = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal_lower_right{}) +
                     ika::mask(ika::key_padding{lengths});
  ad::tape<double> tp;
  auto loss_of = [&] {
    tp.reset();
    return ad::sum(tp, ad::mul(tp, ad::tanh(tp, ad::attention(tp, q, k, v, logit)), w));
  };
  const auto loss = loss_of();
  tp.backward(loss);
  for (auto* x : {&q, &k, &v}) CHECK(finite_difference_error(*x, [&] { return loss_of().value()[0]; }) <= 1e-6);
}

TEST_CASE("ad::attention: spectral points, an additive bias and p are trainable inputs") {
  const index_t B = 2, Hq = 4, Hkv = 2, Lq = 7, Lk = 9, D = 5, Dv = 3, M = 6;
  auto q = random_variable({B, Hq, Lq, D}, 1, 0.8), k = random_variable({B, Hkv, Lk, D}, 2, 0.8),
       v = random_variable({B, Hkv, Lk, Dv}, 3, 0.8);
  auto w = random_variable({B, Hq, Lq, Dv}, 4, 0.8);
  auto w1 = random_variable({Hq, D, M}, 5, 0.3), w2 = random_variable({Hq, D, M}, 6, 0.3);
  auto bias = random_variable({1, Hq, Lq, Lk}, 7, 0.5);
  ad::variable<double> p(ad::tensor<double>(ad::shape{1}, {2.6}), true);
  ad::tape<double> tp;
  auto loss_of = [&] {
    tp.reset();
    const auto logit =
        ika::log_kernel(ika::yaglom_rff{ika::spectral(static_cast<const double*>(w1.value().data()), Hq, D, M),
                                        ika::spectral(static_cast<const double*>(w2.value().data()), Hq, D, M)}) +
        ika::magnitude(ika::lp{p.value()[0], ika::norm_exponent::p}) +
        ika::mask(ika::additive_bias{ika::dense(static_cast<const double*>(bias.value().data()), 1, Hq, Lq, Lk)});
    ad::attention_inputs<double> inputs{{w1, w2}, bias, p};
    return ad::sum(tp, ad::mul(tp, ad::tanh(tp, ad::attention(tp, q, k, v, logit, inputs)), w));
  };
  for (auto* x : {&q, &k, &v, &w1, &w2, &bias, &p}) x->zero_grad();
  tp.backward(loss_of());
  const std::function<double()> loss = [&] { return loss_of().value()[0]; };
  const char* names[] = {"q", "k", "v", "w1", "w2", "bias", "p"};
  int i = 0;
  for (auto* x : {&q, &k, &v, &w1, &w2, &bias, &p}) {
    INFO(names[i++]);
    double norm = 0;
    for (double g : x->grad()) norm += std::abs(g);
    CHECK(norm > 0);
    CHECK(finite_difference_error(*x, loss) <= 1e-6);
  }
}

TEST_CASE("ad::attention: inputs that the expression does not read are refused") {
  const index_t B = 1, H = 2, L = 3, D = 4, M = 2;
  auto q = random_variable({B, H, L, D}, 1, 0.8), k = random_variable({B, H, L, D}, 2, 0.8),
       v = random_variable({B, H, L, D}, 3, 0.8);
  auto omega = random_variable({H, D, M}, 4, 0.8), other = random_variable({H, D, M}, 5, 0.8);
  ad::tape<double> tp;
  const auto rff = ika::log_kernel(ika::random_fourier{ika::spectral(static_cast<const double*>(omega.value().data()), H, D, M)});
  CHECK_NOTHROW(ad::attention(tp, q, k, v, rff, {{omega, {}}}));
  CHECK_THROWS_WITH_AS(ad::attention(tp, q, k, v, rff, {{other, {}}}), doctest::Contains("spectral view 0 reads"),
                       ika::invalid_argument);
  CHECK_THROWS_WITH_AS(ad::attention(tp, q, k, v, ika::log_kernel(ika::rbf{}), {{omega, {}}}),
                       doctest::Contains("this kernel has no spectral points"), ika::invalid_argument);
  ad::variable<double> p(ad::tensor<double>(ad::shape{1}, {3.0}), true);
  CHECK_THROWS_WITH_AS(ad::attention(tp, q, k, v, rff + ika::magnitude(ika::lp{2.0}), {{}, {}, p}),
                       doctest::Contains("equal to the norm's p = 2"), ika::invalid_argument);
  CHECK_THROWS_WITH_AS(ad::attention(tp, q, k, v, rff, {{}, q, {}}),
                       doctest::Contains("the expression has no additive_bias mask"), ika::invalid_argument);
}
