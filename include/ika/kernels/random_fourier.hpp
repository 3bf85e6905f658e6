// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <memory>
#include <numbers>
#include <type_traits>
#include <vector>

#include "ika/core/aligned_buffer.hpp"
#include "ika/core/error.hpp"
#include "ika/core/random.hpp"
#include "ika/kernels/kernel_traits.hpp"
#include "ika/simd/simd.hpp"

namespace ika {

// Spectral points, shape (heads, D, M): per head a [D, M] matrix, as SPEC §3 writes Ω_h.
// heads may be 1 (shared by every attention head) or the number of query heads.
template <class S>
struct spectral_view {
  S* data = nullptr;
  index_t heads = 0, dim = 0, count = 0;
  index_t head_stride = 0, dim_stride = 0, count_stride = 1;

  IKA_HOST_DEVICE S& operator()(index_t h, index_t d, index_t m) const {
    return data[h * head_stride + d * dim_stride + m * count_stride];
  }

  template <class U = S, class = std::enable_if_t<!std::is_const_v<U>>>
  operator spectral_view<const U>() const {
    return {data, heads, dim, count, head_stride, dim_stride, count_stride};
  }
};

// Contiguous (H, D, M).
template <class S>
spectral_view<S> spectral(S* data, index_t heads, index_t dim, index_t count) {
  return {data, heads, dim, count, dim * count, count, 1};
}

// How the random-feature estimate k̂ = φ(q)ᵀφ(k) becomes a positive kernel value.
enum class rff_estimate {
  squared, // κ̂ = k̂² + ε (public code; positive semi-definite by the Schur product)
  clamp    // κ̂ = max(k̂, ε)
};

namespace detail {

// Spectral points owned by a kernel that drew them from a seed: N(0, scale² I), shape (H, D, M).
template <class S>
struct owned_spectral {
  std::shared_ptr<const std::vector<S>> storage;
  spectral_view<const S> view;
};

template <class S>
owned_spectral<S> draw_normal_points(std::uint64_t seed, std::uint64_t stream, index_t heads, index_t dim,
                                     index_t count, double scale) {
  require(heads > 0 && dim > 0 && count > 0, "from_seed(heads, dim, count)", "sizes > 0, got (", heads, ", ", dim,
          ", ", count, ")");
  auto points = std::make_shared<std::vector<S>>(std::size_t(heads * dim * count));
  const counter_rng rng(seed);
  for (std::size_t i = 0; i < points->size(); ++i) (*points)[i] = S(scale * rng.normal(stream, i));
  auto view = spectral(static_cast<const S*>(points->data()), heads, dim, count);
  return {std::move(points), view};
}

template <class S>
void check_spectral(const spectral_view<const S>& w, std::string_view name, index_t heads, index_t dim) {
  require(w.data != nullptr, name, "spectral points (a non-empty view), got a null view");
  require(w.heads == 1 || w.heads == heads, name, "shape (1 or ", heads, ", ", dim, ", M) for ", heads,
          " query heads of dimension ", dim, ", got (", w.heads, ", ", w.dim, ", ", w.count, ")");
  require(w.dim == dim, name, "shape (", w.heads, ", ", dim, ", M) to match the query dimension ", dim, ", got (",
          w.heads, ", ", w.dim, ", ", w.count, ")");
  require(w.count > 0, name, "at least one spectral point (M > 0), got M = ", w.count);
}

// Ω packed for the engine: per head [D][M_pad] with the spectral factor folded in, so the
// projections z = Ωᵀx of consecutive points are broadcast-FMA chains over d. M_pad is a multiple
// of `group` vectors, the points one projection block computes per row.
template <class T>
struct packed_spectral {
  static constexpr index_t group = 2;
  static constexpr index_t block = group * index_t(simd::width<T>);
  index_t heads = 0, dim = 0, count = 0, padded = 0;
  double factor = 1;  // z = factor · Ωᵀx
  T* data = nullptr; // storage_size(w) values, owned by the caller (the bound kernel's arena)

  template <class S>
  static std::size_t storage_size(const spectral_view<const S>& w) {
    return std::size_t(w.heads * w.dim * ((w.count + block - 1) / block * block));
  }

