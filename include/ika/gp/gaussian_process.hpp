// SPDX-License-Identifier: MIT
#pragma once

// Exact Gaussian-process regression in double precision: the baselines of the paper's regression
// protocol. Two kernels (rbf, spectral mixture), Gaussian noise, hyper-parameters fitted by Adam on
// the negative log marginal likelihood with its analytic gradient, posterior mean and variance.
//
// Determinism: kernel matrices and gradient sums are computed column by column, each column by one
// thread with SIMD batches over a range of rows that depends only on the column; the per-column
// gradient sums are added in column order; and the dense algebra is Eigen's LLT and triangular
// solves, which Eigen does not split across threads. Results are therefore bitwise identical for
// any OpenMP thread count (for one build: the SIMD width changes the rounding).

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numbers>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <Eigen/Dense>

#include "ika/core/error.hpp"
#include "ika/simd/simd.hpp"

namespace ika::gp {

using Eigen::Index;

namespace detail {

// Uniform in [0, 1) and standard normal from raw 64-bit words: std::*_distribution differ between
// standard libraries, these do not.
inline double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1p-53; }

inline double standard_normal(std::mt19937_64& rng) {
  const double u1 = double((rng() >> 11) + 1) * 0x1p-53; // (0, 1]: log(u1) is finite
  const double u2 = uniform01(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

inline void require_finite(const Eigen::Ref<const Eigen::MatrixXd>& m, std::string_view argument) {
  ika::detail::require(m.allFinite(), argument, "finite values only");
}

using vec = simd::batch<double>;
inline constexpr Index lanes = Index(simd::width<double>);

// The first `count` (≤ lanes) values at p, zeros in the other lanes: never reads past p + count.
inline vec load_partial(const double* p, Index count) {
  if (count == lanes) return simd::load(p);
  alignas(64) double buffer[lanes] = {};
  std::copy(p, p + count, buffer);
  return simd::load(+buffer);
}

inline void store_partial(double* p, const vec& v, Index count) {
  if (count == lanes) return simd::store(p, v);
  alignas(64) double buffer[lanes];
  simd::store(+buffer, v);
  std::copy(buffer, buffer + count, p);
}

} // namespace detail

// Points stored coordinate by coordinate (column d holds coordinate d of every point), followed by
// one SIMD width of zero rows: the kernels read whole batches of consecutive points, tail included.
class point_set {
public:
  explicit point_set(const Eigen::MatrixXd& X)
      : size_(X.rows()), data_(Eigen::MatrixXd::Zero(X.rows() + detail::lanes, X.cols())) {
    data_.topRows(size_) = X;
  }
  Index size() const { return size_; }
  Index dims() const { return data_.cols(); }
  const double* coordinate(Index d) const { return data_.col(d).data(); } // of every point
  double operator()(Index i, Index d) const { return data_(i, d); }

private:
  Index size_;
  Eigen::MatrixXd data_;
};

// Squared exponential k(x, x') = σ_f² exp(−½ Σ_d (x_d − x'_d)² / ℓ_d²), one lengthscale shared by
// every input dimension (the default), or one per dimension (ARD).
// Unconstrained parameters, in this order: log ℓ (1, or one per dimension), log σ_f².
class rbf_kernel {
public:
  explicit rbf_kernel(double lengthscale = 1.0, double signal_variance = 1.0) {
    ika::detail::require_finite_positive(lengthscale, "lengthscale");
    ika::detail::require_finite_positive(signal_variance, "signal_variance");
    log_lengthscale_ = Eigen::VectorXd::Constant(1, std::log(lengthscale));
    log_signal_variance_ = std::log(signal_variance);
    refresh();
  }

  // One lengthscale per input dimension.
  static rbf_kernel ard(const Eigen::VectorXd& lengthscales, double signal_variance = 1.0) {
    ika::detail::require(lengthscales.size() >= 1, "lengthscales", "at least one lengthscale");
    for (Index d = 0; d < lengthscales.size(); ++d)
      ika::detail::require_finite_positive(lengthscales[d], "lengthscales");
    rbf_kernel k(1.0, signal_variance);
    k.log_lengthscale_ = lengthscales.array().log();
    k.ard_ = true;
    k.refresh();
    return k;
  }
  static rbf_kernel ard(Index dims, double lengthscale = 1.0, double signal_variance = 1.0) {
    ika::detail::require(dims >= 1, "dims", "at least 1, got ", dims);
    ika::detail::require_finite_positive(lengthscale, "lengthscale");
    return ard(Eigen::VectorXd::Constant(dims, lengthscale), signal_variance);
  }

  bool is_ard() const { return ard_; }
  Eigen::VectorXd lengthscales() const { return log_lengthscale_.array().exp(); }
  double lengthscale() const { return std::exp(log_lengthscale_[0]); } // the shared one, or the first
  double signal_variance() const { return signal_variance_; }
  double default_learning_rate() const { return 0.05; }

  Index num_parameters() const { return log_lengthscale_.size() + 1; }
  Eigen::VectorXd parameters() const {
    Eigen::VectorXd p(num_parameters());
    p << log_lengthscale_, log_signal_variance_;
    return p;
  }
  void set_parameters(const Eigen::Ref<const Eigen::VectorXd>& p) {
    ika::detail::require(p.size() == num_parameters(), "parameters", num_parameters(), " values, got ", p.size());
    detail::require_finite(p, "parameters");
    const Index L = log_lengthscale_.size();
    log_lengthscale_ = p.head(L);
    log_signal_variance_ = p[L];
    refresh();
  }

  void check_dims(Index dims) const {
    if (ard_)
      ika::detail::require(dims == log_lengthscale_.size(), "X", log_lengthscale_.size(),
                           " columns (one per ARD lengthscale), got ", dims);
  }

  double prior_variance() const { return signal_variance_; }

  // k(a, b) for two points of `dims` coordinates each.
  double operator()(const double* a, const double* b, Index dims) const {
    double r2 = 0.0;
    for (Index d = 0; d < dims; ++d) r2 += (a[d] - b[d]) * (a[d] - b[d]) * inv_sq_lengthscale_[ard_ ? d : 0];
    return signal_variance_ * std::exp(-0.5 * r2);
  }

  // out[j − j0] = k(a_i, b_j) for j in [j0, j1).
  void column(const point_set& A, Index i, const point_set& B, Index j0, Index j1, double* out) const {
    using detail::vec;
    for (Index j = j0; j < j1; j += detail::lanes) {
      const vec k = vec(signal_variance_) * xsimd::exp(vec(-0.5) * scaled_sq_distance(A, i, B, j));
      detail::store_partial(out + (j - j0), k, std::min(detail::lanes, j1 - j));
    }
  }

  // g[p] += Σ_{j ∈ [j0, j1)} w[j − j0] ∂k(a_i, b_j)/∂θ_p.
  void accumulate_gradient(const point_set& A, Index i, const point_set& B, Index j0, Index j1, const double* w,
                           double* g) const {
    using detail::vec;
    const Index D = A.dims(), P = num_parameters();
    std::vector<vec> acc(std::size_t(P), vec(0.0));
    for (Index j = j0; j < j1; j += detail::lanes) {
      const vec wj = detail::load_partial(w + (j - j0), std::min(detail::lanes, j1 - j)); // 0 past j1
      const vec r2 = scaled_sq_distance(A, i, B, j);
      const vec wk = wj * vec(signal_variance_) * xsimd::exp(vec(-0.5) * r2);
      if (ard_) {
        // ∂k/∂log ℓ_d = k (x_d − x'_d)² / ℓ_d²
        for (Index d = 0; d < D; ++d) {
          const vec diff = simd::load(B.coordinate(d) + j) - vec(A(i, d));
          acc[std::size_t(d)] = xsimd::fma(wk, diff * diff * vec(inv_sq_lengthscale_[d]), acc[std::size_t(d)]);
        }
      } else {
        acc[0] = xsimd::fma(wk, r2, acc[0]); // ∂k/∂log ℓ = k r²
      }
      acc[std::size_t(P - 1)] += wk; // ∂k/∂log σ_f² = k
    }
    for (Index p = 0; p < P; ++p) g[p] += simd::reduce_add(acc[std::size_t(p)]);
  }

private:
  // Σ_d (a_id − b_jd)² / ℓ_d² for the lanes points starting at b_j.
  detail::vec scaled_sq_distance(const point_set& A, Index i, const point_set& B, Index j) const {
    using detail::vec;
    vec r2(0.0);
    for (Index d = 0; d < A.dims(); ++d) {
      const vec diff = simd::load(B.coordinate(d) + j) - vec(A(i, d));
      r2 = ard_ ? xsimd::fma(diff * diff, vec(inv_sq_lengthscale_[d]), r2) : xsimd::fma(diff, diff, r2);
    }
    return ard_ ? r2 : r2 * vec(inv_sq_lengthscale_[0]);
  }

  void refresh() {
    inv_sq_lengthscale_ = (-2.0 * log_lengthscale_.array()).exp();
    signal_variance_ = std::exp(log_signal_variance_);
  }

  Eigen::VectorXd log_lengthscale_;
  double log_signal_variance_ = 0.0;
  bool ard_ = false;
  Eigen::VectorXd inv_sq_lengthscale_; // cached 1/ℓ_d²
  double signal_variance_ = 1.0;
};

// Spectral mixture of Wilson & Adams (2013), with a product over input dimensions:
//   k(τ) = Σ_q w_q Π_d exp(−2π² τ_d² v_qd) cos(2π τ_d μ_qd),   τ = x − x'.
// Unconstrained parameters, in this order: log w_q (Q), μ_qd (Q·D, q-major), log v_qd (Q·D, q-major).
// The means are left unconstrained rather than log-transformed: k is even in each μ_qd, so no sign
// constraint is needed, and μ = 0 (a component that is an rbf kernel) stays reachable.
class spectral_mixture_kernel {
public:
  // Q components over `dims` inputs, with placeholder values; fit() replaces them from the data
  // (initialize_from_data) unless told otherwise.
  explicit spectral_mixture_kernel(Index num_components = 5, Index dims = 1) {
    ika::detail::require(num_components >= 1, "num_components", "at least 1, got ", num_components);
    ika::detail::require(dims >= 1, "dims", "at least 1, got ", dims);
    log_weights_ = Eigen::VectorXd::Constant(num_components, -std::log(double(num_components)));
    means_ = Eigen::MatrixXd::Zero(dims, num_components);
    log_variances_ = Eigen::MatrixXd::Zero(dims, num_components);
    for (Index q = 0; q < num_components; ++q) means_.col(q).setConstant(double(q) / double(num_components));
    refresh();
  }

  // weights (Q), means and variances (D × Q: column q is component q).
  spectral_mixture_kernel(const Eigen::VectorXd& weights, const Eigen::MatrixXd& means,
                          const Eigen::MatrixXd& variances) {
    ika::detail::require(weights.size() >= 1, "weights", "at least one component");
    ika::detail::require(means.cols() == weights.size() && means.rows() >= 1, "means",
                         "shape (dims, ", weights.size(), "), got (", means.rows(), ", ", means.cols(), ")");
    ika::detail::require(variances.rows() == means.rows() && variances.cols() == means.cols(), "variances",
                         "the shape of means (", means.rows(), ", ", means.cols(), "), got (", variances.rows(),
                         ", ", variances.cols(), ")");
    for (Index q = 0; q < weights.size(); ++q) ika::detail::require_finite_positive(weights[q], "weights");
    detail::require_finite(means, "means");
    for (Index k = 0; k < variances.size(); ++k)
      ika::detail::require_finite_positive(variances.data()[k], "variances");
    log_weights_ = weights.array().log();
    means_ = means;
    log_variances_ = variances.array().log();
    refresh();
  }

  Index num_components() const { return log_weights_.size(); }
  Index dims() const { return means_.rows(); }
  Eigen::VectorXd weights() const { return weights_; }
  const Eigen::MatrixXd& means() const { return means_; }
  Eigen::MatrixXd variances() const { return variances_; }
  double default_learning_rate() const { return 0.1; }

  Index num_parameters() const { return log_weights_.size() + 2 * means_.size(); }
  Eigen::VectorXd parameters() const {
    const Index Q = num_components(), M = means_.size();
    Eigen::VectorXd p(num_parameters());
    p.head(Q) = log_weights_;
    p.segment(Q, M) = means_.reshaped();
    p.segment(Q + M, M) = log_variances_.reshaped();
    return p;
  }
  void set_parameters(const Eigen::Ref<const Eigen::VectorXd>& p) {
    ika::detail::require(p.size() == num_parameters(), "parameters", num_parameters(), " values, got ", p.size());
    detail::require_finite(p, "parameters");
    const Index Q = num_components(), D = dims(), M = means_.size();
    log_weights_ = p.head(Q);
    means_ = p.segment(Q, M).reshaped(D, Q);
    log_variances_ = p.segment(Q + M, M).reshaped(D, Q);
    refresh();
  }

  void check_dims(Index d) const {
    ika::detail::require(d == dims(), "X", dims(), " columns (the kernel's dims), got ", d);
  }

  double prior_variance() const { return weights_.sum(); }

  // k(a, b) for two points of `dims` coordinates each.
  double operator()(const double* a, const double* b, Index D) const {
    double k = 0.0;
    for (Index q = 0; q < weights_.size(); ++q) {
      double s = 0.0, c = 1.0;
      for (Index d = 0; d < D; ++d) {
        const double tau = a[d] - b[d];
        s += tau * tau * variances_(d, q);
        c *= std::cos(two_pi * tau * means_(d, q));
      }
      k += weights_[q] * std::exp(-two_pi2 * s) * c;
    }
    return k;
  }

  // out[j − j0] = k(a_i, b_j) for j in [j0, j1).
  void column(const point_set& A, Index i, const point_set& B, Index j0, Index j1, double* out) const {
    using detail::vec;
    const Index Q = num_components(), D = dims();
    std::vector<vec> tau(std::size_t(D), vec(0.0));
    for (Index j = j0; j < j1; j += detail::lanes) {
      for (Index d = 0; d < D; ++d) tau[std::size_t(d)] = simd::load(B.coordinate(d) + j) - vec(A(i, d));
      vec k(0.0);
      for (Index q = 0; q < Q; ++q) {
        vec s(0.0), c(1.0);
        for (Index d = 0; d < D; ++d) {
          const vec t = tau[std::size_t(d)];
          s = xsimd::fma(t * t, vec(variances_(d, q)), s);
          c *= xsimd::cos(vec(two_pi * means_(d, q)) * t);
        }
        k = xsimd::fma(vec(weights_[q]), xsimd::exp(vec(-two_pi2) * s) * c, k);
      }
      detail::store_partial(out + (j - j0), k, std::min(detail::lanes, j1 - j));
    }
  }

  // g[p] += Σ_{j ∈ [j0, j1)} w[j − j0] ∂k(a_i, b_j)/∂θ_p.
  void accumulate_gradient(const point_set& A, Index i, const point_set& B, Index j0, Index j1, const double* w,
                           double* g) const {
    using detail::vec;
    const Index Q = num_components(), D = dims(), P = num_parameters();
    const auto at = [](Index k) { return std::size_t(k); };
    // Accumulators in parameter order: weights, means, variances. Per batch: τ, cos, sin and the
    // products of the cosines after each dimension (suffix), so that ∂/∂μ_qd gets Π_{d' ≠ d} cos
    // as prefix · suffix without dividing by a cosine that may be zero.
    std::vector<vec> acc(at(P), vec(0.0)), tau(at(D)), cs(at(D)), sn(at(D)), suffix(at(D + 1));
    vec* acc_weight = acc.data();
    vec* acc_mean = acc.data() + Q;
    vec* acc_variance = acc.data() + Q + D * Q;
    for (Index j = j0; j < j1; j += detail::lanes) {
      const vec wj = detail::load_partial(w + (j - j0), std::min(detail::lanes, j1 - j)); // 0 past j1
      for (Index d = 0; d < D; ++d) tau[at(d)] = simd::load(B.coordinate(d) + j) - vec(A(i, d));
      for (Index q = 0; q < Q; ++q) {
        vec s(0.0);
        for (Index d = 0; d < D; ++d) {
          const vec t = tau[at(d)];
          s = xsimd::fma(t * t, vec(variances_(d, q)), s);
          const auto [sine, cosine] = xsimd::sincos(vec(two_pi * means_(d, q)) * t);
          cs[at(d)] = cosine;
          sn[at(d)] = sine;
        }
        suffix[at(D)] = vec(1.0);
        for (Index d = D; d-- > 0;) suffix[at(d)] = suffix[at(d + 1)] * cs[at(d)];
        const vec we = wj * vec(weights_[q]) * xsimd::exp(vec(-two_pi2) * s); // weight · w_q · exp term
        const vec term = we * suffix[0];
        acc_weight[q] += term; // ∂/∂log w_q = term
        vec prefix(1.0);
        for (Index d = 0; d < D; ++d) {
          const vec t = tau[at(d)];
          // ∂/∂log v_qd = −2π² τ_d² v_qd · term;  ∂/∂μ_qd = −2π τ_d sin(2π τ_d μ_qd) · w_q e Π_{d' ≠ d} cos
          acc_variance[q * D + d] -= term * (vec(two_pi2 * variances_(d, q)) * t * t);
          acc_mean[q * D + d] -= we * prefix * suffix[at(d + 1)] * sn[at(d)] * (vec(two_pi) * t);
          prefix *= cs[at(d)];
        }
      }
    }
    for (Index p = 0; p < P; ++p) g[p] += simd::reduce_add(acc[at(p)]);
  }

  // In the spirit of GPyTorch's SpectralMixtureKernel.initialize_from_data: weights share the target
  // variance equally; means uniform up to the Nyquist-like frequency 0.5 / spacing of each input
  // dimension; inverse scales drawn as |N(0, range²)|, so that the spectral widths match the input
  // range. The spacing is the median positive gap between sorted inputs, where GPyTorch takes the
  // first positive gap: one near-duplicate pair of inputs would otherwise set the frequency scale.
  //
  // With D > 1 inputs that recipe starts from a product of D cosines at high frequencies and D narrow
  // envelopes, which is nearly white noise (Boston, D = 13: test RMSE three times the rbf's). There
  // the means are drawn up to 1 / (range √D) and the envelopes are widened by √D, so that each
  // component starts as a smooth kernel over the whole input, as an isotropic rbf would; D = 1 keeps
  // the recipe above, which is what finds the periods of a time series.
  void initialize_from_data(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, std::uint64_t seed) {
    ika::detail::require(X.rows() >= 1 && X.cols() >= 1, "X", "a non-empty (n, dims) matrix");
    ika::detail::require(y.size() == X.rows(), "y", X.rows(), " values (rows of X), got ", y.size());
    detail::require_finite(X, "X");
    detail::require_finite(y, "y");
    const Index Q = num_components(), D = X.cols(), n = X.rows();
    Eigen::VectorXd range(D), spacing(D);
    std::vector<double> sorted(static_cast<std::size_t>(n)), gaps;
    for (Index d = 0; d < D; ++d) {
      for (Index r = 0; r < n; ++r) sorted[std::size_t(r)] = X(r, d);
      std::sort(sorted.begin(), sorted.end());
      gaps.clear();
      for (std::size_t r = 1; r < sorted.size(); ++r)
        if (sorted[r] > sorted[r - 1]) gaps.push_back(sorted[r] - sorted[r - 1]);
      range[d] = sorted.back() - sorted.front();
      if (gaps.empty()) { // a constant column: any scale will do
        range[d] = 1.0;
        spacing[d] = 1.0;
      } else {
        std::nth_element(gaps.begin(), gaps.begin() + std::ptrdiff_t(gaps.size() / 2), gaps.end());
        spacing[d] = gaps[gaps.size() / 2];
      }
    }
    double variance = (y.array() - y.mean()).square().mean();
    if (!(variance > 0.0)) variance = 1.0;

    std::mt19937_64 rng(seed);
    log_weights_ = Eigen::VectorXd::Constant(Q, std::log(variance / double(Q)));
    means_.resize(D, Q);
    log_variances_.resize(D, Q);
    const double widen = std::sqrt(double(D));
    for (Index q = 0; q < Q; ++q)
      for (Index d = 0; d < D; ++d)
        means_(d, q) = detail::uniform01(rng) * (D == 1 ? 0.5 / spacing[d] : 1.0 / (range[d] * widen));
    for (Index q = 0; q < Q; ++q)
      for (Index d = 0; d < D; ++d) {
        // scale = 1 / |z · range · √D|, v = scale²
        const double z = std::max(std::abs(detail::standard_normal(rng)), 1e-3);
        log_variances_(d, q) = -2.0 * std::log(z * range[d] * widen);
      }
    refresh();
  }

private:
  static constexpr double two_pi = 2.0 * std::numbers::pi, two_pi2 = 2.0 * std::numbers::pi * std::numbers::pi;

  void refresh() {
    weights_ = log_weights_.array().exp();
    variances_ = log_variances_.array().exp();
  }

  Eigen::VectorXd log_weights_;
  Eigen::MatrixXd means_;         // D × Q
  Eigen::MatrixXd log_variances_; // D × Q
  Eigen::VectorXd weights_;       // cached exp(log_weights_)
  Eigen::MatrixXd variances_;     // cached exp(log_variances_)
};

// What gaussian_process needs of a kernel.
template <class K>
concept gp_kernel = requires(K k, const K ck, const Eigen::VectorXd& p, const point_set& P, const double* x,
                             double* g) {
  { ck.num_parameters() } -> std::convertible_to<Index>;
  { ck.parameters() } -> std::convertible_to<Eigen::VectorXd>;
  k.set_parameters(p);
  ck.check_dims(Index{});
  { ck.prior_variance() } -> std::convertible_to<double>;
  { ck(x, x, Index{}) } -> std::convertible_to<double>;
  ck.column(P, Index{}, P, Index{}, Index{}, g);
  ck.accumulate_gradient(P, Index{}, P, Index{}, Index{}, x, g);
  { ck.default_learning_rate() } -> std::convertible_to<double>;
};

struct fit_options {
  std::optional<double> learning_rate{}; // Adam's step; unset: the kernel's default (rbf 0.05, sm 0.1)
  int iterations = 200;
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;
  bool center_targets = true;       // prior mean := mean of y; otherwise the current prior mean stays
  bool initialize_from_data = true; // for kernels that have initialize_from_data (spectral mixture)
  std::uint64_t seed = 0;           // of that initialisation; restart r uses seed + r
  int restarts = 1;                 // initialisations tried (kernels with initialize_from_data only)
};

struct fit_report {
  double final_nll = 0.0;          // at the fitted hyper-parameters
  int iterations = 0;              // Adam steps taken
  double jitter = 0.0;             // added to the diagonal in the final factorisation
  double max_jitter = 0.0;         // the largest added during the fit
  std::vector<double> nll_history; // before each Adam step (of the run kept, when restarting)
};

struct nll_result {
  double nll = 0.0;
  Eigen::VectorXd gradient; // with respect to gaussian_process::parameters()
  double jitter = 0.0;
};

struct prediction {
  Eigen::VectorXd mean;
  Eigen::VectorXd variance;
};

// Root mean squared error.
inline double rmse(const Eigen::VectorXd& predicted, const Eigen::VectorXd& target) {
  ika::detail::require(predicted.size() == target.size() && target.size() > 0, "target", predicted.size(),
                       " values (as predicted), got ", target.size());
  return std::sqrt((predicted - target).squaredNorm() / double(target.size()));
}

// GP regression y = f(x) + ε, f ~ GP(m, k), ε ~ N(0, σ_n²) with constant prior mean m.
// Inputs X are (n × dims), one row per point. Unconstrained parameters: the kernel's, then
// log(σ_n² − noise_floor); the floor keeps the optimiser from driving the noise to zero.
template <gp_kernel Kernel>
class gaussian_process {
public:
  struct jitter_options {
    double initial = 1e-9; // relative to the mean of diag(K)
    double factor = 10.0;  // geometric growth per failed attempt
    int max_attempts = 7;  // after the unjittered one
  };

  explicit gaussian_process(Kernel k = Kernel{}, double noise_variance = 0.1, double noise_floor = 1e-6)
      : kernel_(std::move(k)) {
    ika::detail::require(std::isfinite(noise_floor) && noise_floor >= 0.0, "noise_floor",
                         "a finite value >= 0, got ", noise_floor);
    noise_floor_ = noise_floor;
    set_noise_variance(noise_variance);
  }

  const Kernel& kernel() const { return kernel_; }
  // Replacing the kernel drops the posterior: predict() needs condition() or fit() again.
  void set_kernel(Kernel k) {
    kernel_ = std::move(k);
    conditioned_ = false;
  }

  double noise_variance() const { return noise_floor_ + std::exp(raw_noise_); }
  double noise_floor() const { return noise_floor_; }
  void set_noise_variance(double v) {
    ika::detail::require(std::isfinite(v) && v > noise_floor_, "noise_variance", "a finite value > noise_floor (",
                         noise_floor_, "), got ", v);
    raw_noise_ = std::log(v - noise_floor_);
    conditioned_ = false;
  }

  double prior_mean() const { return mean_; }
  void set_prior_mean(double m) {
    ika::detail::require(std::isfinite(m), "prior_mean", "a finite value, got ", m);
    mean_ = m;
    conditioned_ = false;
  }

  const jitter_options& jitter_settings() const { return jitter_options_; }
  void set_jitter_settings(const jitter_options& j) {
    ika::detail::require(std::isfinite(j.initial) && j.initial > 0, "jitter.initial", "a finite value > 0, got ",
                         j.initial);
    ika::detail::require(std::isfinite(j.factor) && j.factor > 1, "jitter.factor", "a finite value > 1, got ",
                         j.factor);
    ika::detail::require(j.max_attempts >= 0, "jitter.max_attempts", "at least 0, got ", j.max_attempts);
    jitter_options_ = j;
  }

  Index num_parameters() const { return kernel_.num_parameters() + 1; }
  Eigen::VectorXd parameters() const {
    Eigen::VectorXd p(num_parameters());
    p << kernel_.parameters(), raw_noise_;
    return p;
  }
  void set_parameters(const Eigen::Ref<const Eigen::VectorXd>& p) {
    ika::detail::require(p.size() == num_parameters(), "parameters", num_parameters(), " values, got ", p.size());
    detail::require_finite(p, "parameters");
    kernel_.set_parameters(p.head(p.size() - 1));
    raw_noise_ = p[p.size() - 1];
    conditioned_ = false;
  }

  // NLL = ½ (y − m)ᵀ K⁻¹ (y − m) + ½ log|K| + n/2 log 2π with K = k(X, X) + σ_n² I, and its gradient
  // ½ tr((K⁻¹ − ααᵀ) ∂K/∂θ), α = K⁻¹ (y − m), at the current parameters.
  nll_result nll_and_gradient(const Eigen::MatrixXd& X, const Eigen::VectorXd& y) const {
    check_data(X, y);
    return evaluate(point_set(X), y, true);
  }
  double nll(const Eigen::MatrixXd& X, const Eigen::VectorXd& y) const {
    check_data(X, y);
    return evaluate(point_set(X), y, false).nll;
  }

  // Adam on the NLL from the current parameters, or, for kernels with initialize_from_data (and
  // options.initialize_from_data), from `restarts` seeded initialisations, keeping the run with the
  // lowest final NLL. Then conditions on (X, y) for predict().
  fit_report fit(const Eigen::MatrixXd& X, const Eigen::VectorXd& y, const fit_options& options = {}) {
    check_data(X, y);
    ika::detail::require(options.iterations >= 0, "iterations", "at least 0, got ", options.iterations);
    ika::detail::require(options.restarts >= 1, "restarts", "at least 1, got ", options.restarts);
    const double lr = options.learning_rate.value_or(kernel_.default_learning_rate());
    ika::detail::require_finite_positive(lr, "learning_rate");
    ika::detail::require(options.beta1 >= 0 && options.beta1 < 1, "beta1", "a value in [0, 1), got ", options.beta1);
    ika::detail::require(options.beta2 >= 0 && options.beta2 < 1, "beta2", "a value in [0, 1), got ", options.beta2);
    ika::detail::require_finite_positive(options.epsilon, "epsilon");
    kernel_.check_dims(X.cols()); // before touching the model, so that a bad X leaves it as it was

    conditioned_ = false;
    if (options.center_targets) mean_ = y.mean();
    constexpr bool has_init = requires(Kernel& k) { k.initialize_from_data(X, y, options.seed); };
    const bool initialise = has_init && options.initialize_from_data;
    const int runs = initialise ? options.restarts : 1; // without a fresh start every run is the same
    const point_set points(X);
    const Eigen::VectorXd start = parameters();
    fit_report best;
    Eigen::VectorXd best_theta;
    for (int run = 0; run < runs; ++run) {
      set_parameters(start);
      if constexpr (has_init)
        if (initialise) kernel_.initialize_from_data(X, y, options.seed + std::uint64_t(run));
      fit_report report = adam(points, y, lr, options);
      condition(X, y);
      report.final_nll = final_nll_;
      report.jitter = jitter_;
      report.max_jitter = std::max(report.max_jitter, jitter_);
      if (run == 0 || report.final_nll < best.final_nll) {
        best = std::move(report);
        best_theta = parameters();
      }
    }
    if (runs > 1) {
      set_parameters(best_theta);
      condition(X, y);
    }
    return best;
  }

  // Factorises K at the current parameters and keeps what predict() needs.
  void condition(const Eigen::MatrixXd& X, const Eigen::VectorXd& y) {
    check_data(X, y);
    conditioned_ = false;
    points_ = point_set(X);
    final_nll_ = factor_and_nll(points_, y, llt_, alpha_, jitter_);
    conditioned_ = true;
  }

  bool is_conditioned() const { return conditioned_; }
  double jitter() const { return jitter_; } // of the last condition()

  // Posterior of f at the rows of Xs; include_noise adds σ_n² to the variance (the predictive of y).
  prediction predict(const Eigen::MatrixXd& Xs, bool include_noise = false) const {
    if (!conditioned_)
      throw std::logic_error("ika: gaussian_process::predict: call fit() or condition() first");
    ika::detail::require(Xs.cols() == points_.dims(), "Xs", points_.dims(), " columns (as the training X), got ",
                         Xs.cols());
    detail::require_finite(Xs, "Xs");
    const Index n = points_.size(), m = Xs.rows();
    const point_set test(Xs);
    prediction out{Eigen::VectorXd(m), Eigen::VectorXd(m)};
    const double prior = kernel_.prior_variance() + (include_noise ? noise_variance() : 0.0);
    constexpr Index chunk = 512; // bounds the n × chunk cross-covariance
    for (Index c0 = 0; c0 < m; c0 += chunk) {
      const Index cm = std::min(chunk, m - c0);
      Eigen::MatrixXd Ks(n, cm);
#pragma omp parallel for schedule(static)
      for (Index c = 0; c < cm; ++c) kernel_.column(test, c0 + c, points_, 0, n, Ks.col(c).data());
      for (Index c = 0; c < cm; ++c) out.mean[c0 + c] = mean_ + Ks.col(c).dot(alpha_);
      llt_.matrixL().solveInPlace(Ks);
      for (Index c = 0; c < cm; ++c) out.variance[c0 + c] = std::max(prior - Ks.col(c).squaredNorm(), 0.0);
    }
    return out;
  }

  double rmse(const Eigen::MatrixXd& Xs, const Eigen::VectorXd& ys) const {
    ika::detail::require(ys.size() == Xs.rows(), "ys", Xs.rows(), " values (rows of Xs), got ", ys.size());
    return gp::rmse(predict(Xs).mean, ys);
  }

private:
  void check_data(const Eigen::MatrixXd& X, const Eigen::VectorXd& y) const {
    ika::detail::require(X.rows() >= 1 && X.cols() >= 1, "X", "a non-empty (n, dims) matrix, got (", X.rows(),
                         ", ", X.cols(), ")");
    ika::detail::require(y.size() == X.rows(), "y", X.rows(), " values (rows of X), got ", y.size());
    detail::require_finite(X, "X");
    detail::require_finite(y, "y");
  }

  // options.iterations Adam steps on the NLL from the current parameters; fills the history.
  fit_report adam(const point_set& points, const Eigen::VectorXd& y, double lr, const fit_options& options) {
    fit_report report;
    report.iterations = options.iterations;
    report.nll_history.reserve(std::size_t(options.iterations));
    Eigen::VectorXd theta = parameters();
    Eigen::VectorXd m = Eigen::VectorXd::Zero(theta.size()), v = Eigen::VectorXd::Zero(theta.size());
    double beta1_t = 1.0, beta2_t = 1.0;
    for (int t = 0; t < options.iterations; ++t) {
      const nll_result r = evaluate(points, y, true);
      if (!std::isfinite(r.nll) || !r.gradient.allFinite())
        throw std::runtime_error("ika: gaussian_process::fit: non-finite NLL or gradient at iteration " +
                                 std::to_string(t));
      report.nll_history.push_back(r.nll);
      report.max_jitter = std::max(report.max_jitter, r.jitter);
      beta1_t *= options.beta1;
      beta2_t *= options.beta2;
      m = options.beta1 * m + (1.0 - options.beta1) * r.gradient;
      v = options.beta2 * v + (1.0 - options.beta2) * r.gradient.cwiseAbs2();
      theta.array() -= lr * (m.array() / (1.0 - beta1_t)) / ((v.array() / (1.0 - beta2_t)).sqrt() + options.epsilon);
      set_parameters(theta);
    }
    return report;
  }

  // Lower triangle of k(X, X) + σ_n² I, all that LLT reads.
  Eigen::MatrixXd kernel_matrix(const point_set& points) const {
    kernel_.check_dims(points.dims());
    const Index n = points.size();
    Eigen::MatrixXd K(n, n);
#pragma omp parallel for schedule(dynamic, 16)
    for (Index i = 0; i < n; ++i) kernel_.column(points, i, points, i, n, &K(i, i));
    K.diagonal().array() += noise_variance();
    return K;
  }

  // LLT of K; on failure, adds jitter to the diagonal, growing geometrically. Returns the jitter added.
  double factorize(Eigen::MatrixXd& K, Eigen::LLT<Eigen::MatrixXd>& llt) const {
    const double scale = std::abs(K.diagonal().mean());
    double jitter = 0.0;
    for (int attempt = 0;; ++attempt) {
      llt.compute(K);
      if (llt.info() == Eigen::Success) {
        // LLT only notices non-positive pivots; NaN pivots pass its test.
        const auto d = llt.matrixLLT().diagonal().array();
        if (d.allFinite() && (d > 0).all()) return jitter;
      }
      if (attempt >= jitter_options_.max_attempts || !std::isfinite(scale) || scale == 0.0)
        throw std::runtime_error("ika: gaussian_process: Cholesky factorisation failed, also with jitter " +
                                 std::to_string(jitter));
      const double next = attempt == 0 ? jitter_options_.initial * scale : jitter * jitter_options_.factor;
      K.diagonal().array() += next - jitter;
      jitter = next;
    }
  }

  // Factorises K at the current parameters into llt; sets α = K⁻¹ (y − m) and the jitter; returns the NLL.
  double factor_and_nll(const point_set& points, const Eigen::VectorXd& y, Eigen::LLT<Eigen::MatrixXd>& llt,
                        Eigen::VectorXd& alpha, double& jitter) const {
    Eigen::MatrixXd K = kernel_matrix(points);
    jitter = factorize(K, llt);
    const Eigen::VectorXd centered = (y.array() - mean_).matrix();
    alpha = llt.solve(centered);
    // ½ log|K| = Σ log L_ii
    return 0.5 * centered.dot(alpha) + llt.matrixLLT().diagonal().array().log().sum() +
           0.5 * double(y.size()) * std::log(2.0 * std::numbers::pi);
  }

  nll_result evaluate(const point_set& points, const Eigen::VectorXd& y, bool with_gradient) const {
    const Index n = points.size();
    Eigen::LLT<Eigen::MatrixXd> llt;
    Eigen::VectorXd alpha;
    nll_result r;
    r.nll = factor_and_nll(points, y, llt, alpha, r.jitter);
    if (!with_gradient) return r;

    // Lower triangle of W = K⁻¹ − ααᵀ with the strictly lower part doubled, so that
    // Σ_ij W_ij ∂K_ij = Σ_{j ≥ i} Wd_ji ∂K_ji (K and W symmetric).
    Eigen::MatrixXd W = Eigen::MatrixXd::Identity(n, n);
    llt.solveInPlace(W);
    for (Index i = 0; i < n; ++i) {
      W(i, i) -= alpha[i] * alpha[i];
      for (Index j = i + 1; j < n; ++j) W(j, i) = 2.0 * (W(j, i) - alpha[j] * alpha[i]);
    }
    const Index P = kernel_.num_parameters();
    Eigen::MatrixXd partial = Eigen::MatrixXd::Zero(P, n); // one column per column of W, summed in order
#pragma omp parallel for schedule(dynamic, 16)
    for (Index i = 0; i < n; ++i)
      kernel_.accumulate_gradient(points, i, points, i, n, &W(i, i), partial.col(i).data());
    r.gradient.resize(P + 1);
    for (Index p = 0; p < P; ++p) {
      double s = 0.0;
      for (Index i = 0; i < n; ++i) s += partial(p, i);
      r.gradient[p] = 0.5 * s;
    }
    r.gradient[P] = 0.5 * W.diagonal().sum() * std::exp(raw_noise_); // ∂K/∂raw_noise = exp(raw) I
    return r;
  }

  Kernel kernel_;
  double raw_noise_ = 0.0;
  double noise_floor_ = 1e-6;
  double mean_ = 0.0;
  jitter_options jitter_options_{};

  // Posterior state, set by condition().
  bool conditioned_ = false;
  point_set points_{Eigen::MatrixXd(0, 1)};
  Eigen::LLT<Eigen::MatrixXd> llt_;
  Eigen::VectorXd alpha_;
  double jitter_ = 0.0;
  double final_nll_ = 0.0;
};

} // namespace ika::gp
