// SPDX-License-Identifier: MIT
#pragma once

// Where a random-feature kernel's spectral points come from (SPEC §3, §5). A source is a module
// (collect, train) with
//   std::array<ad::variable<T>, 2> operator()(tape, q, k)
// returning shape().tensors (1: Ω of random_fourier; 2: W₁, W₂ of yaglom_rff) variables of shape
// (H, D, M) for one forward, given the projected queries and keys (B, H, L, D), and
//   ad::variable<T> regularizer(tape, training_points)
// the source's own loss term for the last draw (undefined when it has none).
//
//   fixed_points      N(0, σ⁻² I) drawn once from a seed, not trained (an RFF approximation of rbf)
//   learned_points    IKAN-direct: the points are parameters, uniform(±1/√(H·M)) as the public code
//   generated_points  IKA: Ω = g(ε), ε ~ N(0, I) redrawn every training step, g an MLP
//   copula_points     MIKAN: heads coupled through a Gaussian copula, an odd generator, KL and
//                     copula loss terms
//
// Noise comes from counter_rng(seed) on a stream per draw: training draw n uses stream n, so a run
// is a function of its seed; evaluation uses one fixed stream unless redraw_in_eval is set.

#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>

#include "ika/autodiff/linalg.hpp"
#include "ika/autodiff/ops.hpp"
#include "ika/autodiff/tape.hpp"
#include "ika/core/error.hpp"
#include "ika/core/random.hpp"
#include "ika/nn/layers.hpp"
#include "ika/nn/module.hpp"