  template <class S>
  packed_spectral(const spectral_view<const S>& w, double factor, T* storage)
      : heads(w.heads), dim(w.dim), count(w.count), padded((w.count + block - 1) / block * block), factor(factor),
        data(storage) {
    // once per call of an engine: a contiguous row of points is a loop the compiler vectorises
    // (through the strided accessor, after a full fill, 8 heads of Yaglom M = 64 took 11 µs, now 5.4)
    for (index_t h = 0; h < heads; ++h)
      for (index_t d = 0; d < dim; ++d) {
        T* row = data + (h * dim + d) * padded;
        const S* src = &w(h, d, 0);
        if (w.count_stride == 1)
          for (index_t m = 0; m < count; ++m) row[m] = T(factor * double(src[m]));
        else
          for (index_t m = 0; m < count; ++m) row[m] = T(factor * double(src[m * w.count_stride]));
        std::fill(row + count, row + padded, T(0));
      }
  }
  IKA_HOST_DEVICE const T* head(index_t h) const { return data + (heads == 1 ? 0 : h) * dim * padded; }

  // (factor · Ω_hᵀ x)[m] for one row and one point: the GPU's per-thread feature map
  IKA_HOST_DEVICE T project_point(index_t h, const T* x, index_t m) const {
    const T* omega = head(h) + m;
    T z = 0;
    for (index_t d = 0; d < dim; ++d) z += x[d] * omega[d * padded];
    return z;
  }

  // The same points where copy(host values, n) puts them (GPU memory, for the CUDA engine).
  template <class Copy>
  packed_spectral placed(Copy&& copy) const {
    packed_spectral moved = *this;
    moved.data = copy(data, std::size_t(heads * dim * padded));
    return moved;
  }

  // z[0:count] = factor · Ω_hᵀ x for one row (the backward's recomputation)
  IKA_HOST_DEVICE void project_row(index_t h, const T* x, T* z) const {
    const T* omega = head(h);
    for (index_t m = 0; m < count; ++m) z[m] = T(0);
    for (index_t d = 0; d < dim; ++d) {
      const T xd = x[d];
      const T* w = omega + d * padded;
      for (index_t m = 0; m < count; ++m) z[m] += xd * w[m];
    }
  }
  // dx += factor · Ω_h dz: the pull-back of project_row
  IKA_HOST_DEVICE void project_row_backward(index_t h, const T* dz, T* dx) const {
    const T* omega = head(h);
    for (index_t d = 0; d < dim; ++d) {
#if defined(__CUDA_ARCH__)
      T sum = 0;
      for (index_t m = 0; m < count; ++m) sum += omega[d * padded + m] * dz[m];
      dx[d] += sum;
#else
      dx[d] += simd::dot(omega + d * padded, dz, count);
#endif
    }
  }
  // out(h, d, m) += factor · G[d][m] for G of row stride ld: Σ_rows x ⊗ dz, pulled back to Ω
  template <class U>
  void add_spectral_gradient(index_t h, const U* G, index_t ld, const spectral_view<U>& out) const {
    for (index_t d = 0; d < dim; ++d)
      for (index_t m = 0; m < count; ++m) out(h, d, m) += U(factor) * G[d * ld + m];
  }

  // Rows projected together: each load of Ω serves that many rows, rows × group vectors of
  // points held in registers (a small GEMM, register-blocked like the engine's tile_product).
  static constexpr index_t rows = simd::vector_registers >= 32 ? 8 : 6; // bench/results/blocking/feature_rows.md

