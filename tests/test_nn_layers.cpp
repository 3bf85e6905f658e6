// SPDX-License-Identifier: MIT
// ika::nn layers (linear, layer_norm, dropout, feed_forward, encoder_layer), the parameter
// registry and the learning-rate schedules.
//
// Forward values are checked against plain loops in double written here from the definitions
// (torch.nn semantics), not against the autodiff ops. Gradients are checked as in
// test_autodiff.cpp: for a random weight R of the output's shape, the analytic vector-Jacobian
// product must match the central difference (Σ R·f(x + h·eᵢ) − Σ R·f(x − h·eᵢ)) / 2h, h = 1e-6,
// for every element of the input and of every parameter, within
//     max_i |analytic_i − numeric_i| ≤ 1e-6 · max(1, max_i |numeric_i|).
// Modules with dropout are differentiated in training mode: each evaluation runs a copy of the
// module (copies share parameters and start from the same call counter, so the same masks).

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <ika/autodiff/autodiff.hpp>
#include <ika/core/random.hpp>
#include <ika/nn/layers.hpp>
#include <ika/nn/module.hpp>
#include <ika/nn/optim.hpp>
#include <ika/nn/schedule.hpp>

#include "ad_support.hpp"

namespace ad = ika::ad;
namespace nn = ika::nn;
using ika::index_t;
using ika_test::check_gradients;
using ika_test::check_throws_argument;
using ika_test::uniform_leaf;

namespace {

using var = ad::variable<double>;

// Overwrites every parameter with random values (away from the init, so that swapped or unused
// parameters show).
template <class T>
void randomise(const nn::parameter_list<T>& params, std::uint64_t seed, double lo = -1, double hi = 1) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  for (const auto& p : params) {
    ad::variable<T> v = p.value;
    for (T& x : v.value()) x = T(u(gen));
  }
}

// x followed by every parameter of the module: the inputs of a gradient check.
template <class M>
std::vector<var> with_parameters(const var& x, const M& m) {
  std::vector<var> in{x};
  for (const auto& p : nn::parameters(m)) in.push_back(p.value);
  return in;
}

template <class T>
std::vector<std::string> names(const nn::parameter_list<T>& params) {
  std::vector<std::string> out;
  for (const auto& p : params) out.push_back(p.name);
  return out;
}

