// SPDX-License-Identifier: MIT
#pragma once

// Layers of ika::nn on the ika::ad tape: linear, layer_norm, dropout, feed_forward and a
// Transformer encoder layer around any attention module. Conventions (collect, train, forward)
// are those of module.hpp; defaults and parameter layouts follow torch.nn.

#include <cmath>
#include <concepts>
#include <cstdint>
#include <string>
#include <utility>

#include "ika/autodiff/linalg.hpp"
#include "ika/autodiff/nn.hpp"
#include "ika/autodiff/ops.hpp"
#include "ika/autodiff/tape.hpp"
#include "ika/autodiff/tensor.hpp"
#include "ika/core/error.hpp"
#include "ika/core/random.hpp"
#include "ika/nn/module.hpp"

namespace ika::nn {

// y = x·Wᵀ + b for x of shape (..., in), rank 2 to 4 → (..., out). W is stored (out, in) as in
// torch.nn.Linear. Initialisation is PyTorch's default, W and b uniform in (−1/√in, 1/√in), drawn
// from counter_rng(seed): W[i] (row-major) from uniform(0, i), b[i] from uniform(1, i).
template <class T>
class linear {
public:
  using value_type = T;

  linear(index_t in_features, index_t out_features, bool bias = true, std::uint64_t seed = 0)
      : in_(in_features), out_(out_features) {
    ika::detail::require(in_features >= 1, "in_features", "a size >= 1, got ", in_features);
    ika::detail::require(out_features >= 1, "out_features", "a size >= 1, got ", out_features);
    const counter_rng rng(seed);
    const double bound = 1.0 / std::sqrt(double(in_features));
    weight_ = make_parameter<T>(ad::shape{out_features, in_features},
                                [&](index_t i) { return (2 * rng.uniform(0, std::uint64_t(i)) - 1) * bound; });
    if (bias)
      bias_ = make_parameter<T>(ad::shape{out_features},
                                [&](index_t i) { return (2 * rng.uniform(1, std::uint64_t(i)) - 1) * bound; });
  }

  ad::variable<T> operator()(ad::tape<T>& tp, const ad::variable<T>& x) const {
    ika::detail::require(x.defined() && x.shape().rank() >= 2 && x.shape().rank() <= 4 &&
                             x.shape()[x.shape().rank() - 1] == in_,
                         "x", "a tensor of rank 2 to 4 with a last axis of ", in_, ", got ",
                         x.defined() ? x.shape().str() : std::string("an undefined variable"));
    const ad::matmul_options wt{.transpose_b = true};
    ad::variable<T> y;
    if (x.shape().rank() <= 3) {
      y = ad::matmul(tp, x, weight_, wt); // a rank-3 x shares W across its batch
    } else {
      const ad::shape& s = x.shape();
      y = ad::matmul(tp, ad::reshape(tp, x, ad::shape{s[0] * s[1] * s[2], in_}), weight_, wt);
      y = ad::reshape(tp, y, ad::shape{s[0], s[1], s[2], out_});
    }
    return bias_.defined() ? ad::add(tp, y, bias_) : y;
  }

  void collect(parameter_list<T>& out, const std::string& prefix) const {
    out.push_back({prefix + "weight", weight_});
    if (bias_.defined()) out.push_back({prefix + "bias", bias_});
  }
  void train(bool) {}

  index_t in_features() const { return in_; }
  index_t out_features() const { return out_; }
  const ad::variable<T>& weight() const { return weight_; }
  const ad::variable<T>& bias() const { return bias_; } // undefined without a bias

private:
  index_t in_, out_;
  ad::variable<T> weight_, bias_;
};

// Normalisation over the last axis of `features` elements (torch.nn.LayerNorm(features)):
// weight 1 and bias 0 to start.
template <class T>
class layer_norm {
public:
  using value_type = T;