  // z[r·group + g] = (Ω_hᵀ x_r)[m0 + g·W : m0 + (g+1)·W] for r < Rows, g < group. Each row's sum
  // runs over d in the same order whatever Rows is, so a row's result does not depend on it.
  template <index_t Rows = rows>
  void project(index_t h, const T* const* x, index_t m0, simd::batch<T>* z) const {
    constexpr index_t W = simd::width<T>;
    static_assert(group == 2, "project computes two vectors of points per row");
    const T* omega = head(h) + m0;
    simd::batch<T> acc[Rows][2];
#pragma GCC unroll 16
    for (index_t r = 0; r < Rows; ++r) acc[r][0] = acc[r][1] = simd::batch<T>(T(0));
    for (index_t d = 0; d < dim; ++d) {
      const simd::batch<T> w0 = simd::load(omega + d * padded), w1 = simd::load(omega + d * padded + W);
#pragma GCC unroll 16
      for (index_t r = 0; r < Rows; ++r) {
        const simd::batch<T> xd(x[r][d]);
        acc[r][0] = xsimd::fma(xd, w0, acc[r][0]);
        acc[r][1] = xsimd::fma(xd, w1, acc[r][1]);
      }
    }
#pragma GCC unroll 16
    for (index_t r = 0; r < Rows; ++r) {
      z[2 * r] = acc[r][0];
      z[2 * r + 1] = acc[r][1];
    }
  }
};

// body(std::integral_constant<index_t, R>) with R the block size that serves n rows: 1 for one row
// (a decode's query, a key appended to a cache: a full block would map the same row `rows` times),
// 4 for up to 4 (AVX-512's blocks are 8 rows), else Max.
template <index_t Max, class Body>
IKA_ALWAYS_INLINE void by_row_count(index_t n, Body&& body) {
  if (n == 1) body(std::integral_constant<index_t, 1>{});
  else if (Max > 4 && n <= 4) body(std::integral_constant<index_t, (Max > 4 ? 4 : Max)>{});
  else body(std::integral_constant<index_t, Max>{});
}

// Up to `rows` row pointers, the missing ones repeating the first (their results are dropped).
template <class T, index_t Rows>
struct row_block {
  const T* x[Rows];
  row_block(const T* const* rows, index_t n) {
    for (index_t r = 0; r < Rows; ++r) x[r] = rows[r < n ? r : 0];
  }
};

// features[m : m+W] = c and features[M + m : M + m + W] = s, for the points below M.
template <class T>
void store_feature_pair(T* features, index_t M, index_t m, const simd::batch<T>& c, const simd::batch<T>& s) {
  constexpr index_t W = simd::width<T>;
  if (m >= M) return;
  if (m + W <= M) {
    simd::store(features + m, c);
    simd::store(features + M + m, s);
    return;
  }
  alignas(64) T lanes[W];
  c.store_aligned(lanes);
  std::copy(lanes, lanes + (M - m), features + m);
  s.store_aligned(lanes);
  std::copy(lanes, lanes + (M - m), features + M + m);
}

// What the bound random-feature kernels share: the epilogue (log κ̂ from k̂) and the one-row
// hooks, written in terms of Derived's block hook prepare_rows.
template <class Derived, class T>
struct rff_bound_common {
  rff_estimate estimate;
  double epsilon;

  // scalar or batch (CPU); the scalar overloads are the GPU's (see simd.hpp)
  template <class V>
  V kernel_value(const V& s) const {
    using E = simd::scalar_of_t<V>;
    if (estimate == rff_estimate::squared) return simd::fma(s, s, V(E(epsilon)));
    return simd::max(s, V(E(epsilon)));
  }
  template <class V>
  V log_kernel(const V& s) const { return simd::log(kernel_value(s)); }
  IKA_HOST_DEVICE T kernel_value(T s) const {
    return estimate == rff_estimate::squared ? simd::fma(s, s, T(epsilon)) : simd::max(s, T(epsilon));
  }
  IKA_HOST_DEVICE T log_kernel(T s) const { return simd::log(kernel_value(s)); }
  IKA_HOST_DEVICE T log_kernel_derivative(T s) const {
    if (estimate == rff_estimate::squared) return T(2) * s / (s * s + T(epsilon));
    return s > T(epsilon) ? T(1) / s : T(0);
  }

  // one row: the block hook on the CPU, one thread's loop over the points on the GPU
  IKA_HOST_DEVICE double prepare_query(index_t h, const T* x, T* features) const {
#if defined(__CUDA_ARCH__)
    static_cast<const Derived&>(*this).features_of_row(h, x, features);
    return 0;
#else
    double term;
    static_cast<const Derived&>(*this).prepare_rows(h, &x, 1, features, &term);
    return term;
#endif
  }
  IKA_HOST_DEVICE double prepare_key(index_t h, const T* x, T* features) const { return prepare_query(h, x, features); }
};

// σ² of a seeded draw: the argument, or √dim for 0.
inline double seed_bandwidth_sq(double bandwidth_sq, index_t dim) {
  require(bandwidth_sq == 0 || (std::isfinite(bandwidth_sq) && bandwidth_sq > 0), "from_seed.bandwidth_sq",
          "a finite value > 0 (or 0 for √D), got ", bandwidth_sq);
  return bandwidth_sq == 0 ? std::sqrt(double(dim)) : bandwidth_sq;
}

inline void check_epsilon(double epsilon, std::string_view name) {
  require(std::isfinite(epsilon) && epsilon > 0, name, "a finite value > 0, got ", epsilon);
}

} // namespace detail

// Stationary random Fourier features (Bochner): φ(x) = M^-½ [cos(Ωᵀx), sin(Ωᵀx)],
// log κ = log(k̂² + ε). With Ω ~ N(0, σ⁻² I) (from_seed) it approximates the rbf kernel.
template <class S = double>
struct random_fourier {
  spectral_view<const S> omega;
  rff_estimate estimate = rff_estimate::squared;
  double epsilon = 1e-5;
  std::shared_ptr<const std::vector<S>> storage = {}; // set when the points were drawn here

