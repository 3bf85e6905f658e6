// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <cmath>

#include "ika/core/error.hpp"
#include "ika/kernels/kernel_traits.hpp"
#include "ika/simd/simd.hpp"

namespace ika {

// log κ(q, k) = -|q - k|² / (2σ²), σ² = √D unless given.
// Expanded as q·k/σ² - |q|²/2σ² - |k|²/2σ²: a matrix product plus per-row terms, so with the L2
// magnitude |k|²/(2√D) the key terms cancel exactly and the result is softmax(QKᵀ/√D).
struct rbf {
  double bandwidth_sq = 0; // σ²; 0 means √D

  static constexpr pairwise_op pairwise = pairwise_op::dot;
  static constexpr bool head_dependent = false;
  static constexpr bool kernel_value_form = false;

  double resolved_bandwidth_sq(index_t dim) const {
    return bandwidth_sq == 0 ? std::sqrt(double(dim)) : bandwidth_sq;
  }

  template <class T>
  struct bound {
    index_t dim;
    double bandwidth_sq;
    T inverse_bandwidth_sq;
    double negative_half_inverse_bandwidth_sq; // −1/2σ², a product per key instead of a division

    static constexpr bool device_hooks = true; // the row hooks below compile for the GPU too
    IKA_HOST_DEVICE index_t feature_dim() const { return dim; }
    IKA_HOST_DEVICE double prepare_query(index_t, const T* x, T* features) const {
      for (index_t d = 0; d < dim; ++d) features[d] = x[d] * inverse_bandwidth_sq;
      return row_term(x);
    }
    IKA_HOST_DEVICE double prepare_key(index_t, const T* x, T* features) const {
      for (index_t d = 0; d < dim; ++d) features[d] = x[d];
      return row_term(x);
    }
    // key features are the rows; their terms in blocks, the |k|² of W keys reduced together (the
    // L2 norm's block hook sums the same way and scales by the same 1/2σ² = 1/2√D, so that its
    // magnitude and this term cancel exactly)
    static constexpr bool key_features_are_rows = true;
    void key_terms(index_t, const T* const* x, index_t n, double* terms) const {
      simd::row_sums_of_squares(x, n, dim, [&](index_t r, T sum) { terms[r] = double(sum) * negative_half_inverse_bandwidth_sq; });
    }
    IKA_HOST_DEVICE double row_term(const T* x) const {
      return -double(simd::row_sum_of_squares(x, dim)) / (2 * bandwidth_sq);
    }
    double key_term_square_scale() const { return negative_half_inverse_bandwidth_sq; } // term = −|k|²/2σ²
    template <class V>
    V log_kernel(const V& s) const { return s; } // scalar or batch (CPU)
    IKA_HOST_DEVICE T log_kernel(T s) const { return s; }

    // backward hooks: d log κ / ds, and the chain through prepare_* (features and row term) to x
    static constexpr bool log_kernel_is_identity = true; // the backward may skip the epilogue's chain rule
    IKA_HOST_DEVICE T log_kernel_derivative(T) const { return T(1); }
    IKA_HOST_DEVICE void prepare_query_backward(index_t, const T* x, const T* dfeatures, double dterm, T* dx) const {
      for (index_t d = 0; d < dim; ++d) dx[d] += dfeatures[d] * inverse_bandwidth_sq - T(dterm) * x[d] * inverse_bandwidth_sq;
    }
    IKA_HOST_DEVICE void prepare_key_backward(index_t, const T* x, const T* dfeatures, double dterm, T* dx) const {
      for (index_t d = 0; d < dim; ++d) dx[d] += dfeatures[d] - T(dterm) * x[d] * inverse_bandwidth_sq;
    }
  };

  template <class T>
  bound<T> bind(index_t /*heads*/, index_t dim) const {
    detail::require(bandwidth_sq == 0 || (std::isfinite(bandwidth_sq) && bandwidth_sq > 0), "rbf.bandwidth_sq",
                    "a finite value > 0 (or 0 for the default √D), got ", bandwidth_sq);
    const double s2 = resolved_bandwidth_sq(dim);
    return {dim, s2, T(1.0 / s2), -1.0 / (2 * s2)};
  }
};

// log κ(q, k) = q·k · scale, scale = 1/√D unless given: plain scaled dot-product attention.
struct dot_product {
  double scale = 0; // 0 means 1/√D

  static constexpr pairwise_op pairwise = pairwise_op::dot;
  static constexpr bool head_dependent = false;
  static constexpr bool kernel_value_form = false;