  explicit layer_norm(index_t features, double eps = 1e-5) : features_(features), eps_(eps) {
    ika::detail::require(features >= 1, "features", "a size >= 1, got ", features);
    ika::detail::require(eps >= 0 && std::isfinite(eps), "eps", "a finite value >= 0, got ", eps);
    weight_ = make_parameter<T>(ad::shape{features}, [](index_t) { return 1.0; });
    bias_ = make_parameter<T>(ad::shape{features}, [](index_t) { return 0.0; });
  }

  ad::variable<T> operator()(ad::tape<T>& tp, const ad::variable<T>& x) const {
    ika::detail::require(x.defined() && x.shape().rank() >= 1 && x.shape()[x.shape().rank() - 1] == features_, "x",
                         "a tensor with a last axis of ", features_, ", got ",
                         x.defined() ? x.shape().str() : std::string("an undefined variable"));
    return ad::layer_norm(tp, x, weight_, bias_, eps_);
  }

  void collect(parameter_list<T>& out, const std::string& prefix) const {
    out.push_back({prefix + "weight", weight_});
    out.push_back({prefix + "bias", bias_});
  }
  void train(bool) {}

  index_t features() const { return features_; }
  double eps() const { return eps_; }
  const ad::variable<T>& weight() const { return weight_; }
  const ad::variable<T>& bias() const { return bias_; }

private:
  index_t features_;
  double eps_;
  ad::variable<T> weight_, bias_;
};

// Inverted dropout (ad::dropout). In training mode, the default as in PyTorch, call n of this
// module draws its mask from counter_rng(seed) on stream n: every step gets a new mask, and a run
// restarted with the same seed gets the same masks. In evaluation mode it is the identity.
template <class T>
class dropout {
public:
  using value_type = T;

  explicit dropout(double p = 0.5, std::uint64_t seed = 0) : p_(p), seed_(seed) {
    ika::detail::require(p >= 0 && p < 1, "p", "a drop probability in [0, 1), got ", p);
  }

  ad::variable<T> operator()(ad::tape<T>& tp, const ad::variable<T>& x) {
    ika::detail::require(x.defined(), "x", "a defined variable");
    if (!training_ || p_ == 0) return x;
    return ad::dropout(tp, x, p_, seed_, calls_++);
  }

  void collect(parameter_list<T>&, const std::string&) const {}
  void train(bool on) { training_ = on; }
  bool training() const { return training_; }

  double p() const { return p_; }
  // Masks drawn so far; set it to resume a run where it stopped.
  std::uint64_t calls() const { return calls_; }
  void set_calls(std::uint64_t n) { calls_ = n; }

private:
  double p_;
  std::uint64_t seed_;
  std::uint64_t calls_ = 0;
  bool training_ = true;
};

enum class activation { relu, gelu };

// The position-wise feed-forward block of a Transformer:
// dropout(linear2(dropout(activation(linear1(x))))), with linear1: d_model → d_hidden and
// linear2: d_hidden → d_model. Parameters "linear1.weight", "linear1.bias", "linear2.…". The
// sub-modules are seeded derive_seed(seed, k): k = 0, 1 the linears, 2, 3 the dropouts.
template <class T>
class feed_forward {
public:
  using value_type = T;

  feed_forward(index_t d_model, index_t d_hidden, activation act = activation::relu, double p = 0.1,
               std::uint64_t seed = 0)
      : linear1_(d_model, d_hidden, true, derive_seed(seed, 0)), linear2_(d_hidden, d_model, true, derive_seed(seed, 1)),
        dropout1_(p, derive_seed(seed, 2)), dropout2_(p, derive_seed(seed, 3)), act_(act) {}

  ad::variable<T> operator()(ad::tape<T>& tp, const ad::variable<T>& x) {
    ad::variable<T> h = linear1_(tp, x);
    h = act_ == activation::gelu ? ad::gelu(tp, h) : ad::relu(tp, h);
    return dropout2_(tp, linear2_(tp, dropout1_(tp, h)));
  }

  void collect(parameter_list<T>& out, const std::string& prefix) const {
    linear1_.collect(out, prefix + "linear1.");
    linear2_.collect(out, prefix + "linear2.");
  }
  void train(bool on) {
    dropout1_.train(on);
    dropout2_.train(on);
  }