  static constexpr pairwise_op pairwise = pairwise_op::dot;
  static constexpr bool head_dependent = true;
  static constexpr bool kernel_value_form = true;

  // Ω ~ N(0, σ⁻² I) with σ² = bandwidth_sq (0: √dim): a fixed RFF approximation of rbf.
  static random_fourier from_seed(std::uint64_t seed, index_t heads, index_t dim, index_t count,
                                  double bandwidth_sq = 0) {
    const double s2 = detail::seed_bandwidth_sq(bandwidth_sq, dim);
    auto owned = detail::draw_normal_points<S>(seed, 0, heads, dim, count, 1.0 / std::sqrt(s2));
    random_fourier k;
    k.omega = owned.view;
    k.storage = std::move(owned.storage);
    return k;
  }

  template <class T>
  struct bound : detail::rff_bound_common<bound<T>, T> {
    detail::packed_spectral<T> omega;
    T feature_scale;

    static constexpr bool device_hooks = true; // after device_copy: the points in GPU memory
    IKA_HOST_DEVICE index_t feature_dim() const { return 2 * omega.count; }
    template <class Copy>
    bound device_copy(Copy&& copy) const {
      bound moved = *this;
      moved.omega = omega.placed(copy);
      return moved;
    }
    IKA_HOST_DEVICE void features_of_row(index_t h, const T* x, T* features) const {
      const index_t M = omega.count;
      for (index_t m = 0; m < M; ++m) {
        const T z = omega.project_point(h, x, m);
        features[m] = feature_scale * std::cos(z);
        features[M + m] = feature_scale * std::sin(z);
      }
    }
    static constexpr index_t rows_per_block = detail::packed_spectral<T>::rows;

    // Features of n <= rows_per_block rows at once (queries and keys share the map), row stride F.
    void prepare_rows(index_t h, const T* const* x, index_t n, T* features, double* terms) const {
      detail::by_row_count<rows_per_block>(n, [&](auto rows) { map_rows<decltype(rows)::value>(h, x, n, features); });
      std::fill(terms, terms + n, 0.0);
    }
    template <index_t R>
    void map_rows(index_t h, const T* const* x, index_t n, T* features) const {
      constexpr index_t W = simd::width<T>, G = detail::packed_spectral<T>::group;
      const index_t M = omega.count, F = 2 * M;
      const simd::batch<T> scale(feature_scale);
      const detail::row_block<T, R> block(x, n);
      simd::batch<T> z[R * G];
      for (index_t m0 = 0; m0 < omega.padded; m0 += G * W) {
        omega.template project<R>(h, block.x, m0, z);
        for (index_t r = 0; r < n; ++r)
          for (index_t g = 0; g < G; ++g) {
            const auto [s, c] = simd::sincos(z[r * G + g]);
            detail::store_feature_pair(features + r * F, M, m0 + g * W, c * scale, s * scale);
          }
      }
    }

    // backward: z = Ωᵀx per row; dz = d loss/dz (length projection_dim()), dx += Ω dz
    static constexpr int spectral_tensors = 1;
    index_t spectral_heads() const { return omega.heads; }
    IKA_HOST_DEVICE double spectral_factor(int) const { return omega.factor; } // z = factor · Ωᵀx
    IKA_HOST_DEVICE index_t projection_dim() const { return omega.count; }
    IKA_HOST_DEVICE void feature_backward(index_t h, const T* x, const T* dfeatures, T* dx, T* dz) const {
      const index_t M = omega.count;
      omega.project_row(h, x, dz);
      for (index_t m = 0; m < M; ++m) {
        const T z = dz[m];
        dz[m] = feature_scale * (-std::sin(z) * dfeatures[m] + std::cos(z) * dfeatures[M + m]);
      }
      omega.project_row_backward(h, dz, dx);
    }
    // d Ω_h += G, G = Σ_rows x ⊗ dz of one head (D × projection_dim(), row stride ld)
    template <class U>
    void add_spectral_gradient(index_t h, const U* G, index_t ld, const std::array<spectral_view<U>, 2>& out) const {
      omega.add_spectral_gradient(h, G, ld, out[0]);
    }
  };

