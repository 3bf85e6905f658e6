// SPDX-License-Identifier: MIT
// The multi-head attention module and the spectral sources: gradients of every parameter by
// central finite differences in double, the copula source against a loop-by-loop computation of
// SPEC §5 (both modes), draws per step, and a small Transformer that memorises a synthetic task
// with each attention kind.

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <omp.h>
#include <functional>
#include <numbers>
#include <string>
#include <vector>

#include <ika/autodiff/autodiff.hpp>
#include <ika/nn/attention.hpp>
#include <ika/nn/layers.hpp>
#include <ika/nn/optim.hpp>

#include "ad_support.hpp"

namespace ad = ika::ad;
namespace nn = ika::nn;
using ika::index_t;

using ika_test::finite_difference_error;
using ika_test::random_variable;

namespace {

// Loss Σ w ⊙ attention(x) (+ the source's regularizer): every parameter and x against finite
// differences. The module is in evaluation mode so that every evaluation sees the same draw.
template <class Module>
void check_module_gradients(Module& m, const std::string& name) {
  INFO(name);
  m.train(false);
  auto x = random_variable<double>({2, 5, 8}, 1, 0.7);
  auto w = random_variable<double>({2, 5, 8}, 2, 1.0, false);
  ad::tape<double> tp;
  auto forward = [&] {
    tp.reset();
    auto loss = ad::sum(tp, ad::mul(tp, m(tp, x), w));
    if (auto r = m.regularizer(tp, 10.0); r.defined()) loss = ad::add(tp, loss, r);
    return loss;
  };
  auto params = nn::parameters(m);
  for (auto& p : params) p.value.zero_grad();
  x.zero_grad();
  tp.backward(forward());
  const std::function<double()> loss = [&] { return forward().value()[0]; };
  CHECK(finite_difference_error(x, loss) <= 1e-6);
  for (auto& p : params) {
    INFO(p.name);
    CHECK(finite_difference_error(p.value, loss) <= 1e-6);
  }
}

constexpr index_t E = 8, H = 2, D = E / H, M = 4;

} // namespace

TEST_CASE("multihead_attention: gradients of every parameter, each attention kind") {
  const nn::attention_config config{.d_model = E, .heads = H, .seed = 3};
  {
    nn::multihead_attention<double, ika::rbf, ika::lp> m(config, {}, ika::lp{2.0});
    check_module_gradients(m, "softmax (rbf + lp 2)");
  }
  {
    auto c = config;
    c.kv_heads = 1;
    c.learnable_p = true;
    nn::multihead_attention<double, ika::laplacian, ika::lp> m(c, {}, ika::lp{1.8});
    check_module_gradients(m, "laplacian + lp(1.8) learnable p, grouped heads");
  }
  {
    using source = nn::learned_points<double>;
    auto c = config;
    c.learnable_p = true;
    nn::multihead_attention<double, ika::yaglom_rff<double>, ika::lp, source> m(c, {}, ika::lp{3.0}, source({H, D, M}, 5));
    check_module_gradients(m, "IKAN-direct");
  }
  {
    using source = nn::generated_points<double>;
    nn::multihead_attention<double, ika::yaglom_rff<double>, ika::lp, source> m(config, {}, ika::lp{3.0},
                                                                              source({H, D, M}, 6, 5));
    check_module_gradients(m, "IKA (generator)");
  }
  {
    using source = nn::copula_points<double>;
    nn::multihead_attention<double, ika::yaglom_rff<double>, ika::lp, source> m(
        config, {}, ika::lp{1.8}, source({H, D, M}, H, 7, {.hidden = 5}));
    check_module_gradients(m, "MIKAN (copula)");
  }
  {
    using source = nn::learned_points<double>;
    nn::multihead_attention<double, ika::random_fourier<double>, ika::no_norm, source> m(
        config, {}, {}, source({H, D, M, 1}, 8));
    check_module_gradients(m, "random_fourier, learned points, no norm");
  }
}

TEST_CASE("multihead_attention: PyTorch's initialisation and parameter names") {
  nn::multihead_attention<float, ika::rbf, ika::lp> m({.d_model = 16, .heads = 4, .kv_heads = 2, .seed = 1}, {}, ika::lp{2.0});
  const auto params = nn::parameters(m, "attn.");
  std::vector<std::string> names;
  for (const auto& p : params) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"attn.q_proj.weight", "attn.q_proj.bias", "attn.k_proj.weight", "attn.k_proj.bias",
                                          "attn.v_proj.weight", "attn.v_proj.bias", "attn.out_proj.weight",
                                          "attn.out_proj.bias"});
  // xavier-uniform over the packed in-projection (16 + 16 + 8 + 8 rows, 16 columns): bound √(6/(16 + 32))
  const double bound = std::sqrt(6.0 / (16 + 32));
  double largest = 0;
  for (int i : {0, 2, 4})
    for (float v : params[std::size_t(i)].value.value()) largest = std::max(largest, double(std::abs(v)));
  CHECK(largest <= bound);
  CHECK(largest > 0.9 * bound);
  for (int i : {1, 3, 5, 7})
    for (float v : params[std::size_t(i)].value.value()) CHECK(v == 0.0f);
  // the out projection keeps nn.Linear's bound 1/√16
  for (float v : params[6].value.value()) CHECK(std::abs(v) <= 0.25f);
  CHECK(params[2].value.shape() == ad::shape{8, 16});
}

