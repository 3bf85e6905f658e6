// SPDX-License-Identifier: MIT
#pragma once

// Multi-head attention as an ika::nn module, templated on the kernel, the norm, the source of
// spectral points and the head structure. It owns its projections (q, k, v, out), the spectral
// source's parameters and, as an option, a learnable p; the attention itself is one fused tape
// node (ika::ad::attention).
//
//   multihead_attention<float, ika::rbf, ika::lp>                        softmax when p = 2
//   multihead_attention<float, ika::yaglom_rff<float>, ika::lp, learned_points<float>>     IKAN-direct
//   multihead_attention<float, ika::yaglom_rff<float>, ika::lp, generated_points<float>>   IKA
//   multihead_attention<float, ika::yaglom_rff<float>, ika::lp, copula_points<float>>      MIKAN

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ika/autodiff/attention.hpp"
#include "ika/autodiff/ops.hpp"
#include "ika/core/error.hpp"
#include "ika/core/random.hpp"
#include "ika/cpu/reference.hpp"
#include "ika/heads/heads.hpp"
#include "ika/kernels/random_fourier.hpp"
#include "ika/kernels/rbf.hpp"
#include "ika/nn/layers.hpp"
#include "ika/nn/module.hpp"
#include "ika/nn/spectral.hpp"
#include "ika/norms/magnitude_dropout.hpp"
#include "ika/norms/lp_norm.hpp"

namespace ika::nn {

struct attention_config {
  index_t d_model = 0;
  index_t heads = 1;
  index_t kv_heads = 0;     // 0: as many as heads; fewer: grouped-query attention
  bool bias = true;         // biases of the four projections
  bool learnable_p = false; // the lp norm's p becomes a parameter (kept >= min_p)
  double min_p = 0.5;
  double magnitude_dropout = 0; // dropout on the magnitude matrix in training (the public code: 0.1)
  std::uint64_t seed = 0;
};

// For kernels without spectral points.
struct no_spectral_source {
  template <class T>
  std::array<ad::variable<T>, 2> operator()(ad::tape<T>&, const ad::variable<T>&, const ad::variable<T>&) const {
    return {};
  }
  template <class T>
  void collect(parameter_list<T>&, const std::string&) const {}
  void train(bool) {}
};

namespace detail {

// The kernel with its spectral views pointed at this forward's points.
template <class Kernel, class T>
Kernel with_points(Kernel kernel, const std::array<ad::variable<T>, 2>& points) {
  auto view = [](const ad::variable<T>& w) {
    return ika::spectral(static_cast<const T*>(w.value().data()), w.shape()[0], w.shape()[1], w.shape()[2]);
  };
  if constexpr (ika::detail::spectral_tensor_count<Kernel> == 1) {
    kernel.omega = view(points[0]);
    kernel.storage = {};
  } else if constexpr (ika::detail::spectral_tensor_count<Kernel> == 2) {
    kernel.w1 = view(points[0]);
    kernel.w2 = view(points[1]);
    kernel.storage = {};
  }
  return kernel;
}

} // namespace detail

template <class T, class Kernel, class Norm = no_norm, class Source = no_spectral_source, class Heads = grouped_heads,
          class Engine = ad::cpu_attention_engine>
class multihead_attention {
  static constexpr int spectral_tensors = ika::detail::spectral_tensor_count<Kernel>;
  static_assert(spectral_tensors == 0 || std::is_same_v<Kernel, random_fourier<T>> || std::is_same_v<Kernel, yaglom_rff<T>>,
                "ika::nn::multihead_attention: spectral points are module variables, so the kernel's point type must be T");
  static_assert(spectral_tensors == 0 || !std::is_same_v<Source, no_spectral_source>,
                "ika::nn::multihead_attention: a random-feature kernel needs a spectral source "
                "(fixed_points, learned_points, generated_points or copula_points)");

public:
  using value_type = T;