  template <class T>
  bound<T> bind(index_t heads, index_t dim) const {
    detail::check_spectral(omega, "random_fourier.omega", heads, dim);
    detail::check_epsilon(epsilon, "random_fourier.epsilon");
    // the packed points live in this thread's arena until the next bind of this kernel type
    T* storage = detail::scratch_arena::parts<random_fourier, T, 1>({detail::packed_spectral<T>::storage_size(omega)})[0];
    return {{estimate, epsilon}, detail::packed_spectral<T>(omega, 1.0, storage), T(1.0 / std::sqrt(double(omega.count)))};
  }
};

// Non-stationary random Fourier features (Yaglom), the estimator of the public code:
// φ(x) = (4M)^-½ [cos(2πW₁ᵀx) + cos(2πW₂ᵀx), sin(2πW₁ᵀx) + sin(2πW₂ᵀx)], log κ = log(k̂² + ε).
template <class S = double>
struct yaglom_rff {
  spectral_view<const S> w1, w2;
  rff_estimate estimate = rff_estimate::squared;
  double epsilon = 1e-5;
  std::shared_ptr<const std::vector<S>> storage = {};

  static constexpr pairwise_op pairwise = pairwise_op::dot;
  static constexpr bool head_dependent = true;
  static constexpr bool kernel_value_form = true;

  // W₁, W₂ drawn independently from N(0, (2πσ)⁻² I), so each 2πWᵢ is N(0, σ⁻² I).
  static yaglom_rff from_seed(std::uint64_t seed, index_t heads, index_t dim, index_t count, double bandwidth_sq = 0) {
    const double s2 = detail::seed_bandwidth_sq(bandwidth_sq, dim);
    const double scale = 1.0 / (2 * std::numbers::pi * std::sqrt(s2));
    auto a = detail::draw_normal_points<S>(seed, 0, heads, dim, count, scale);
    auto b = detail::draw_normal_points<S>(seed, 1, heads, dim, count, scale);
    // one allocation holds both, so the kernel stays a single shared owner
    auto both = std::make_shared<std::vector<S>>(*a.storage);
    both->insert(both->end(), b.storage->begin(), b.storage->end());
    yaglom_rff k;
    const index_t n = heads * dim * count;
    k.w1 = spectral(static_cast<const S*>(both->data()), heads, dim, count);
    k.w2 = spectral(static_cast<const S*>(both->data() + n), heads, dim, count);
    k.storage = std::move(both);
    return k;
  }

  template <class T>
  struct bound : detail::rff_bound_common<bound<T>, T> {
    detail::packed_spectral<T> w1, w2;
    T feature_scale;

    static constexpr bool device_hooks = true; // after device_copy: the points in GPU memory
    IKA_HOST_DEVICE index_t feature_dim() const { return 2 * w1.count; }
    template <class Copy>
    bound device_copy(Copy&& copy) const {
      bound moved = *this;
      moved.w1 = w1.placed(copy);
      moved.w2 = w2.placed(copy);
      return moved;
    }
    IKA_HOST_DEVICE void features_of_row(index_t h, const T* x, T* features) const {
      const index_t M = w1.count;
      for (index_t m = 0; m < M; ++m) {
        const T a = w1.project_point(h, x, m), b = w2.project_point(h, x, m);
        features[m] = feature_scale * (std::cos(a) + std::cos(b));
        features[M + m] = feature_scale * (std::sin(a) + std::sin(b));
      }
    }
    static constexpr index_t rows_per_block = detail::packed_spectral<T>::rows;

