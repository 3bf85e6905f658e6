// SPDX-License-Identifier: MIT
#pragma once

// Learning-rate schedules: value types whose operator()(step) gives the factor the base learning
// rate is multiplied by at optimiser step `step` (0 for the first), as torch.optim.lr_scheduler's
// LambdaLR reads a lambda. apply_schedule() sets an optimiser's lr from one.

#include <cmath>
#include <numbers>

#include "ika/core/error.hpp"

namespace ika::nn {

// The same factor at every step (1: the base lr).
struct constant_schedule {
  double factor = 1;

  double operator()(long step) const {
    ika::detail::require(step >= 0, "step", "a step >= 0, got ", step);
    return factor;
  }
};

// Linear warm-up, then cosine decay to a floor:
//   step < warmup_steps:                 (step + 1) / warmup_steps
//   warmup_steps <= step <= total_steps: min + (1 − min)·(1 + cos(π·t))/2,
//                                        t = (step − warmup_steps) / (total_steps − warmup_steps)
//   step > total_steps:                  min
// The first step trains at lr/warmup_steps rather than 0, and the factor is 1 from the last
// warm-up step to the first decay step.
class warmup_cosine_schedule {
public:
  warmup_cosine_schedule(long warmup_steps, long total_steps, double min_factor = 0)
      : warmup_(warmup_steps), total_(total_steps), min_(min_factor) {
    ika::detail::require(warmup_steps >= 0, "warmup_steps", "a count >= 0, got ", warmup_steps);
    ika::detail::require(total_steps > warmup_steps, "total_steps", "more steps than warmup_steps = ", warmup_steps,
                         ", got ", total_steps);
    ika::detail::require(min_factor >= 0 && min_factor <= 1, "min_factor", "a factor in [0, 1], got ", min_factor);
  }

  double operator()(long step) const {
    ika::detail::require(step >= 0, "step", "a step >= 0, got ", step);
    if (step < warmup_) return double(step + 1) / double(warmup_);
    if (step >= total_) return min_;
    const double t = double(step - warmup_) / double(total_ - warmup_);
    return min_ + (1 - min_) * 0.5 * (1 + std::cos(std::numbers::pi * t));
  }

  long warmup_steps() const { return warmup_; }
  long total_steps() const { return total_; }
  double min_factor() const { return min_; }

private:
  long warmup_, total_;
  double min_;
};

// An optimiser whose learning rate can be changed between steps.
template <class Optimizer>
concept lr_settable = requires(Optimizer& o, double lr) { o.set_lr(lr); };

// Sets the optimiser's lr to base_lr · schedule(step) and returns that lr. Call it before
// optimizer.step() of step `step`.
template <lr_settable Optimizer, class Schedule>
double apply_schedule(Optimizer& optimizer, const Schedule& schedule, double base_lr, long step) {
  ika::detail::require(std::isfinite(base_lr) && base_lr >= 0, "base_lr", "a finite lr >= 0, got ", base_lr);
  const double lr = base_lr * double(schedule(step));
  optimizer.set_lr(lr);
  return lr;
}

} // namespace ika::nn