  multihead_attention(attention_config config, Kernel kernel = {}, Norm norm = {}, Source source = {})
      : c_(resolved(config)), D_(c_.d_model / c_.heads), kernel_(std::move(kernel)), norm_(std::move(norm)),
        source_(std::move(source)), q_proj_(c_.d_model, c_.heads * D_, c_.bias, derive_seed(c_.seed, 0)),
        k_proj_(c_.d_model, c_.kv_heads * D_, c_.bias, derive_seed(c_.seed, 1)),
        v_proj_(c_.d_model, c_.kv_heads * D_, c_.bias, derive_seed(c_.seed, 2)),
        out_proj_(c_.heads * D_, c_.d_model, c_.bias, derive_seed(c_.seed, 3)) {
    if constexpr (spectral_tensors > 0) {
      const spectral_shape& s = source_.shape();
      ika::detail::require(s.heads == c_.heads && s.dim == D_ && s.tensors == spectral_tensors, "source",
                           "spectral points of shape (heads = ", c_.heads, ", dim = ", D_, ", M) with ", spectral_tensors,
                           " tensor(s) for this kernel, got (", s.heads, ", ", s.dim, ", ", s.count, ") with ", s.tensors);
    }
    // PyTorch's nn.MultiheadAttention: the packed in-projection xavier-uniform, biases 0, the out
    // projection nn.Linear's default with bias 0
    const double bound = std::sqrt(6.0 / double(c_.d_model + (c_.heads + 2 * c_.kv_heads) * D_));
    const counter_rng rng(derive_seed(c_.seed, 4));
    std::uint64_t stream = 0;
    for (linear<T>* l : {&q_proj_, &k_proj_, &v_proj_}) {
      ad::variable<T> w = l->weight();
      for (index_t i = 0; i < w.size(); ++i) w.value()[i] = T((2 * rng.uniform(stream, std::uint64_t(i)) - 1) * bound);
      ++stream;
    }
    for (linear<T>* l : {&q_proj_, &k_proj_, &v_proj_, &out_proj_})
      if (l->bias().defined()) {
        ad::variable<T> b = l->bias();
        b.value().fill(T(0));
      }
    if (c_.learnable_p) {
      if constexpr (std::is_same_v<Norm, lp>) {
        ika::detail::require(std::isfinite(norm_.p) && norm_.p >= c_.min_p, "norm.p",
                             "a finite p >= min_p = ", c_.min_p, " for a learnable p, got ", norm_.p);
        p_ = make_parameter<T>(ad::shape{1}, [&](index_t) { return norm_.p; });
      } else {
        ika::detail::require(false, "config.learnable_p", "false: only the lp norm has an exponent p");
      }
    }
  }

  // x: (B, L, d_model) → (B, L, d_model); masks are any ika masks over (B, H, L, L).
  template <class... Masks>
  ad::variable<T> operator()(ad::tape<T>& tp, const ad::variable<T>& x, const Masks&... masks) {
    const auto [q, k, v] = project(tp, x);
    ad::attention_inputs<T> inputs;
    const auto [kernel, norm] = bind_parameters(tp, q, k, inputs);
    // the masks' fold outside the lambda: nvcc does not accept a fold over the enclosing pack there
    const auto mask_terms = (logit_expression<no_kernel, no_norm>{} + ... + ika::mask(masks));
    auto attend = [&](const auto& any_norm) {
      const auto logit = (ika::log_kernel(kernel) + ika::magnitude(any_norm)) + mask_terms;
      return ad::attention<Heads, Engine>(tp, q, k, v, logit, inputs); // (B, H, L, D)
    };
    ad::variable<T> y;
    if constexpr (!std::is_same_v<Norm, no_norm> && Engine::magnitude_dropout) {
      if (training_ && c_.magnitude_dropout > 0)
        y = attend(ika::magnitude_dropout<Norm>{norm, c_.magnitude_dropout, derive_seed(c_.seed, 5), dropout_calls_++});
      else
        y = attend(norm);
    } else {
      if constexpr (!std::is_same_v<Norm, no_norm>) // (without a norm there is no magnitude to drop)
        ika::detail::require(!(training_ && c_.magnitude_dropout > 0), "config.magnitude_dropout",
                             "0 with this attention engine (the GPU engine has no magnitude dropout yet)");
      y = attend(norm);
    }
    const index_t B = x.shape()[0], L = x.shape()[1];
    return out_proj_(tp, ad::reshape(tp, ad::transpose(tp, y, 1, 2), ad::shape{B, L, c_.heads * D_}));
  }

  // The attention weights (B, H, L, L) for x (B, L, d_model), in double by the reference engine,
  // with the evaluation-mode spectral points: for inspection (attention maps), not for training.
  template <class... Masks>
  std::vector<double> attention_weights(const ad::variable<T>& x, const Masks&... masks) {
    ad::no_grad no_recording;
    ad::tape<T> tp;
    const bool was_training = training_;
    train(false);
    const auto [q, k, v] = project(tp, x);
    ad::attention_inputs<T> inputs;
    const auto [kernel, norm] = bind_parameters(tp, q, k, inputs);
    const auto logit = ((ika::log_kernel(kernel) + ika::magnitude(norm)) + ... + ika::mask(masks));
    const auto& qs = q.shape();
    const auto& ks = k.shape();
    std::vector<T> out(std::size_t(qs.numel()));
    std::vector<double> weights;
    ika::reference::attention<Heads>(bhld(q.value().data(), qs[0], qs[1], qs[2], qs[3]),
                                     bhld(k.value().data(), ks[0], ks[1], ks[2], ks[3]),
                                     bhld(v.value().data(), ks[0], ks[1], ks[2], ks[3]),
                                     bhld(out.data(), qs[0], qs[1], qs[2], qs[3]), logit, {}, &weights);
    train(was_training);
    return weights;
  }