TEST_CASE("copula_points == SPEC §5 computed loop by loop (mixing and faithful_to_code)") {
  constexpr index_t B = 2, Hkv = 2, L = 3, hidden = 5;
  for (bool faithful : {false, true}) {
    INFO("faithful_to_code=" << faithful);
    const index_t batch = faithful ? 1 : B; // the public code assumes a batch of 1
    nn::copula_points<double> src({H, D, M}, Hkv, 11, {.hidden = hidden, .faithful_to_code = faithful});
    auto q = random_variable<double>({batch, H, L, D}, 1), k = random_variable<double>({batch, Hkv, L, D}, 2);
    ad::tape<double> tp;
    const auto points = src(tp, q, k);
    const auto reg = src.regularizer(tp, 7.0);

    const auto params = nn::parameters(src);
    auto param = [&](const std::string& n) -> const std::vector<double> {
      for (const auto& p : params)
        if (p.name == n) return {p.value.value().begin(), p.value.value().end()};
      FAIL("no parameter " << n);
      return {};
    };
    // y = W x + b for W (out, in)
    auto affine = [&](const std::string& prefix, const std::vector<double>& x) {
      const auto W = param(prefix + "weight"), b = param(prefix + "bias");
      std::vector<double> y(b);
      for (std::size_t o = 0; o < y.size(); ++o)
        for (std::size_t i = 0; i < x.size(); ++i) y[o] += W[o * x.size() + i] * x[i];
      return y;
    };
    auto leaky = [](std::vector<double> x) {
      for (double& e : x) e = e > 0 ? e : 0.2 * e;
      return x;
    };
    std::vector<double> pooled;
    for (const auto* x : {&q, &k}) {
      const index_t heads = x->shape()[1];
      for (index_t h = 0; h < heads; ++h)
        for (index_t d = 0; d < D; ++d) {
          double s = 0;
          for (index_t b = 0; b < batch; ++b)
            for (index_t l = 0; l < L; ++l) s += x->value()[((b * heads + h) * L + l) * D + d];
          pooled.push_back(s / double(batch * L));
        }
    }
    const auto hid = leaky(affine("encoder.", pooled));
    const auto mu = affine("mu.", hid), log_s = affine("log_s.", hid);
    auto c = affine("c.", hid);
    for (double& e : c) e = std::tanh(e);
    const ika::counter_rng rng(nn::derive_seed(11, 5));
    double copula = 0;
    for (int t = 0; t < 2; ++t) {
      std::vector<double> Y(std::size_t(D * H * M)); // (D, H, M)
      for (index_t d = 0; d < D; ++d)
        for (index_t m = 0; m < M; ++m) {
          std::vector<double> eps(H);
          for (index_t h = 0; h < H; ++h) eps[std::size_t(h)] = rng.normal(std::uint64_t(t), std::uint64_t((d * H + h) * M + m));
          for (index_t h = 0; h < H; ++h) {
            double x = 0;
            for (index_t j = 0; j < H; ++j) {
              const double l = (h > j ? c[std::size_t(d * H + h)] * c[std::size_t(d * H + j)] : 0.0) + (h == j ? 1.0 : 0.0);
              x += l * (faithful ? eps[std::size_t(h)] : eps[std::size_t(j)]); // faithful: rowsum(L) ⊙ ε
            }
            x = std::clamp(x, -2.0, 2.0);
            const double u = 0.5 * std::erfc(-x / std::sqrt(2.0));
            copula -= u * std::log(u + 1e-5);
            const double s = std::exp(faithful ? 2 * log_s[std::size_t(d)] : log_s[std::size_t(d)]);
            Y[std::size_t((d * H + h) * M + m)] = (m < M / 2 ? 1.0 : -1.0) * mu[std::size_t(d)] + s * x;
          }
        }
      // Ω[h, :, m] = sign(Y[:, h, m]) ⊙ g(|Y[:, h, m]|)
      for (index_t h = 0; h < H; ++h)
        for (index_t m = 0; m < M; ++m) {
          std::vector<double> a(D);
          for (index_t d = 0; d < D; ++d) a[std::size_t(d)] = std::abs(Y[std::size_t((d * H + h) * M + m)]);
          const auto g = affine("generator.2.", leaky(affine("generator.1.", leaky(affine("generator.0.", a)))));
          for (index_t d = 0; d < D; ++d) {
            const double y = Y[std::size_t((d * H + h) * M + m)];
            const double expected = double((y > 0) - (y < 0)) * g[std::size_t(d)];
            CHECK(points[std::size_t(t)].value()[(h * D + d) * M + m] == doctest::Approx(expected).epsilon(1e-12));
          }
        }
    }
    double kl = 0;
    for (index_t d = 0; d < D; ++d) {
      const double s2 = std::exp(2 * log_s[std::size_t(d)]), v = 0.1;
      kl += 0.5 * std::log(v) - log_s[std::size_t(d)] + (s2 + mu[std::size_t(d)] * mu[std::size_t(d)]) / (2 * v) - 0.5;
    }
    CHECK(reg.value()[0] == doctest::Approx((0.1 * kl + copula) / 7.0).epsilon(1e-12));
  }
}