namespace ika::nn {

// The sizes every source is built for.
struct spectral_shape {
  index_t heads = 0, dim = 0, count = 0; // H, D (per-head query dimension), M
  int tensors = 2;                       // 1: Ω (random_fourier); 2: W₁, W₂ (yaglom_rff)
};

namespace detail {

inline void check_spectral_shape(const spectral_shape& s) {
  ika::detail::require(s.heads >= 1 && s.dim >= 1 && s.count >= 1, "shape",
                       "heads, dim and count >= 1, got (", s.heads, ", ", s.dim, ", ", s.count, ")");
  ika::detail::require(s.tensors == 1 || s.tensors == 2, "shape.tensors", "1 (random_fourier) or 2 (yaglom_rff), got ",
                       s.tensors);
}

// Standard normal noise of shape s from counter_rng(seed) on `stream`, as a constant.
template <class T>
ad::variable<T> normal_noise(const ad::shape& s, std::uint64_t seed, std::uint64_t stream) {
  const counter_rng rng(seed);
  ad::tensor<T> t(s);
  for (index_t i = 0; i < t.size(); ++i) t[i] = T(rng.normal(stream, std::uint64_t(i)));
  return ad::variable<T>(std::move(t), false);
}

template <class T>
ad::variable<T> constant(const ad::shape& s, auto&& value_at) {
  ad::tensor<T> t(s);
  for (index_t i = 0; i < t.size(); ++i) t[i] = T(value_at(i));
  return ad::variable<T>(std::move(t), false);
}

// Draw counter: training draws use streams 0, 1, 2, …; evaluation one fixed stream.
struct draw_counter {
  static constexpr std::uint64_t eval_stream = std::uint64_t(1) << 62;
  std::uint64_t next = 0;
  bool training = true, redraw_in_eval = false;
  std::uint64_t stream() { return training || redraw_in_eval ? next++ : eval_stream; }
};

// The three-layer LeakyReLU(0.2) MLP on the last axis, D → hidden → hidden → D.
template <class T>
class generator_mlp {
public:
  generator_mlp(index_t dim, index_t hidden, std::uint64_t seed)
      : l1_(dim, hidden, true, derive_seed(seed, 0)), l2_(hidden, hidden, true, derive_seed(seed, 1)),
        l3_(hidden, dim, true, derive_seed(seed, 2)) {}
  ad::variable<T> operator()(ad::tape<T>& tp, const ad::variable<T>& x) const {
    auto h = ad::leaky_relu(tp, l1_(tp, x), 0.2);
    h = ad::leaky_relu(tp, l2_(tp, h), 0.2);
    return l3_(tp, h);
  }
  void collect(parameter_list<T>& out, const std::string& prefix) const {
    l1_.collect(out, prefix + "0.");
    l2_.collect(out, prefix + "1.");
    l3_.collect(out, prefix + "2.");
  }

private:
  linear<T> l1_, l2_, l3_;
};

// (H·M, D) rows, one per spectral point → (H, D, M)
template <class T>
ad::variable<T> points_from_rows(ad::tape<T>& tp, const ad::variable<T>& rows, const spectral_shape& s) {
  return ad::transpose(tp, ad::reshape(tp, rows, ad::shape{s.heads, s.count, s.dim}), 1, 2);
}

} // namespace detail

// N(0, σ⁻² I) points from a seed (σ² = √D unless given), scaled by 1/(2π) for yaglom_rff so that
// 2πW ~ N(0, σ⁻² I) as well; not trained.
template <class T>
class fixed_points {
public:
  using value_type = T;
  fixed_points(spectral_shape shape, std::uint64_t seed, double bandwidth_sq = 0) : shape_(shape) {
    detail::check_spectral_shape(shape);
    const double s2 = bandwidth_sq == 0 ? std::sqrt(double(shape.dim)) : bandwidth_sq;
    ika::detail::require(std::isfinite(s2) && s2 > 0, "bandwidth_sq", "a finite value > 0, got ", bandwidth_sq);
    const ad::shape s{shape.heads, shape.dim, shape.count};
    for (std::uint64_t t = 0; t < 2; ++t) {
      points_[t] = detail::normal_noise<T>(s, seed, t);
      scaled_[t] = detail::normal_noise<T>(s, seed, t);
      for (index_t i = 0; i < s.numel(); ++i) {
        points_[t].value()[i] = T(double(points_[t].value()[i]) / std::sqrt(s2));
        scaled_[t].value()[i] = T(double(scaled_[t].value()[i]) / (2 * std::numbers::pi * std::sqrt(s2)));
      }
    }
  }
  std::array<ad::variable<T>, 2> operator()(ad::tape<T>&, const ad::variable<T>&, const ad::variable<T>&) {
    return shape_.tensors == 1 ? std::array<ad::variable<T>, 2>{points_[0], {}} : scaled_;
  }
  const spectral_shape& shape() const { return shape_; }
  ad::variable<T> regularizer(ad::tape<T>&, double) const { return {}; }
  void collect(parameter_list<T>&, const std::string&) const {}
  void train(bool) {}

private:
  spectral_shape shape_;
  std::array<ad::variable<T>, 2> points_, scaled_;
};

// IKAN-direct: W₁, W₂ (or Ω) are parameters of shape (H, D, M), initialised uniform(±1/√(H·M)) as
// the public code does (the 2π factor is inside the yaglom_rff feature map).
template <class T>
class learned_points {
public:
  using value_type = T;
  learned_points(spectral_shape shape, std::uint64_t seed) : shape_(shape) {
    detail::check_spectral_shape(shape);
    const counter_rng rng(seed);
    const double bound = 1.0 / std::sqrt(double(shape.heads * shape.count));
    for (std::uint64_t t = 0; t < std::uint64_t(shape.tensors); ++t)
      points_[t] = make_parameter<T>(ad::shape{shape.heads, shape.dim, shape.count},
                                     [&](index_t i) { return (2 * rng.uniform(t, std::uint64_t(i)) - 1) * bound; });
  }
  std::array<ad::variable<T>, 2> operator()(ad::tape<T>&, const ad::variable<T>&, const ad::variable<T>&) {
    return points_;
  }
  ad::variable<T> regularizer(ad::tape<T>&, double) const { return {}; }
  void collect(parameter_list<T>& out, const std::string& prefix) const {
    out.push_back({prefix + (shape_.tensors == 1 ? "omega" : "w1"), points_[0]});
    if (shape_.tensors == 2) out.push_back({prefix + "w2", points_[1]});
  }
  void train(bool) {}
  const spectral_shape& shape() const { return shape_; }
  const std::array<ad::variable<T>, 2>& points() const { return points_; }

private:
  spectral_shape shape_;
  std::array<ad::variable<T>, 2> points_;
};

// IKA: Ω = g(ε) with ε ~ N(0, I) of shape (H·M, D), one row per point, and g the three-layer
// LeakyReLU(0.2) MLP on the feature axis. W₁ and W₂ come from two independent noise draws.
template <class T>
class generated_points {
public:
  using value_type = T;
  generated_points(spectral_shape shape, std::uint64_t seed, index_t hidden = 32, bool redraw_in_eval = false)
      : shape_(shape), seed_(seed), g_((detail::check_spectral_shape(shape), shape.dim), hidden, derive_seed(seed, 1)) {
    draws_.redraw_in_eval = redraw_in_eval;
  }
  std::array<ad::variable<T>, 2> operator()(ad::tape<T>& tp, const ad::variable<T>&, const ad::variable<T>&) {
    const std::uint64_t stream = draws_.stream();
    std::array<ad::variable<T>, 2> out;
    for (int t = 0; t < shape_.tensors; ++t) {
      const auto noise = detail::normal_noise<T>(ad::shape{shape_.heads * shape_.count, shape_.dim}, derive_seed(seed_, 2),
                                                 2 * stream + std::uint64_t(t));
      out[std::size_t(t)] = detail::points_from_rows(tp, g_(tp, noise), shape_);
    }
    return out;
  }
  ad::variable<T> regularizer(ad::tape<T>&, double) const { return {}; }
  void collect(parameter_list<T>& out, const std::string& prefix) const { g_.collect(out, prefix + "generator."); }
  void train(bool on) { draws_.training = on; }
  const spectral_shape& shape() const { return shape_; }

private:
  spectral_shape shape_;
  std::uint64_t seed_;
  detail::generator_mlp<T> g_;
  detail::draw_counter draws_;
};

struct copula_options {
  index_t hidden = 32;             // encoder and generator width
  double kl_weight = 0.1;          // λ_KL
  double copula_weight = 1.0;      // λ_c
  double prior_variance = 0.1;     // the KL's N(0, 0.1), read as a variance
  bool redraw_in_eval = false;
  bool faithful_to_code = false;   // reproduce the public code's slips (SPEC §5)
};

// MIKAN: per feature d and point m the H heads' noise is coupled by a Gaussian copula,
//   ε ~ N(0, I_H),  L_d = tril(c_d c_dᵀ, −1) + I_H,  X = clamp(L_d ε, −2, 2),  U = Φ(X),
//   Y = ±μ_d + s_d X  (half of the M points around +μ, half around −μ),  Ω = sign(Y) g(|Y|)
// with μ, log s, c = tanh(·) from an encoder of the mean-pooled queries and keys (pooled over the
// batch and the sequence, so any batch size works; Φ⁻¹(Φ(X)) = X is not computed). g acts on the
// feature axis and Ω is odd in Y. regularizer() = (λ_KL·KL(N(μ, s²) ‖ N(0, 0.1)) + λ_c·(−Σ U log(U +
// 1e-5))) / training_points for the last draw.
// faithful_to_code: L_d ε becomes rowsum(L_d) ⊙ ε (no mixing across heads), s² is used where s
// belongs, the batch must be 1, and Ω is redrawn at evaluation too.
template <class T>
class copula_points {
public:
  using value_type = T;
  copula_points(spectral_shape shape, index_t kv_heads, std::uint64_t seed, copula_options options = {})
      : shape_(shape), seed_(seed), o_(options),
        encoder_((detail::check_spectral_shape(shape), (shape.heads + kv_heads) * shape.dim), options.hidden, true,
                 derive_seed(seed, 0)),
        mu_(options.hidden, shape.dim, true, derive_seed(seed, 1)),
        log_s_(options.hidden, shape.dim, true, derive_seed(seed, 2)),
        c_(options.hidden, shape.dim * shape.heads, true, derive_seed(seed, 3)),
        g_(shape.dim, options.hidden, derive_seed(seed, 4)) {
    ika::detail::require(kv_heads >= 1, "kv_heads", "a head count >= 1, got ", kv_heads);
    ika::detail::require(shape.count % 2 == 0, "shape.count", "an even M (half the points around +μ, half around −μ), got ",
                         shape.count);
    ika::detail::require(options.prior_variance > 0 && options.kl_weight >= 0 && options.copula_weight >= 0, "options",
                         "prior_variance > 0 and weights >= 0");
    draws_.redraw_in_eval = options.redraw_in_eval || options.faithful_to_code;
  }