  // The spectral source's loss term for the last forward (undefined when it has none), divided by
  // the number of training points.
  ad::variable<T> regularizer(ad::tape<T>& tp, double training_points) const {
    if constexpr (requires { source_.regularizer(tp, training_points); }) return source_.regularizer(tp, training_points);
    else return {};
  }

  void collect(parameter_list<T>& out, const std::string& prefix) const {
    q_proj_.collect(out, prefix + "q_proj.");
    k_proj_.collect(out, prefix + "k_proj.");
    v_proj_.collect(out, prefix + "v_proj.");
    out_proj_.collect(out, prefix + "out_proj.");
    source_.collect(out, prefix + "spectral.");
    if (p_.defined()) out.push_back({prefix + "p", p_});
  }
  void train(bool on) {
    training_ = on;
    source_.train(on);
  }

  const attention_config& config() const { return c_; }
  index_t head_dim() const { return D_; }
  const ad::variable<T>& p() const { return p_; } // undefined unless learnable_p
  const Source& source() const { return source_; }

private:
  struct projections {
    ad::variable<T> q, k, v;
  };
  // (B, L, d_model) → q (B, H, L, D), k and v (B, Hkv, L, D)
  projections project(ad::tape<T>& tp, const ad::variable<T>& x) const {
    ika::detail::require(x.defined() && x.shape().rank() == 3 && x.shape()[2] == c_.d_model, "x",
                         "a tensor (B, L, ", c_.d_model, "), got ",
                         x.defined() ? x.shape().str() : std::string("an undefined variable"));
    const index_t B = x.shape()[0], L = x.shape()[1];
    auto split = [&](const ad::variable<T>& y, index_t heads) {
      return ad::transpose(tp, ad::reshape(tp, y, ad::shape{B, L, heads, D_}), 1, 2);
    };
    return {split(q_proj_(tp, x), c_.heads), split(k_proj_(tp, x), c_.kv_heads), split(v_proj_(tp, x), c_.kv_heads)};
  }

  // This forward's kernel (spectral views on the source's points) and norm (the learnable p),
  // and the variables behind them for the attention node.
  std::pair<Kernel, Norm> bind_parameters(ad::tape<T>& tp, const ad::variable<T>& q, const ad::variable<T>& k,
                                          ad::attention_inputs<T>& inputs) {
    Norm norm = norm_;
    if (p_.defined()) {
      // a projected step: p stays >= min_p
      p_.value()[0] = std::max(p_.value()[0], T(c_.min_p));
      if constexpr (std::is_same_v<Norm, lp>) norm.p = double(p_.value()[0]);
      inputs.p = p_;
    }
    Kernel kernel = kernel_;
    if constexpr (spectral_tensors > 0) {
      inputs.spectral = source_(tp, q, k);
      kernel = detail::with_points(kernel_, inputs.spectral);
    }
    return {kernel, norm};
  }

  static attention_config resolved(attention_config c) {
    ika::detail::require(c.heads >= 1 && c.d_model >= 1 && c.d_model % c.heads == 0, "config",
                         "d_model divisible by heads >= 1, got d_model = ", c.d_model, ", heads = ", c.heads);
    if (c.kv_heads == 0) c.kv_heads = c.heads;
    ika::detail::require(c.kv_heads >= 1 && c.heads % c.kv_heads == 0, "config.kv_heads",
                         "a divisor of heads = ", c.heads, ", got ", c.kv_heads);
    ika::detail::require(c.min_p > 0, "config.min_p", "a value > 0, got ", c.min_p);
    ika::detail::require(c.magnitude_dropout >= 0 && c.magnitude_dropout < 1, "config.magnitude_dropout",
                         "a drop probability in [0, 1), got ", c.magnitude_dropout);
    return c;
  }

  attention_config c_;
  index_t D_;
  Kernel kernel_;
  Norm norm_;
  Source source_;
  linear<T> q_proj_, k_proj_, v_proj_, out_proj_;
  ad::variable<T> p_;
  bool training_ = true;
  std::uint64_t dropout_calls_ = 0; // one magnitude-dropout stream per training forward
};

} // namespace ika::nn