  double resolved_scale(index_t dim) const { return scale == 0 ? 1.0 / std::sqrt(double(dim)) : scale; }

  template <class T>
  struct bound {
    index_t dim;
    T scale;

    static constexpr bool device_hooks = true; // the row hooks below compile for the GPU too
    IKA_HOST_DEVICE index_t feature_dim() const { return dim; }
    IKA_HOST_DEVICE double prepare_query(index_t, const T* x, T* features) const {
      for (index_t d = 0; d < dim; ++d) features[d] = x[d] * scale;
      return 0;
    }
    IKA_HOST_DEVICE double prepare_key(index_t, const T* x, T* features) const {
      for (index_t d = 0; d < dim; ++d) features[d] = x[d];
      return 0;
    }
    static constexpr bool key_features_are_rows = true;
    void key_terms(index_t, const T* const*, index_t n, double* terms) const { std::fill(terms, terms + n, 0.0); }
    template <class V>
    V log_kernel(const V& s) const { return s; } // scalar or batch (CPU)
    IKA_HOST_DEVICE T log_kernel(T s) const { return s; }

    static constexpr bool log_kernel_is_identity = true;
    IKA_HOST_DEVICE T log_kernel_derivative(T) const { return T(1); }
    IKA_HOST_DEVICE void prepare_query_backward(index_t, const T*, const T* dfeatures, double, T* dx) const {
      for (index_t d = 0; d < dim; ++d) dx[d] += dfeatures[d] * scale;
    }
    IKA_HOST_DEVICE void prepare_key_backward(index_t, const T*, const T* dfeatures, double, T* dx) const {
      for (index_t d = 0; d < dim; ++d) dx[d] += dfeatures[d];
    }
  };

  template <class T>
  bound<T> bind(index_t, index_t dim) const {
    detail::require(scale == 0 || std::isfinite(scale), "dot_product.scale", "a finite value, got ", scale);
    return {dim, T(resolved_scale(dim))};
  }
};

// log κ(q, k) = -|q - k|₁ / σ with σ = D^¼ unless given (σ² = √D, the library-wide default).
// Not a matrix product: the engine runs a pairwise L1 pass over the same packed panels.
struct laplacian {
  double bandwidth = 0; // σ; 0 means D^¼

  static constexpr pairwise_op pairwise = pairwise_op::l1_distance;
  static constexpr bool head_dependent = false;
  static constexpr bool kernel_value_form = false;

  double resolved_bandwidth(index_t dim) const { return bandwidth == 0 ? std::pow(double(dim), 0.25) : bandwidth; }

  template <class T>
  struct bound {
    index_t dim;
    T negative_inverse_bandwidth;

    static constexpr bool device_hooks = true; // the row hooks below compile for the GPU too
    IKA_HOST_DEVICE index_t feature_dim() const { return dim; }
    IKA_HOST_DEVICE double prepare_query(index_t, const T* x, T* features) const {
      for (index_t d = 0; d < dim; ++d) features[d] = x[d];
      return 0;
    }
    IKA_HOST_DEVICE double prepare_key(index_t h, const T* x, T* features) const { return prepare_query(h, x, features); }
    static constexpr bool key_features_are_rows = true;
    void key_terms(index_t, const T* const*, index_t n, double* terms) const { std::fill(terms, terms + n, 0.0); }
    template <class V>
    V log_kernel(const V& s) const { return s * V(negative_inverse_bandwidth); } // scalar or batch (CPU)
    IKA_HOST_DEVICE T log_kernel(T s) const { return s * negative_inverse_bandwidth; }

    // backward: the features are the row itself; d|a − b|/da = sign(a − b) is the engine's part
    IKA_HOST_DEVICE T log_kernel_derivative(T) const { return negative_inverse_bandwidth; }
    IKA_HOST_DEVICE void prepare_query_backward(index_t, const T*, const T* dfeatures, double, T* dx) const {
      for (index_t d = 0; d < dim; ++d) dx[d] += dfeatures[d];
    }
    IKA_HOST_DEVICE void prepare_key_backward(index_t h, const T* x, const T* dfeatures, double dterm, T* dx) const {
      prepare_query_backward(h, x, dfeatures, dterm, dx);
    }
  };

  template <class T>
  bound<T> bind(index_t, index_t dim) const {
    detail::require(bandwidth == 0 || (std::isfinite(bandwidth) && bandwidth > 0), "laplacian.bandwidth",
                    "a finite value > 0 (or 0 for the default D^(1/4)), got ", bandwidth);
    return {dim, T(-1.0 / resolved_bandwidth(dim))};
  }
};

} // namespace ika