  std::array<ad::variable<T>, 2> operator()(ad::tape<T>& tp, const ad::variable<T>& q, const ad::variable<T>& k) {
    const index_t H = shape_.heads, D = shape_.dim, M = shape_.count;
    ika::detail::require(!o_.faithful_to_code || q.shape()[0] == 1, "q",
                         "a batch of 1 with faithful_to_code (the public code assumes it), got ", q.shape().str());
    // encoder of the pooled queries and keys: (1, (H + Hkv)·D)
    auto pool = [&](const ad::variable<T>& x) {
      auto m = ad::mean(tp, ad::mean(tp, x, 2), 0); // (H, D)
      return ad::reshape(tp, m, ad::shape{1, m.size()});
    };
    const auto h = ad::leaky_relu(tp, encoder_(tp, ad::concat(tp, {pool(q), pool(k)}, 1)), 0.2);
    mu_last_ = ad::reshape(tp, mu_(tp, h), ad::shape{D});
    log_s_last_ = ad::reshape(tp, log_s_(tp, h), ad::shape{D});
    const auto c = ad::reshape(tp, ad::tanh(tp, c_(tp, h)), ad::shape{D, H, 1});
    // L_d = tril(c cᵀ, −1) + I, per d: (D, H, H)
    const auto strictly_lower = detail::constant<T>(ad::shape{H, H}, [H](index_t i) { return i / H > i % H ? 1.0 : 0.0; });
    const auto identity = detail::constant<T>(ad::shape{H, H}, [H](index_t i) { return i / H == i % H ? 1.0 : 0.0; });
    const auto L = ad::add(tp, ad::mul(tp, ad::matmul(tp, c, c, {.transpose_b = true}), strictly_lower), identity);
    const auto rowsum = o_.faithful_to_code ? ad::sum(tp, L, 2, true) : ad::variable<T>{}; // (D, H, 1)
    const auto mu = ad::reshape(tp, mu_last_, ad::shape{D, 1, 1});
    const auto s = ad::exp(tp, ad::reshape(tp, o_.faithful_to_code ? ad::scale(tp, log_s_last_, 2.0) : log_s_last_,
                                           ad::shape{D, 1, 1}));
    const auto side = detail::constant<T>(ad::shape{1, 1, M}, [M](index_t m) { return m < M / 2 ? 1.0 : -1.0; });
    const std::uint64_t stream = draws_.stream();
    std::array<ad::variable<T>, 2> out;
    copula_terms_ = {};
    for (int t = 0; t < shape_.tensors; ++t) {
      const auto eps = detail::normal_noise<T>(ad::shape{D, H, M}, derive_seed(seed_, 5), 2 * stream + std::uint64_t(t));
      auto x = o_.faithful_to_code ? ad::mul(tp, rowsum, eps) : ad::matmul(tp, L, eps); // (D, H, M)
      x = ad::clamp(tp, x, -2.0, 2.0);
      const auto u = ad::normal_cdf(tp, x);
      uniforms_[std::size_t(t)] = u;
      // −Σ U log(U + 1e-5)
      const auto ent = ad::scale(tp, ad::sum(tp, ad::mul(tp, u, ad::log(tp, ad::add(tp, u, detail::constant<T>(ad::shape{1}, [](index_t) { return 1e-5; }))))), -1.0);
      copula_terms_[std::size_t(t)] = ent;
      const auto y = ad::transpose(tp, ad::add(tp, ad::mul(tp, side, mu), ad::mul(tp, s, x)), 0, 1); // (H, D, M)
      const auto sign = detail::constant<T>(y.shape(), [&](index_t i) { return double((y.value()[i] > 0) - (y.value()[i] < 0)); });
      const auto rows = ad::reshape(tp, ad::transpose(tp, ad::abs(tp, y), 1, 2), ad::shape{H * M, D});
      out[std::size_t(t)] = ad::mul(tp, detail::points_from_rows(tp, g_(tp, rows), shape_), sign);
    }
    return out;
  }