TEST_CASE("generated and copula points: a new draw every training step, one fixed draw in evaluation") {
  auto q = random_variable<float>({1, H, 3, D}, 1), k = random_variable<float>({1, H, 3, D}, 2);
  auto same = [](const ad::variable<float>& a, const ad::variable<float>& b) {
    return std::equal(a.value().begin(), a.value().end(), b.value().begin());
  };
  auto check = [&](auto source, bool redraws_in_eval) {
    ad::tape<float> tp;
    const auto a = source(tp, q, k)[0], b = source(tp, q, k)[0];
    CHECK_FALSE(same(a, b));
    source.train(false);
    const auto c = source(tp, q, k)[0], d = source(tp, q, k)[0];
    CHECK(same(c, d) != redraws_in_eval);
  };
  check(nn::generated_points<float>({H, D, M}, 3), false);
  check(nn::generated_points<float>({H, D, M}, 3, 16, true), true);
  check(nn::copula_points<float>({H, D, M}, H, 3), false);
  check(nn::copula_points<float>({H, D, M}, H, 3, {.faithful_to_code = true}), true);
  // a run is a function of its seed
  nn::generated_points<float> s1({H, D, M}, 9), s2({H, D, M}, 9);
  ad::tape<float> tp;
  CHECK(same(s1(tp, q, k)[1], s2(tp, q, k)[1]));
}

TEST_CASE("a small Transformer memorises a synthetic task with each attention kind") {
  // 12 sequences of 5 tokens with 6 features, 4 random classes: embed → one pre-LN encoder layer →
  // mean over tokens → linear. Full-batch Adam; the cross-entropy after training, in evaluation
  // mode, must be below 0.05.
  constexpr index_t N = 12, L = 5, F = 6, model = 16, heads = 2, classes = 4, hd = model / heads;
  const auto inputs = random_variable<float>({N, L, F}, 5, 1.0, false);
  std::vector<int> labels(N);
  for (index_t i = 0; i < N; ++i) labels[std::size_t(i)] = int((i * 7 + 3) % classes);
  const nn::attention_config config{.d_model = model, .heads = heads, .seed = 21};

  auto memorise = [&](auto attention, const std::string& name) {
    INFO(name);
    nn::linear<float> embed(F, model, true, 1), head(model, classes, true, 2);
    nn::encoder_layer<float, decltype(attention)> layer(std::move(attention), model, 32, 0.0, nn::activation::relu, true, 3);
    nn::parameter_list<float> params;
    embed.collect(params, "embed.");
    layer.collect(params, "layer.");
    head.collect(params, "head.");
    nn::adam<float> opt(nn::variables(params), {.lr = 1e-2});
    ad::tape<float> tp;
    double first = 0, last = 0;
    for (int step = 0; step < 500; ++step) {
      tp.reset();
      auto h = layer(tp, embed(tp, inputs));
      auto logits = head(tp, ad::mean(tp, h, 1));
      auto ce = ad::softmax_cross_entropy(tp, logits, std::span<const int>(labels));
      auto loss = ce;
      if (auto r = layer.self_attn().regularizer(tp, double(N)); r.defined()) loss = ad::add(tp, loss, r);
      nn::zero_grad(params);
      tp.backward(loss);
      opt.step();
      if (step == 0) first = ce.value()[0];
    }
    // the memorised task, in evaluation mode (the sources' fixed draw)
    layer.train(false);
    tp.reset();
    last = ad::softmax_cross_entropy(tp, head(tp, ad::mean(tp, layer(tp, embed(tp, inputs)), 1)),
                                     std::span<const int>(labels))
               .value()[0];
    MESSAGE(name << ": cross-entropy " << first << " -> " << last);
    CHECK(first > 1.0);
    CHECK(last < 0.05);
  };
  using yaglom = ika::yaglom_rff<float>;
  auto c = config;
  c.learnable_p = true;
  memorise(nn::multihead_attention<float, ika::rbf, ika::lp>(config, {}, ika::lp{2.0}), "softmax");
  memorise(nn::multihead_attention<float, ika::rbf, ika::lp>(c, {}, ika::lp{3.0}), "rbf + lp(3), learnable p");
  memorise(nn::multihead_attention<float, ika::laplacian, ika::lp>(config, {}, ika::lp{1.8}), "laplacian + lp(1.8)");
  auto dropped = config;
  dropped.magnitude_dropout = 0.1;
  memorise(nn::multihead_attention<float, ika::rbf, ika::lp>(dropped, {}, ika::lp{3.0}), "rbf + lp(3), magnitude dropout");
  memorise(nn::multihead_attention<float, ika::random_fourier<float>, ika::lp, nn::fixed_points<float>>(
               config, {}, ika::lp{2.0}, nn::fixed_points<float>({heads, hd, 16, 1}, 4)),
           "random_fourier, fixed points");
  memorise(nn::multihead_attention<float, yaglom, ika::lp, nn::learned_points<float>>(
               config, {}, ika::lp{3.0}, nn::learned_points<float>({heads, hd, 16}, 4)),
           "IKAN-direct");
  memorise(nn::multihead_attention<float, yaglom, ika::lp, nn::generated_points<float>>(
               config, {}, ika::lp{3.0}, nn::generated_points<float>({heads, hd, 16}, 4)),
           "IKA (generator)");
  memorise(nn::multihead_attention<float, yaglom, ika::lp, nn::copula_points<float>>(
               config, {}, ika::lp{1.8}, nn::copula_points<float>({heads, hd, 16}, heads, 4)),
           "MIKAN (copula)");
}

