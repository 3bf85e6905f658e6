// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>

#include "ika/core/error.hpp"
#include "ika/core/tensor_view.hpp"
#include "ika/simd/simd.hpp"

namespace ika {

// μ(x) = ‖x‖_p^r / c  (SPEC §4), added to the logit of every key (and of the query if asked).
enum class norm_exponent {
  two,  // r = 2 (derivation, default)
  p     // r = p (‖x‖_pᵖ; p must be finite)
};
enum class norm_divisor {
  paper, // c = 2√D (derivation, default)
  code   // c = 2·D^¼ (public code, through a double square root)
};

struct lp {
  double p = 2;
  norm_exponent exponent = norm_exponent::two;
  norm_divisor divisor = norm_divisor::paper;
  bool include_query = false; // μ(q_i) is constant per row: it only moves the log-sum-exp

  static constexpr bool is_zero = false;

  static constexpr double infinity = std::numeric_limits<double>::infinity();

  double resolved_divisor(index_t dim) const {
    return divisor == norm_divisor::paper ? 2 * std::sqrt(double(dim)) : 2 * std::pow(double(dim), 0.25);
  }
  double resolved_exponent() const { return exponent == norm_exponent::two ? 2.0 : p; }

  template <class T>
  struct bound {
    index_t dim;
    T p;
    double exponent;
    double divisor;
    double inverse_divisor; // a product per key in magnitudes()
    bool include_query;
    bool exponent_is_p; // r follows p (the learnable-p derivative differs)

    static constexpr bool device_hooks = true; // magnitude() compiles for the GPU too

    // ‖x‖_p^r / c, reduced in T (with SIMD on the CPU) and finished in double.
    IKA_HOST_DEVICE double magnitude(const T* x) const {
      if (double(p) == lp::infinity) return ::pow(double(simd::row_max_abs(x, dim)), exponent) / divisor;
      const double s = double(simd::row_sum_abs_pow(x, dim, p));
      // ‖x‖_p^r = (Σ|x|^p)^(r/p); r = p and p = 2, r = 2 need no pow at all
      if (exponent == double(p)) return s / divisor;
      return ::pow(s, exponent / double(p)) / divisor;
    }

    // magnitude() of n rows: the sums of W rows reduced together (simd::row_sums), the powers
    // (Σ|x|^p)^(r/p) taken in SIMD as well
    void magnitudes(const T* const* x, index_t n, double* out) const {
      if (double(p) == lp::infinity) {
        for (index_t r = 0; r < n; ++r) out[r] = magnitude(x[r]);
        return;
      }
      simd::row_sums_abs_pow(x, n, dim, p, [&](index_t r, T sum) { out[r] = double(sum); });
      if (exponent != double(p)) simd::pow_abs_each(out, n, exponent / double(p));
      for (index_t r = 0; r < n; ++r) out[r] *= inverse_divisor;
    }

    // μ = |x|²/c when p = 2 and r = 2 (NaN otherwise: not of that shape)
    double magnitude_square_scale() const {
      return double(p) == 2 && exponent == 2 ? inverse_divisor : std::numeric_limits<double>::quiet_NaN();
    }

    // dx += g · ∂μ/∂x (at p = ∞ the subgradient at the first largest entry; 0 at x = 0)
    IKA_HOST_DEVICE void magnitude_backward(const T* x, double g, T* dx) const {
      if (g == 0) return;
      const double P = double(p);
      if (P == lp::infinity) {
        index_t arg = 0;
        for (index_t d = 1; d < dim; ++d)
          if (::fabs(double(x[d])) > ::fabs(double(x[arg]))) arg = d;
        const double a = ::fabs(double(x[arg]));
        dx[arg] += T(g * exponent / divisor * ::pow(a, exponent - 1) * ((x[arg] > 0) - (x[arg] < 0)));
        return;
      }
      double s = 0;
      for (index_t d = 0; d < dim; ++d) s += ::pow(::fabs(double(x[d])), P);
      if (s == 0) return;
      const double dmu_ds = exponent / P * ::pow(s, exponent / P - 1) / divisor;
      for (index_t d = 0; d < dim; ++d)
        if (x[d] != 0)
          dx[d] += T(g * dmu_ds * P * ::pow(::fabs(double(x[d])), P - 1) * ((x[d] > 0) - (x[d] < 0)));
    }

    // ∂μ/∂p for a learnable p (finite p). With s = Σ|x|^p and t = Σ|x|^p log|x|:
    // r = p: μ = s/c, ∂μ/∂p = t/c;  fixed r: μ = s^(r/p)/c, ∂μ/∂p = μ (r/p)(t/s − log(s)/p).
    double magnitude_p_derivative(const T* x) const {
      const double P = double(p);
      double s = 0, t = 0;
      for (index_t d = 0; d < dim; ++d) {
        const double a = std::abs(double(x[d]));
        if (a == 0) continue;
        const double ap = std::pow(a, P);
        s += ap;
        t += ap * std::log(a);
      }
      if (s == 0) return 0;
      if (exponent_is_p) return t / divisor;
      const double mu = std::pow(s, exponent / P) / divisor;
      return mu * exponent / P * (t / s - std::log(s) / P);
    }
  };

  template <class T>
  bound<T> bind(index_t dim) const {
    detail::require(p > 0 && !std::isnan(p), "lp.p", "p > 0 or p = infinity, got ", p);
    detail::require(!(exponent == norm_exponent::p && std::isinf(p)), "lp.exponent",
                    "a finite p with norm_exponent::p (‖x‖_∞^∞ is undefined); use norm_exponent::two");
    return {dim, T(p), resolved_exponent(), resolved_divisor(dim), 1 / resolved_divisor(dim), include_query,
            exponent == norm_exponent::p};
  }
};

// μ = 0: pure kernel attention.
struct no_norm {
  static constexpr bool is_zero = true;
  template <class T>
  struct bound {
    static constexpr bool device_hooks = true;
    bool include_query = false;
    IKA_HOST_DEVICE double magnitude(const T*) const { return 0; }
    IKA_HOST_DEVICE void magnitude_backward(const T*, double, T*) const {}
  };
  template <class T>
  bound<T> bind(index_t) const { return {}; }
};

} // namespace ika