  // (λ_KL·KL + λ_c·copula) / training_points for the last draw
  ad::variable<T> regularizer(ad::tape<T>& tp, double training_points) const {
    ika::detail::require(mu_last_.defined(), "regularizer", "a draw first (call the attention forward)");
    ika::detail::require(training_points > 0, "training_points", "a count > 0, got ", training_points);
    // KL(N(μ, s²) ‖ N(0, v)) = ½ log v − log s + (s² + μ²) / (2v) − ½, summed over d
    const double v = o_.prior_variance;
    const auto s2 = ad::exp(tp, ad::scale(tp, log_s_last_, 2.0));
    const auto per_d = ad::sub(tp, ad::scale(tp, ad::add(tp, s2, ad::mul(tp, mu_last_, mu_last_)), 1 / (2 * v)), log_s_last_);
    const double constant_part = double(shape_.dim) * (0.5 * std::log(v) - 0.5);
    auto kl = ad::add(tp, ad::sum(tp, per_d), detail::constant<T>(ad::shape{}, [&](index_t) { return constant_part; }));
    auto total = ad::scale(tp, kl, o_.kl_weight);
    for (const auto& term : copula_terms_)
      if (term.defined()) total = ad::add(tp, total, ad::scale(tp, term, o_.copula_weight));
    return ad::scale(tp, total, 1 / training_points);
  }

  void collect(parameter_list<T>& out, const std::string& prefix) const {
    encoder_.collect(out, prefix + "encoder.");
    mu_.collect(out, prefix + "mu.");
    log_s_.collect(out, prefix + "log_s.");
    c_.collect(out, prefix + "c.");
    g_.collect(out, prefix + "generator.");
  }
  void train(bool on) { draws_.training = on; }
  const spectral_shape& shape() const { return shape_; }
  // the last draw's μ (D), log s (D) and U of tensor t (D, H, M), valid until the tape's reset()
  const ad::variable<T>& mu() const { return mu_last_; }
  const ad::variable<T>& log_s() const { return log_s_last_; }
  const ad::variable<T>& uniforms(int t) const { return uniforms_[std::size_t(t)]; }

private:
  spectral_shape shape_;
  std::uint64_t seed_;
  copula_options o_;
  linear<T> encoder_, mu_, log_s_, c_;
  detail::generator_mlp<T> g_;
  detail::draw_counter draws_;
  ad::variable<T> mu_last_, log_s_last_;
  std::array<ad::variable<T>, 2> copula_terms_, uniforms_;
};

} // namespace ika::nn