    // Features of n <= rows_per_block rows at once (queries and keys share the map), row stride F.
    void prepare_rows(index_t h, const T* const* x, index_t n, T* features, double* terms) const {
      detail::by_row_count<rows_per_block>(n, [&](auto rows) { map_rows<decltype(rows)::value>(h, x, n, features); });
      std::fill(terms, terms + n, 0.0);
    }
    template <index_t R>
    void map_rows(index_t h, const T* const* x, index_t n, T* features) const {
      constexpr index_t W = simd::width<T>, G = detail::packed_spectral<T>::group;
      const index_t M = w1.count, F = 2 * M;
      const simd::batch<T> scale(feature_scale);
      const detail::row_block<T, R> block(x, n);
      simd::batch<T> za[R * G], zb[R * G];
      for (index_t m0 = 0; m0 < w1.padded; m0 += G * W) {
        w1.template project<R>(h, block.x, m0, za);
        w2.template project<R>(h, block.x, m0, zb);
        for (index_t r = 0; r < n; ++r)
          for (index_t g = 0; g < G; ++g) {
            const auto [sa, ca] = simd::sincos(za[r * G + g]);
            const auto [sb, cb] = simd::sincos(zb[r * G + g]);
            detail::store_feature_pair(features + r * F, M, m0 + g * W, (ca + cb) * scale, (sa + sb) * scale);
          }
      }
    }

    // backward: a = 2πW₁ᵀx, b = 2πW₂ᵀx; dz = [d loss/da, d loss/db]
    static constexpr int spectral_tensors = 2;
    index_t spectral_heads() const { return w1.heads; }
    IKA_HOST_DEVICE double spectral_factor(int t) const { return t == 0 ? w1.factor : w2.factor; } // 2π
    IKA_HOST_DEVICE index_t projection_dim() const { return 2 * w1.count; }
    IKA_HOST_DEVICE void feature_backward(index_t h, const T* x, const T* dfeatures, T* dx, T* dz) const {
      const index_t M = w1.count;
      w1.project_row(h, x, dz);
      w2.project_row(h, x, dz + M);
      for (index_t m = 0; m < 2 * M; ++m) {
        const T z = dz[m];
        dz[m] = feature_scale * (-std::sin(z) * dfeatures[m % M] + std::cos(z) * dfeatures[M + m % M]);
      }
      w1.project_row_backward(h, dz, dx);
      w2.project_row_backward(h, dz + M, dx);
    }
    template <class U>
    void add_spectral_gradient(index_t h, const U* G, index_t ld, const std::array<spectral_view<U>, 2>& out) const {
      w1.add_spectral_gradient(h, G, ld, out[0]);
      w2.add_spectral_gradient(h, G + w1.count, ld, out[1]);
    }
  };

  template <class T>
  bound<T> bind(index_t heads, index_t dim) const {
    detail::check_spectral(w1, "yaglom_rff.w1", heads, dim);
    detail::check_spectral(w2, "yaglom_rff.w2", heads, dim);
    detail::require(w1.heads == w2.heads && w1.count == w2.count, "yaglom_rff.w2", "the shape of w1 (", w1.heads, ", ",
                    w1.dim, ", ", w1.count, "), got (", w2.heads, ", ", w2.dim, ", ", w2.count, ")");
    detail::check_epsilon(epsilon, "yaglom_rff.epsilon");
    const double two_pi = 2 * std::numbers::pi;
    // the packed points live in this thread's arena until the next bind of this kernel type
    const std::size_t size = detail::packed_spectral<T>::storage_size(w1);
    const auto storage = detail::scratch_arena::parts<yaglom_rff, T, 2>({size, size});
    return {{estimate, epsilon}, detail::packed_spectral<T>(w1, two_pi, storage[0]),
            detail::packed_spectral<T>(w2, two_pi, storage[1]), T(1.0 / std::sqrt(4.0 * double(w1.count)))};
  }
};

namespace detail {
// How many spectral tensors a kernel type holds: Ω of random_fourier, W₁ and W₂ of yaglom_rff.
template <class Kernel>
inline constexpr int spectral_tensor_count = 0;
template <class S>
inline constexpr int spectral_tensor_count<random_fourier<S>> = 1;
template <class S>
inline constexpr int spectral_tensor_count<yaglom_rff<S>> = 2;

// The spectral tensors of a kernel, in the order of attention_grads::dspectral.
template <class S>
std::array<spectral_view<const S>, 2> spectral_points(const random_fourier<S>& k) {
  return {k.omega, {}};
}
template <class S>
std::array<spectral_view<const S>, 2> spectral_points(const yaglom_rff<S>& k) {
  return {k.w1, k.w2};
}
} // namespace detail

template <class S, class... Options>
random_fourier(spectral_view<S>, Options...) -> random_fourier<std::remove_const_t<S>>;
template <class S, class... Options>
yaglom_rff(spectral_view<S>, spectral_view<S>, Options...) -> yaglom_rff<std::remove_const_t<S>>;

} // namespace ika