TEST_CASE("a training step's gradients are bitwise identical for 1 and 2 threads") {
  // large enough that Eigen's products and the attention engine would split their work
  constexpr index_t N = 4, L = 64, model = 64, heads = 4;
  const auto inputs = random_variable<float>({N, L, model}, 8, 1.0, false);
  std::vector<int> labels{0, 1, 2, 1};
  auto gradients = [&](int threads) {
    omp_set_num_threads(threads);
    using source = nn::copula_points<float>;
    nn::multihead_attention<float, ika::yaglom_rff<float>, ika::lp, source> attention(
        {.d_model = model, .heads = heads, .seed = 2}, {}, ika::lp{3.0}, source({heads, model / heads, 16}, heads, 3));
    nn::encoder_layer<float, decltype(attention)> layer(attention, model, 128, 0.1, nn::activation::gelu, false, 4);
    nn::linear<float> head(model, 3, true, 5);
    nn::parameter_list<float> params;
    layer.collect(params, "");
    head.collect(params, "head.");
    ad::tape<float> tp;
    auto logits = head(tp, ad::mean(tp, layer(tp, inputs), 1));
    auto loss = ad::add(tp, ad::softmax_cross_entropy(tp, logits, std::span<const int>(labels)),
                        layer.self_attn().regularizer(tp, double(N)));
    tp.backward(loss);
    std::vector<float> all;
    for (const auto& p : params) all.insert(all.end(), p.value.grad().begin(), p.value.grad().end());
    return all;
  };
  const int saved = omp_get_max_threads();
  const auto one = gradients(1), two = gradients(2);
  omp_set_num_threads(saved);
  REQUIRE(one.size() == two.size());
  CHECK(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)) == 0);
}

TEST_CASE("multihead_attention: magnitude dropout draws a new mask every training forward, none in evaluation") {
  auto x = random_variable<float>({2, 9, E}, 1, 1.0, false);
  nn::attention_config with{.d_model = E, .heads = H, .magnitude_dropout = 0.3, .seed = 4}, without = with;
  without.magnitude_dropout = 0;
  nn::multihead_attention<float, ika::rbf, ika::lp> a(with, {}, ika::lp{3.0}), b(without, {}, ika::lp{3.0});
  ad::tape<float> tp;
  auto values = [](const ad::variable<float>& y) { return std::vector<float>(y.value().begin(), y.value().end()); };
  const auto first = values(a(tp, x)), second = values(a(tp, x)), plain = values(b(tp, x));
  CHECK(first != second);
  CHECK(first != plain);
  a.train(false);
  CHECK(values(a(tp, x)) == plain); // same seed, same parameters, no dropout in evaluation
}
