// SPDX-License-Identifier: MIT
// The attention node on the tape: gradients of a loss built from ops around it, against central
// finite differences in double (bound 1e-6 relative to the largest gradient).

#include <doctest/doctest.h>

#include <ika/autodiff/autodiff.hpp>
#include <ika/ika.hpp>

#include "support.hpp"

namespace ad = ika::ad;
using ika::index_t;

TEST_CASE("ad::attention: gradients for q, k, v through the tape match finite differences") {
  const index_t B = 2, Hq = 4, Hkv = 2, Lq = 9, Lk = 11, D = 5, Dv = 3;
  auto random_variable = [](ad::shape s, std::uint64_t seed) {
    std::vector<double> x(std::size_t(s.numel()));
    ika_test::fill_normal(x, seed, 0.8);
    return ad::variable<double>(ad::tensor<double>(s, std::span<const double>(x)), true);
  };
  auto q = random_variable({B, Hq, Lq, D}, 1), k = random_variable({B, Hkv, Lk, D}, 2), v = random_variable({B, Hkv, Lk, Dv}, 3);
  auto w = random_variable({B, Hq, Lq, Dv}, 4); // the loss is Σ w ⊙ tanh(attention)
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
  for (auto* x : {&q, &k, &v}) {
    const std::vector<double> analytic(x->grad().data(), x->grad().data() + x->grad().size());
    double worst = 0, scale = 1;
    for (double a : analytic) scale = std::max(scale, std::abs(a));
    for (index_t i = 0; i < x->value().size(); ++i) {
      double& e = x->value()[i];
      const double saved = e, h = 1e-6;
      e = saved + h;
      const double up = loss_of().value()[0];
      e = saved - h;
      const double down = loss_of().value()[0];
      e = saved;
      worst = std::max(worst, std::abs((up - down) / (2 * h) - analytic[std::size_t(i)]));
    }
    CHECK(worst / scale <= 1e-6);
  }
}