template <class T>
std::map<std::string, ad::variable<T>> by_name(const nn::parameter_list<T>& params) {
  std::map<std::string, ad::variable<T>> out;
  for (const auto& p : params) out.emplace(p.name, p.value);
  return out;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

template <class T>
std::vector<double> to_vector(const ad::tensor<T>& t) {
  return std::vector<double>(t.begin(), t.end());
}

// --- references in double, one row (the last axis) at a time ------------------------------------

using rows = std::vector<double>; // row-major, rows of a known width

template <class T>
rows ref_linear(const rows& x, index_t in, const ad::variable<T>& w, const ad::variable<T>* b) {
  const index_t n = index_t(x.size()) / in, out = w.shape()[0];
  rows y(std::size_t(n * out));
  for (index_t r = 0; r < n; ++r)
    for (index_t o = 0; o < out; ++o) {
      double s = b ? double(b->value()[o]) : 0.0;
      for (index_t i = 0; i < in; ++i) s += x[std::size_t(r * in + i)] * double(w.value()[o * in + i]);
      y[std::size_t(r * out + o)] = s;
    }
  return y;
}

template <class T>
rows ref_layer_norm(const rows& x, index_t n, const ad::variable<T>& w, const ad::variable<T>& b, double eps = 1e-5) {
  rows y(x.size());
  for (std::size_t r = 0; r < x.size() / std::size_t(n); ++r) {
    double mu = 0, var = 0;
    for (index_t j = 0; j < n; ++j) mu += x[r * std::size_t(n) + std::size_t(j)];
    mu /= double(n);
    for (index_t j = 0; j < n; ++j) var += std::pow(x[r * std::size_t(n) + std::size_t(j)] - mu, 2);
    var /= double(n); // biased, as PyTorch
    for (index_t j = 0; j < n; ++j) {
      const std::size_t k = r * std::size_t(n) + std::size_t(j);
      y[k] = (x[k] - mu) / std::sqrt(var + eps) * double(w.value()[j]) + double(b.value()[j]);
    }
  }
  return y;
}

rows ref_activation(rows x, nn::activation act) {
  for (double& v : x) v = act == nn::activation::relu ? std::max(v, 0.0) : 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  return x;
}

rows ref_add(rows a, const rows& b) {
  for (std::size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}

// The stand-in attention below: proj(x) plus the mean over positions, for x (B, L, E).
template <class T>
rows ref_mix(const rows& x, index_t B, index_t L, index_t E, const ad::variable<T>& w, const ad::variable<T>& b) {
  rows y = ref_linear(x, E, w, &b);
  for (index_t bi = 0; bi < B; ++bi)
    for (index_t e = 0; e < E; ++e) {
      double m = 0;
      for (index_t l = 0; l < L; ++l) m += x[std::size_t((bi * L + l) * E + e)];
      m /= double(L);
      for (index_t l = 0; l < L; ++l) y[std::size_t((bi * L + l) * E + e)] += m;
    }
  return y;
}

// A stand-in for multi-head attention: a linear map of each position plus the mean over the
// positions of its sequence, so that it mixes tokens as attention does.
template <class T>
struct mix_attention {
  nn::linear<T> out_proj;
  bool training = true;

  explicit mix_attention(index_t E, std::uint64_t seed = 5) : out_proj(E, E, true, seed) {}
  ad::variable<T> operator()(ad::tape<T>& tp, const ad::variable<T>& x) {
    return ad::add(tp, out_proj(tp, x), ad::mean(tp, x, 1, true));
  }
  void collect(nn::parameter_list<T>& out, const std::string& prefix) const { out_proj.collect(out, prefix + "out_proj."); }
  void train(bool on) { training = on; }
};

// An attention that drops a position: the layer must refuse its output.
struct shrinking_attention {
  ad::variable<double> operator()(ad::tape<double>& tp, const ad::variable<double>& x) {
    return ad::slice(tp, x, 1, 0, x.shape()[1] - 1);
  }
  void collect(nn::parameter_list<double>&, const std::string&) const {}
  void train(bool) {}
};

static_assert(nn::attention_module<mix_attention<double>, double>);
static_assert(nn::attention_module<shrinking_attention, double>);
static_assert(!nn::attention_module<nn::layer_norm<double>, float>);
static_assert(nn::module_like<nn::linear<float>> && nn::module_like<nn::encoder_layer<double, mix_attention<double>>>);

} // namespace

// --- the registry --------------------------------------------------------------------------------

TEST_CASE("make_parameter, variables and parameters: handles shared with the module") {
  auto p = nn::make_parameter<float>(ad::shape{2, 3}, [](index_t i) { return 0.5 * double(i); });
  CHECK(p.requires_grad());
  CHECK(p.shape() == ad::shape{2, 3});
  for (index_t i = 0; i < 6; ++i) CHECK(p.value()[i] == 0.5f * float(i));

  nn::linear<double> l(3, 2, true, 1);
  const auto params = nn::parameters(l, "enc.");
  CHECK(names(params) == std::vector<std::string>{"enc.weight", "enc.bias"});
  auto vs = nn::variables(params);
  REQUIRE(vs.size() == 2);
  vs[0].value()[0] = 42; // writes through to the module
  CHECK(l.weight().value()[0] == 42);
  nn::linear<double> copy = l; // a copy shares the parameters too
  CHECK(copy.weight().impl() == l.weight().impl());
  CHECK(nn::derive_seed(7, 0) != nn::derive_seed(7, 1));
  CHECK(nn::derive_seed(7, 0) != nn::derive_seed(8, 0));
}

// --- linear --------------------------------------------------------------------------------------

TEST_CASE("linear: PyTorch's default init, a pure function of the seed") {
  const index_t in = 7, out = 5;
  nn::linear<double> l(in, out, true, 42);
  const double bound = 1 / std::sqrt(7.0);
  REQUIRE(l.weight().shape() == ad::shape{out, in}); // stored (out, in) as torch.nn.Linear
  REQUIRE(l.bias().shape() == ad::shape{out});
  CHECK(l.weight().requires_grad());
  CHECK(l.bias().requires_grad());
  // the documented draw: W[i] = (2u − 1)/√in with u = counter_rng(seed).uniform(0, i), b on stream 1
  const ika::counter_rng rng(42);
  for (index_t i = 0; i < out * in; ++i) CHECK(l.weight().value()[i] == (2 * rng.uniform(0, std::uint64_t(i)) - 1) * bound);
  for (index_t i = 0; i < out; ++i) CHECK(l.bias().value()[i] == (2 * rng.uniform(1, std::uint64_t(i)) - 1) * bound);

  // same seed: the same bits; another seed: other values; float holds the rounded double values
  nn::linear<double> again(in, out, true, 42), other(in, out, true, 43);
  nn::linear<float> single(in, out, true, 42);
  int differ = 0;
  for (index_t i = 0; i < out * in; ++i) {
    CHECK(again.weight().value()[i] == l.weight().value()[i]);
    CHECK(single.weight().value()[i] == float(l.weight().value()[i]));
    differ += other.weight().value()[i] != l.weight().value()[i];
  }
  CHECK(differ == out * in);

  // the range and the spread of a large layer: uniform on (−1/√in, 1/√in)
  nn::linear<double> big(256, 64, true, 3);
  const double b256 = 1 / 16.0;
  double sum = 0, sq = 0, top = 0;
  for (double w : big.weight().value()) {
    CHECK(std::abs(w) < b256);
    sum += w;
    sq += w * w;
    top = std::max(top, std::abs(w));
  }
  const double n = 256.0 * 64.0;
  CHECK(std::abs(sum / n) < 0.02 * b256);
  CHECK(sq / n == doctest::Approx(b256 * b256 / 3).epsilon(0.03)); // variance of U(−a, a) is a²/3
  CHECK(top > 0.999 * b256);
  for (double b : big.bias().value()) CHECK(std::abs(b) < b256);

  nn::linear<double> no_bias(4, 3, false);
  CHECK(!no_bias.bias().defined());
  CHECK(names(nn::parameters(no_bias)) == std::vector<std::string>{"weight"});
}

TEST_CASE("linear forward: x·Wᵀ + b for ranks 2, 3 and 4, with and without bias") {
  const index_t in = 7, out = 5;
  const std::vector<ad::shape> shapes = {{4, in}, {2, 3, in}, {2, 2, 3, in}};
  std::uint64_t seed = 10;
  for (const auto& s : shapes) {
    for (bool bias : {true, false}) {
      INFO("x ", s.str(), " bias ", bias);
      nn::linear<double> l(in, out, bias, seed++);
      randomise(nn::parameters(l), seed++);
      const var x = uniform_leaf(s, seed++, false);
      ad::tape<double> tp;
      const var y = l(tp, x);
      ad::shape expect = s;
      expect[s.rank() - 1] = out;
      REQUIRE(y.shape() == expect);
      const rows ref = ref_linear(to_vector(x.value()), in, l.weight(), bias ? &l.bias() : nullptr);
      CHECK(max_abs_diff(to_vector(y.value()), ref) < 1e-13);

      // float against the same reference (its parameters rounded from the double ones)
      nn::linear<float> lf(in, out, bias, 0);
      const auto pd = nn::parameters(l);
      const auto pf = nn::parameters(lf);
      for (std::size_t k = 0; k < pd.size(); ++k) {
        ad::variable<float> v = pf[k].value;
        for (index_t i = 0; i < v.size(); ++i) v.value()[i] = float(pd[k].value.value()[i]);
      }
      ad::tensor<float> xf(s);
      for (index_t i = 0; i < xf.size(); ++i) xf[i] = float(x.value()[i]);
      ad::tape<float> tpf;
      const rows ref_f = ref_linear(std::vector<double>(xf.begin(), xf.end()), in, lf.weight(), bias ? &lf.bias() : nullptr);
      CHECK(max_abs_diff(to_vector(lf(tpf, ad::variable<float>(xf)).value()), ref_f) < 1e-5);
    }
  }
}

TEST_CASE("linear gradients (x, weight, bias) by central differences") {
  std::uint64_t seed = 100;
  for (const ad::shape s : {ad::shape{4, 6}, ad::shape{2, 3, 6}, ad::shape{2, 1, 3, 6}}) {
    INFO("x ", s.str());
    nn::linear<double> l(6, 4, true, seed++);
    check_gradients(with_parameters(uniform_leaf(s, seed++), l), [l](auto& tp, const auto& v) { return l(tp, v[0]); });
  }
}

TEST_CASE("linear refuses what it cannot take") {
  nn::linear<double> l(3, 2);
  ad::tape<double> tp;
  check_throws_argument([&] { l(tp, uniform_leaf({4, 5}, 1)); }, "x");
  check_throws_argument([&] { l(tp, uniform_leaf({3}, 1)); }, "x");
  check_throws_argument([&] { l(tp, var()); }, "x");
  check_throws_argument([] { nn::linear<double>(0, 2); }, "in_features");
  check_throws_argument([] { nn::linear<double>(2, 0); }, "out_features");
}

// --- layer_norm ----------------------------------------------------------------------------------

TEST_CASE("layer_norm: weight 1, bias 0; forward against the formula; gradients") {
  nn::layer_norm<double> ln(6);
  const auto params = nn::parameters(ln, "norm.");
  CHECK(names(params) == std::vector<std::string>{"norm.weight", "norm.bias"});
  for (index_t j = 0; j < 6; ++j) {
    CHECK(ln.weight().value()[j] == 1.0);
    CHECK(ln.bias().value()[j] == 0.0);
  }
  randomise(params, 3);
  for (const ad::shape s : {ad::shape{3, 6}, ad::shape{2, 3, 6}}) {
    const var x = uniform_leaf(s, 4, false);
    ad::tape<double> tp;
    CHECK(max_abs_diff(to_vector(ln(tp, x).value()), ref_layer_norm(to_vector(x.value()), 6, ln.weight(), ln.bias())) <
          1e-13);
    check_gradients(with_parameters(uniform_leaf(s, 5), ln), [ln](auto& tp, const auto& v) { return ln(tp, v[0]); });
  }
  // eps is passed through: a large one changes the result as the formula says
  nn::layer_norm<double> wide(6, 0.5);
  const var x = uniform_leaf({2, 6}, 6, false);
  ad::tape<double> tp;
  CHECK(max_abs_diff(to_vector(wide(tp, x).value()), ref_layer_norm(to_vector(x.value()), 6, wide.weight(), wide.bias(), 0.5)) <
        1e-13);
  check_throws_argument([&] { ln(tp, uniform_leaf({2, 5}, 1)); }, "x");
  check_throws_argument([] { nn::layer_norm<double>(0); }, "features");
}

// --- dropout -------------------------------------------------------------------------------------

TEST_CASE("dropout: a new counter-based mask per call in training, identity in evaluation") {
  const double p = 0.25;
  const index_t n = 4000;
  const var x(ad::tensor<double>(ad::shape{n}, 1.0), true);
  nn::dropout<double> d(p, 9);
  CHECK(d.training()); // PyTorch's modules start in training mode
  ad::tape<double> tp;
  const var y0 = d(tp, x), y1 = d(tp, x);
  CHECK(d.calls() == 2);
  // call c keeps element i iff counter_rng(seed).uniform(c, i) >= p, and scales it by 1/(1 − p)
  const ika::counter_rng rng(9);
  index_t dropped = 0, differ = 0;
  for (index_t i = 0; i < n; ++i) {
    const bool keep0 = rng.uniform(0, std::uint64_t(i)) >= p, keep1 = rng.uniform(1, std::uint64_t(i)) >= p;
    CHECK(y0.value()[i] == (keep0 ? 1 / 0.75 : 0.0));
    CHECK(y1.value()[i] == (keep1 ? 1 / 0.75 : 0.0));
    dropped += y0.value()[i] == 0;
    differ += y0.value()[i] != y1.value()[i];
  }
  CHECK(double(dropped) / double(n) == doctest::Approx(p).epsilon(0.1));
  CHECK(differ > n / 4); // masks of two steps are independent: 2p(1 − p) = 37.5% differ

  // a run restarted with the same seed sees the same masks; set_calls resumes one
  nn::dropout<double> replay(p, 9);
  CHECK(to_vector(replay(tp, x).value()) == to_vector(y0.value()));
  replay.set_calls(1);
  CHECK(to_vector(replay(tp, x).value()) == to_vector(y1.value()));

  // evaluation: the input itself, nothing recorded, the counter untouched
  d.train(false);
  ad::tape<double> eval;
  const var e = d(eval, x);
  CHECK(e.impl() == x.impl());
  CHECK(eval.size() == 0);
  CHECK(d.calls() == 2);
  nn::dropout<double> none(0.0);
  CHECK(none(eval, x).impl() == x.impl());

  // gradient in training mode: copies replay the mask of the prototype's next call
  nn::dropout<double> proto(0.4, 11);
  check_gradients({uniform_leaf({3, 7}, 12)}, [proto](auto& tp, const auto& v) mutable {
    auto m = proto;
    return m(tp, v[0]);
  });
  check_throws_argument([] { nn::dropout<double>(1.0); }, "p");
  check_throws_argument([] { nn::dropout<double>(-0.1); }, "p");
}

// --- feed_forward --------------------------------------------------------------------------------

TEST_CASE("feed_forward: linear → activation → dropout → linear → dropout") {
  for (const auto act : {nn::activation::relu, nn::activation::gelu}) {
    INFO("gelu ", act == nn::activation::gelu);
    nn::feed_forward<double> ff(5, 9, act, 0.3, 21);
    const auto params = nn::parameters(ff, "ff.");
    CHECK(names(params) == std::vector<std::string>{"ff.linear1.weight", "ff.linear1.bias", "ff.linear2.weight",
                                                    "ff.linear2.bias"});
    CHECK(params[0].value.shape() == ad::shape{9, 5});
    CHECK(params[2].value.shape() == ad::shape{5, 9});
    randomise(params, 22);
    auto P = by_name(params);
    const var x = uniform_leaf({2, 3, 5}, 23, false);
    const rows ref = ref_linear(ref_activation(ref_linear(to_vector(x.value()), 5, P["ff.linear1.weight"],
                                                          &P["ff.linear1.bias"]),
                                               act),
                                9, P["ff.linear2.weight"], &P["ff.linear2.bias"]);
    ad::tape<double> tp;
    // training mode with p = 0.3 drops something; evaluation is the plain formula
    const rows trained = to_vector(ff(tp, x).value());
    CHECK(max_abs_diff(trained, ref) > 1e-3);
    // … by hand: the first call's masks come from the documented seeds, stream 0
    auto drop = [](rows v, std::uint64_t seed) {
      const ika::counter_rng rng(seed);
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = rng.uniform(0, i) >= 0.3 ? v[i] / 0.7 : 0.0;
      return v;
    };
    const rows hidden = ref_activation(ref_linear(to_vector(x.value()), 5, P["ff.linear1.weight"], &P["ff.linear1.bias"]), act);
    const rows by_hand =
        drop(ref_linear(drop(hidden, nn::derive_seed(21, 2)), 9, P["ff.linear2.weight"], &P["ff.linear2.bias"]),
             nn::derive_seed(21, 3));
    CHECK(max_abs_diff(trained, by_hand) < 1e-13);
    ff.train(false);
    const var y = ff(tp, x);
    CHECK(y.shape() == ad::shape{2, 3, 5});
    CHECK(max_abs_diff(to_vector(y.value()), ref) < 1e-13);
    // training-mode gradients, through both dropout masks
    ff.train(true);
    check_gradients(with_parameters(uniform_leaf({2, 3, 5}, 24), ff), [ff](auto& tp, const auto& v) mutable {
      auto m = ff;
      return m(tp, v[0]);
    });
  }
  // p = 0 in training is the evaluation formula too
  nn::feed_forward<double> plain(4, 6, nn::activation::relu, 0.0, 1);
  const var x = uniform_leaf({3, 4}, 2, false);
  ad::tape<double> tp;
  const rows a = to_vector(plain(tp, x).value());
  plain.train(false);
  CHECK(a == to_vector(plain(tp, x).value()));
}

// --- encoder_layer -------------------------------------------------------------------------------

TEST_CASE("encoder_layer: parameter names, pre-LN and post-LN against a hand computation") {
  const index_t B = 2, L = 3, E = 4, F = 6;
  for (bool norm_first : {false, true}) {
    INFO("norm_first ", norm_first);
    nn::encoder_layer<double, mix_attention<double>> layer(mix_attention<double>(E), E, F, 0.2, nn::activation::gelu,
                                                           norm_first, 31);
    const auto params = nn::parameters(layer);
    CHECK(names(params) == std::vector<std::string>{"self_attn.out_proj.weight", "self_attn.out_proj.bias",
                                                    "ff.linear1.weight", "ff.linear1.bias", "ff.linear2.weight",
                                                    "ff.linear2.bias", "norm1.weight", "norm1.bias", "norm2.weight",
                                                    "norm2.bias"});
    randomise(params, 32, 0.2, 1.2); // norm weights far from 1, and unequal, so a swap shows
    auto P = by_name(params);
    const var x = uniform_leaf({B, L, E}, 33, false);
    const rows xv = to_vector(x.value());

    auto attn = [&](const rows& v) { return ref_mix(v, B, L, E, P["self_attn.out_proj.weight"], P["self_attn.out_proj.bias"]); };
    auto ff = [&](const rows& v) {
      return ref_linear(ref_activation(ref_linear(v, E, P["ff.linear1.weight"], &P["ff.linear1.bias"]), nn::activation::gelu),
                        F, P["ff.linear2.weight"], &P["ff.linear2.bias"]);
    };
    auto norm1 = [&](const rows& v) { return ref_layer_norm(v, E, P["norm1.weight"], P["norm1.bias"]); };
    auto norm2 = [&](const rows& v) { return ref_layer_norm(v, E, P["norm2.weight"], P["norm2.bias"]); };
    rows ref;
    if (norm_first) {
      const rows h = ref_add(xv, attn(norm1(xv)));
      ref = ref_add(h, ff(norm2(h)));
    } else {
      const rows h = norm1(ref_add(xv, attn(xv)));
      ref = norm2(ref_add(h, ff(h)));
    }

    layer.train(false);
    CHECK(!layer.self_attn().training); // train() reaches the attention module
    ad::tape<double> tp;
    const var y = layer(tp, x);
    REQUIRE(y.shape() == ad::shape{B, L, E});
    CHECK(max_abs_diff(to_vector(y.value()), ref) < 1e-12);

    // training: dropout acts, a new mask each call, reproducible from the seed
    layer.train(true);
    CHECK(layer.self_attn().training);
    const rows t0 = to_vector(layer(tp, x).value()), t1 = to_vector(layer(tp, x).value());
    CHECK(max_abs_diff(t0, ref) > 1e-3);
    CHECK(max_abs_diff(t0, t1) > 1e-3);
    nn::encoder_layer<double, mix_attention<double>> twin(mix_attention<double>(E), E, F, 0.2, nn::activation::gelu,
                                                          norm_first, 31);
    randomise(nn::parameters(twin), 32, 0.2, 1.2);
    CHECK(to_vector(twin(tp, x).value()) == t0);

    // float agrees with the double reference
    nn::encoder_layer<float, mix_attention<float>> single(mix_attention<float>(E), E, F, 0.2, nn::activation::gelu,
                                                          norm_first, 31);
    const auto pf = nn::parameters(single);
    for (std::size_t k = 0; k < pf.size(); ++k) {
      ad::variable<float> v = pf[k].value;
      for (index_t i = 0; i < v.size(); ++i) v.value()[i] = float(params[k].value.value()[i]);
    }
    single.train(false);
    ad::tensor<float> xf(x.shape());
    for (index_t i = 0; i < xf.size(); ++i) xf[i] = float(x.value()[i]);
    ad::tape<float> tpf;
    CHECK(max_abs_diff(to_vector(single(tpf, ad::variable<float>(xf)).value()), ref) < 1e-4);
  }
}

TEST_CASE("encoder_layer gradients (input and every parameter) in training mode") {
  for (bool norm_first : {false, true}) {
    for (const auto act : {nn::activation::relu, nn::activation::gelu}) {
      INFO("norm_first ", norm_first, " gelu ", act == nn::activation::gelu);
      nn::encoder_layer<double, mix_attention<double>> layer(mix_attention<double>(4, 40), 4, 5, 0.2, act, norm_first, 41);
      randomise(nn::parameters(layer), 42, 0.2, 1.2);
      check_gradients(with_parameters(uniform_leaf({2, 3, 4}, 43), layer), [layer](auto& tp, const auto& v) mutable {
        auto m = layer;
        return m(tp, v[0]);
      });
    }
  }
}

TEST_CASE("encoder_layer refuses inputs and attention outputs of the wrong shape") {
  nn::encoder_layer<double, mix_attention<double>> layer(mix_attention<double>(4), 4, 8);
  ad::tape<double> tp;
  check_throws_argument([&] { layer(tp, uniform_leaf({2, 3, 5}, 1)); }, "x");
  check_throws_argument([&] { layer(tp, uniform_leaf({3, 4}, 1)); }, "x");
  nn::encoder_layer<double, shrinking_attention> bad(shrinking_attention{}, 4, 8);
  check_throws_argument([&] { bad(tp, uniform_leaf({2, 3, 4}, 1)); }, "self_attn");
}

// --- schedules -----------------------------------------------------------------------------------

TEST_CASE("warm-up then cosine decay: values at known steps") {
  const nn::warmup_cosine_schedule s(4, 14, 0.1);
  // warm-up (step + 1)/4
  CHECK(s(0) == doctest::Approx(0.25));
  CHECK(s(1) == doctest::Approx(0.5));
  CHECK(s(2) == doctest::Approx(0.75));
  CHECK(s(3) == doctest::Approx(1.0));
  // decay over 10 steps: 0.1 + 0.9·(1 + cos(π·t))/2, t = (step − 4)/10, worked out by hand:
  CHECK(s(4) == doctest::Approx(1.0));                      // t = 0
  CHECK(s(6) == doctest::Approx(0.91405764746).epsilon(1e-10)); // cos(0.2π) = 0.80901699437
  CHECK(s(9) == doctest::Approx(0.55).epsilon(1e-12));          // cos(0.5π) = 0
  CHECK(s(11) == doctest::Approx(0.28549663647).epsilon(1e-10)); // cos(0.7π) = −0.58778525229
  CHECK(s(14) == doctest::Approx(0.1));                          // t = 1: the floor
  CHECK(s(1000) == 0.1);
  for (long k = 4; k < 20; ++k) CHECK(s(k + 1) <= s(k));

  const nn::warmup_cosine_schedule no_warmup(0, 2); // floor 0
  CHECK(no_warmup(0) == 1.0);
  CHECK(no_warmup(1) == doctest::Approx(0.5));
  CHECK(no_warmup(2) == doctest::Approx(0.0));

  CHECK(nn::constant_schedule{}(0) == 1.0);
  CHECK(nn::constant_schedule{0.5}(123) == 0.5);

  check_throws_argument([] { nn::warmup_cosine_schedule(5, 5); }, "total_steps");
  check_throws_argument([] { nn::warmup_cosine_schedule(-1, 5); }, "warmup_steps");
  check_throws_argument([] { nn::warmup_cosine_schedule(1, 5, 1.5); }, "min_factor");
  check_throws_argument([&] { s(-1); }, "step");
}

namespace {
struct recording_optimizer {
  double lr = -1;
  void set_lr(double value) { lr = value; }
};

// The optimisers of optim.hpp, once they expose set_lr: a step must move by the scheduled lr.
template <class Sgd>
void check_real_optimizer(const nn::warmup_cosine_schedule& s) {
  if constexpr (nn::lr_settable<Sgd>) {
    auto p = ad::variable<double>(ad::tensor<double>(ad::shape{1}, 1.0), true);
    Sgd sgd({p}, {.lr = 1.0});
    nn::apply_schedule(sgd, s, 0.2, 0); // lr = 0.2 · 0.25
    p.grad()[0] = 1;
    sgd.step();
    CHECK(p.value()[0] == doctest::Approx(0.95));
  } else {
    MESSAGE("ika::nn::sgd has no set_lr yet: apply_schedule checked on a stand-in only");
  }
}
} // namespace

TEST_CASE("apply_schedule sets lr = base_lr · factor(step)") {
  recording_optimizer opt;
  const nn::warmup_cosine_schedule s(4, 14, 0.1);
  CHECK(nn::apply_schedule(opt, s, 0.01, 1) == doctest::Approx(0.005));
  CHECK(opt.lr == doctest::Approx(0.005));
  CHECK(nn::apply_schedule(opt, s, 0.01, 9) == doctest::Approx(0.0055));
  CHECK(opt.lr == doctest::Approx(0.0055));
  check_throws_argument([&] { nn::apply_schedule(opt, s, -1.0, 0); }, "base_lr");
  static_assert(nn::lr_settable<recording_optimizer>);

  check_real_optimizer<nn::sgd<double>>(s);
}