  const linear<T>& linear1() const { return linear1_; }
  const linear<T>& linear2() const { return linear2_; }
  activation act() const { return act_; }

private:
  linear<T> linear1_, linear2_;
  dropout<T> dropout1_, dropout2_;
  activation act_;
};

// What encoder_layer needs of its attention: a forward (B, L, E) → (B, L, E), collect and train.
template <class A, class T>
concept attention_module = requires(A& a, const A& ca, ad::tape<T>& tp, const ad::variable<T>& x,
                                    parameter_list<T>& out, const std::string& prefix) {
  { a(tp, x) } -> std::convertible_to<ad::variable<T>>;
  ca.collect(out, prefix);
  a.train(true);
};

// One Transformer encoder layer (torch.nn.TransformerEncoderLayer) for x of shape (B, L, d_model):
//   norm_first (pre-LN):  x = x + dropout(self_attn(norm1(x)));  x = x + ff(norm2(x))
//   otherwise (post-LN):  x = norm1(x + dropout(self_attn(x)));  x = norm2(x + ff(x))
// where ff is feed_forward(d_model, d_ff, act, dropout). The layer norms use eps = 1e-5.
// Parameters: "self_attn.…", "ff.linear1.…", "ff.linear2.…", "norm1.…", "norm2.…".
template <class T, attention_module<T> Attention>
class encoder_layer {
public:
  using value_type = T;

  encoder_layer(Attention self_attn, index_t d_model, index_t d_ff, double dropout = 0.1,
                activation act = activation::relu, bool norm_first = false, std::uint64_t seed = 0)
      : self_attn_(std::move(self_attn)), ff_(d_model, d_ff, act, dropout, derive_seed(seed, 0)),
        dropout_(dropout, derive_seed(seed, 1)), norm1_(d_model), norm2_(d_model), d_model_(d_model),
        norm_first_(norm_first) {}

  ad::variable<T> operator()(ad::tape<T>& tp, const ad::variable<T>& x) {
    ika::detail::require(x.defined() && x.shape().rank() == 3 && x.shape()[2] == d_model_, "x",
                         "a tensor (B, L, ", d_model_, "), got ",
                         x.defined() ? x.shape().str() : std::string("an undefined variable"));
    if (norm_first_) {
      ad::variable<T> h = ad::add(tp, x, dropout_(tp, attend(tp, norm1_(tp, x))));
      return ad::add(tp, h, ff_(tp, norm2_(tp, h)));
    }
    ad::variable<T> h = norm1_(tp, ad::add(tp, x, dropout_(tp, attend(tp, x))));
    return norm2_(tp, ad::add(tp, h, ff_(tp, h)));
  }

  void collect(parameter_list<T>& out, const std::string& prefix) const {
    self_attn_.collect(out, prefix + "self_attn.");
    ff_.collect(out, prefix + "ff.");
    norm1_.collect(out, prefix + "norm1.");
    norm2_.collect(out, prefix + "norm2.");
  }
  void train(bool on) {
    self_attn_.train(on);
    ff_.train(on);
    dropout_.train(on);
  }

  Attention& self_attn() { return self_attn_; }
  const Attention& self_attn() const { return self_attn_; }
  const feed_forward<T>& ff() const { return ff_; }
  const layer_norm<T>& norm1() const { return norm1_; }
  const layer_norm<T>& norm2() const { return norm2_; }
  bool norm_first() const { return norm_first_; }

private:
  ad::variable<T> attend(ad::tape<T>& tp, const ad::variable<T>& x) {
    ad::variable<T> y = self_attn_(tp, x);
    ika::detail::require(y.defined() && y.shape() == x.shape(), "self_attn",
                         "an attention module that maps (B, L, E) to the same shape ", x.shape().str(), ", got ",
                         y.defined() ? y.shape().str() : std::string("an undefined variable"));
    return y;
  }

  Attention self_attn_;
  feed_forward<T> ff_;
  dropout<T> dropout_;
  layer_norm<T> norm1_, norm2_;
  index_t d_model_;
  bool norm_first_;
};

} // namespace ika::nn
