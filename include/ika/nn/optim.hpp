// SPDX-License-Identifier: MIT
#pragma once

// Optimisers with PyTorch's semantics (torch.optim.SGD, Adam, AdamW) and gradient clipping by
// global norm. They update the values of ad::variable leaves in place from their gradients.

#include <cmath>
#include <vector>

#include "ika/autodiff/tape.hpp"
#include "ika/core/error.hpp"

namespace ika::nn {

// Scales every gradient by max_norm / (‖g‖₂ + 1e-6) when the global norm exceeds max_norm
// (torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
template <class T>
double clip_grad_norm(std::vector<ad::variable<T>>& params, double max_norm) {
  ika::detail::require(max_norm > 0 && std::isfinite(max_norm), "max_norm", "a finite value > 0, got ", max_norm);
  double total = 0;
  for (auto& p : params)
    for (index_t i = 0; i < p.grad().size(); ++i) total += double(p.grad()[i]) * double(p.grad()[i]);
  total = std::sqrt(total);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1)
    for (auto& p : params)
      for (index_t i = 0; i < p.grad().size(); ++i) p.grad()[i] = T(double(p.grad()[i]) * coef);
  return total;
}

namespace detail {

template <class T>
void check_params(const std::vector<ad::variable<T>>& params) {
  for (std::size_t i = 0; i < params.size(); ++i)
    ika::detail::require(params[i].defined() && params[i].requires_grad(), "params",
            "variables that require grad, got one that does not at index ", i);
}

} // namespace detail

struct sgd_options {
  double lr = 1e-2, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
};

template <class T>
class sgd {
public:
  sgd(std::vector<ad::variable<T>> params, sgd_options options) : params_(std::move(params)), o_(options) {
    detail::check_params(params_);
    ika::detail::require(o_.lr >= 0 && o_.momentum >= 0 && o_.weight_decay >= 0, "options",
                         "lr, momentum and weight_decay >= 0");
    ika::detail::require(!o_.nesterov || (o_.momentum > 0 && o_.dampening == 0), "options.nesterov",
                         "momentum > 0 and dampening = 0 (as PyTorch)");
    for (auto& p : params_) buffers_.emplace_back(std::size_t(p.value().size()), 0.0);
  }
  // The learning rate, for schedules (nn/schedule.hpp).
  double lr() const { return o_.lr; }
  void set_lr(double lr) {
    ika::detail::require(lr >= 0 && std::isfinite(lr), "lr", "a finite lr >= 0, got ", lr);
    o_.lr = lr;
  }
  void step() {
    for (std::size_t k = 0; k < params_.size(); ++k) {
      auto& p = params_[k];
      for (index_t i = 0; i < p.value().size(); ++i) {
        double g = double(p.grad()[i]) + o_.weight_decay * double(p.value()[i]);
        if (o_.momentum != 0) {
          double& b = buffers_[k][std::size_t(i)];
          b = steps_ == 0 ? g : o_.momentum * b + (1 - o_.dampening) * g;
          g = o_.nesterov ? g + o_.momentum * b : b;
        }
        p.value()[i] = T(double(p.value()[i]) - o_.lr * g);
      }
    }
    ++steps_;
  }
  void zero_grad() {
    for (auto& p : params_) p.zero_grad();
  }

private:
  std::vector<ad::variable<T>> params_;
  sgd_options o_;
  std::vector<std::vector<double>> buffers_;
  long steps_ = 0;
};

struct adam_options {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  bool decoupled_weight_decay = false; // true: AdamW
};

// Adam (weight decay added to the gradient) and AdamW (decoupled: p ← p·(1 − lr·wd) first).
template <class T>
class adam {
public:
  adam(std::vector<ad::variable<T>> params, adam_options options) : params_(std::move(params)), o_(options) {
    detail::check_params(params_);
    ika::detail::require(o_.lr >= 0 && o_.eps >= 0 && o_.weight_decay >= 0, "options", "lr, eps and weight_decay >= 0");
    ika::detail::require(o_.beta1 >= 0 && o_.beta1 < 1 && o_.beta2 >= 0 && o_.beta2 < 1, "options.beta",
                         "beta1 and beta2 in [0, 1)");
    for (auto& p : params_) {
      m_.emplace_back(std::size_t(p.value().size()), 0.0);
      v_.emplace_back(std::size_t(p.value().size()), 0.0);
    }
  }
  // The learning rate, for schedules (nn/schedule.hpp).
  double lr() const { return o_.lr; }
  void set_lr(double lr) {
    ika::detail::require(lr >= 0 && std::isfinite(lr), "lr", "a finite lr >= 0, got ", lr);
    o_.lr = lr;
  }
  void step() {
    ++steps_;
    const double c1 = 1 - std::pow(o_.beta1, double(steps_)), c2 = 1 - std::pow(o_.beta2, double(steps_));
    for (std::size_t k = 0; k < params_.size(); ++k) {
      auto& p = params_[k];
      for (index_t i = 0; i < p.value().size(); ++i) {
        double x = double(p.value()[i]), g = double(p.grad()[i]);
        if (o_.decoupled_weight_decay) x *= 1 - o_.lr * o_.weight_decay;
        else g += o_.weight_decay * x;
        double& m = m_[k][std::size_t(i)];
        double& v = v_[k][std::size_t(i)];
        m = o_.beta1 * m + (1 - o_.beta1) * g;
        v = o_.beta2 * v + (1 - o_.beta2) * g * g;
        x -= o_.lr * (m / c1) / (std::sqrt(v / c2) + o_.eps);
        p.value()[i] = T(x);
      }
    }
  }
  void zero_grad() {
    for (auto& p : params_) p.zero_grad();
  }

private:
  std::vector<ad::variable<T>> params_;
  adam_options o_;
  std::vector<std::vector<double>> m_, v_;
  long steps_ = 0;
};

// AdamW with PyTorch's default weight decay 0.01.
inline adam_options adamw_options(double lr = 1e-3, double weight_decay = 1e-2) {
  return {.lr = lr, .weight_decay = weight_decay, .decoupled_weight_decay = true};
}

} // namespace ika::nn
