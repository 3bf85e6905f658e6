// SPDX-License-Identifier: MIT
#pragma once

// The only header that touches xsimd. Everything above it speaks ika::simd, written so that a
// policy hook can be one template for a scalar (float, double) and for a SIMD batch.
// xsimd 8.1 names: hadd (later reduce_add). Without -march xsimd picks SSE2 on x86-64.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include <xsimd/xsimd.hpp>

#include "ika/core/config.hpp"

namespace ika::simd {

template <class T>
using batch = xsimd::batch<T>;

template <class T>
inline constexpr std::size_t width = batch<T>::size;

// Number of architectural vector registers: decides the micro-kernel's register block.
inline constexpr int vector_registers =
#if defined(__AVX512F__)
    32;
#else
    16;
#endif

template <class T>
struct is_batch : std::false_type {};
template <class T, class A>
struct is_batch<xsimd::batch<T, A>> : std::true_type {};

// The element type of a scalar or of a batch.
template <class V>
struct scalar_of {
  using type = V;
};
template <class T, class A>
struct scalar_of<xsimd::batch<T, A>> {
  using type = T;
};
template <class V>
using scalar_of_t = typename scalar_of<V>::type;

template <class T>
IKA_ALWAYS_INLINE batch<T> load(const T* p) { return batch<T>::load_unaligned(p); }
template <class T>
IKA_ALWAYS_INLINE void store(T* p, const batch<T>& v) { v.store_unaligned(p); }

// ---- one spelling for scalars and batches ---------------------------------------------------
// The templates are host code (a batch may not appear in GPU code, even in a template's unused
// device instance); the scalar overloads below them are what GPU code calls, and what host code
// calls for a scalar too (a non-template overload wins).
template <class V>
IKA_ALWAYS_INLINE V fma(const V& a, const V& b, const V& c) {
  if constexpr (is_batch<V>::value) return xsimd::fma(a, b, c);
  else return a * b + c;
}
template <class V>
IKA_ALWAYS_INLINE V exp(const V& x) {
  if constexpr (is_batch<V>::value) return xsimd::exp(x);
  else return std::exp(x);
}
template <class V>
IKA_ALWAYS_INLINE V log(const V& x) {
  if constexpr (is_batch<V>::value) return xsimd::log(x);
  else return std::log(x);
}
template <class V>
IKA_ALWAYS_INLINE V abs(const V& x) {
  if constexpr (is_batch<V>::value) return xsimd::abs(x);
  else return std::abs(x);
}
template <class V>
IKA_ALWAYS_INLINE V max(const V& a, const V& b) {
  if constexpr (is_batch<V>::value) return xsimd::max(a, b);
  else return a < b ? b : a;
}
#define IKA_SIMD_SCALAR_OVERLOADS(T)                                                                       \
  IKA_HOST_DEVICE inline T fma(T a, T b, T c) { return a * b + c; }                                       \
  IKA_HOST_DEVICE inline T exp(T x) { return std::exp(x); }                                               \
  IKA_HOST_DEVICE inline T log(T x) { return std::log(x); }                                               \
  IKA_HOST_DEVICE inline T abs(T x) { return std::abs(x); }                                               \
  IKA_HOST_DEVICE inline T max(T a, T b) { return a < b ? b : a; }
IKA_SIMD_SCALAR_OVERLOADS(float)
IKA_SIMD_SCALAR_OVERLOADS(double)
#undef IKA_SIMD_SCALAR_OVERLOADS

// |x|^p for p > 0, with 0^p = 0 (the log form alone would give exp(-inf) = 0 too, kept explicit).
template <class V, class T>
IKA_ALWAYS_INLINE V pow_abs(const V& x, T p) {
  if constexpr (is_batch<V>::value) {
    const V a = xsimd::abs(x);
    return xsimd::select(a == V(T(0)), V(T(0)), xsimd::exp(V(p) * xsimd::log(a)));
  } else {
    return std::pow(std::abs(x), p);
  }
}

// x[i] = |x[i]|^y for n values, W at a time; the last, partial vector is padded and computed the
// same way, so a value's result does not depend on its position among the n.
template <class T>
void pow_abs_each(T* x, std::ptrdiff_t n, T y) {
  constexpr std::ptrdiff_t W = width<T>;
  for (std::ptrdiff_t i0 = 0; i0 < n; i0 += W) {
    const std::ptrdiff_t m = std::min(W, n - i0);
    alignas(64) T lanes[W];
    for (std::ptrdiff_t u = 0; u < W; ++u) lanes[u] = u < m ? x[i0 + u] : T(1);
    pow_abs(batch<T>::load_aligned(lanes), y).store_aligned(lanes);
    std::copy(lanes, lanes + m, x + i0);
  }
}

// (sin x, cos x) lane by lane. float: x reduced by π/2 in three parts with FMA (exact for
// |x| <= 8192, Cephes' split), Cephes' minimax polynomials on [−π/4, π/4], the quadrant's swap
// and signs taken from its integer bits. xsimd's own version chooses among reduction ranges with
// horizontal tests and float compares: this one is about 1.3× faster, within 1e-7 of libm
// (tests/test_simd.cpp, bench/results/blocking/sincos.md). Batches with a lane beyond 8192 (or
// infinite) take xsimd's; double always does.
template <class T>
IKA_ALWAYS_INLINE std::pair<batch<T>, batch<T>> sincos(const batch<T>& x) {
  if constexpr (!std::is_same_v<T, float>) {
    return xsimd::sincos(x);
  } else {
    using V = batch<float>;
    using I = xsimd::batch<std::int32_t, typename V::arch_type>;
    if (xsimd::any(xsimd::abs(x) > V(8192.0f))) return xsimd::sincos(x);
    const V quadrant = xsimd::nearbyint(x * V(0.636619772367581343f)); // x · 2/π
    V r = xsimd::fnma(quadrant, V(1.5703125f), x);
    r = xsimd::fnma(quadrant, V(4.837512969970703125e-4f), r);
    r = xsimd::fnma(quadrant, V(7.54978995489188216e-8f), r);
    const V z = r * r;
    const V sin_r = xsimd::fma(z * r, xsimd::fma(xsimd::fma(V(-1.9515295891e-4f), z, V(8.3321608736e-3f)), z,
                                                 V(-1.6666654611e-1f)), r);
    const V cos_r = xsimd::fma(z * z, xsimd::fma(xsimd::fma(V(2.443315711809948e-5f), z, V(-1.388731625493765e-3f)), z,
                                                 V(4.166664568298827e-2f)), xsimd::fnma(V(0.5f), z, V(1.0f)));
    const I q = xsimd::batch_cast<std::int32_t>(quadrant);
    const V swap = xsimd::bitwise_cast<V>(I(0) - (q & I(1)));            // all ones in odd quadrants
    const V sin_sign = xsimd::bitwise_cast<V>((q & I(2)) << 30);          // quadrants 2, 3
    const V cos_sign = xsimd::bitwise_cast<V>(((q + I(1)) & I(2)) << 30); // quadrants 1, 2
    return {((swap & cos_r) | (~swap & sin_r)) ^ sin_sign, ((swap & sin_r) | (~swap & cos_r)) ^ cos_sign};
  }
}

// exp(x) for x <= 0, −∞ or NaN: the online softmax's weights exp(logit − row max), most of its
// epilogue. float: 2^k · p(r) with k = round(x·log₂e) and 2^k taken from the bits of the same
// sum that rounds it (no float-to-int conversion), r = x − k·ln 2 in two parts, and a degree-5
// polynomial through Chebyshev nodes of [−ln2/2, ln2/2] (p(0) = 1 exactly; within 2.1e-7 of e^r
// before rounding); one blend gives 0 where x < log(FLT_MIN), −∞ included. 13 vector operations
// against xsimd::exp's 18, which also handles x > 0 and overflow, within 1.3e-7 (relative error
// 2.75e-7 here; bench/results/blocking/exp_softmax/). double: xsimd::exp.
template <class T>
IKA_ALWAYS_INLINE batch<T> exp_nonpositive(const batch<T>& x) {
  if constexpr (!std::is_same_v<T, float>) {
    return xsimd::exp(x);
  } else {
    using V = batch<float>;
    using I = xsimd::batch<std::int32_t, typename V::arch_type>;
    // 1.5·2^23 + 127: adding it rounds x·log₂e to an integer k and leaves k + 127, the biased
    // exponent of 2^k, in the low mantissa bits (x·log₂e > −2^22)
    const V shifter(0x1.8p23f + 127.0f);
    const V t = xsimd::fma(x, V(0x1.715476p+0f), shifter);
    const V k = t - shifter;
    // ln 2 in two parts, the first with 9 significant bits so that k times it is exact
    V r = xsimd::fnma(k, V(0x1.63p-1f), x);
    r = xsimd::fnma(k, V(-0x1.bd0106p-13f), r);
    V q = xsimd::fma(V(0x1.120b62p-7f), r, V(0x1.570b98p-5f));
    q = xsimd::fma(q, r, V(0x1.5554dep-3f));
    q = xsimd::fma(q, r, V(0x1.fffe5ap-2f));
    q = xsimd::fma(q, r, V(1.0f));
    const V e_r = xsimd::fma(q, r, V(1.0f));
    const V two_k = xsimd::bitwise_cast<V>(xsimd::bitwise_cast<I>(t) << 23);
    // below log(FLT_MIN) 2^k is not a normal float (k + 127 <= 0): those lanes, −∞ among them,
    // give 0; NaN compares false and stays NaN
    return xsimd::select(x < V(-0x1.5d589ep+6f), V(0.0f), e_r * two_k);
  }
}

template <class T>
IKA_ALWAYS_INLINE T reduce_add(const batch<T>& v) { return xsimd::hadd(v); }

template <class T>
IKA_ALWAYS_INLINE T reduce_max(const batch<T>& v) {
  alignas(64) T lanes[width<T>];
  v.store_aligned(lanes);
  T m = lanes[0];
  for (std::size_t i = 1; i < width<T>; ++i) m = std::max(m, lanes[i]);
  return m;
}

// Lane i of the result = Σ of the lanes of rows[i], for width<T> rows: many horizontal sums at
// the cost of about one (a transposing add tree). xsimd 8.1's haddp is not used: its AVX-512 float
// version returns lanes 2–5 and 10–13 permuted.
template <class T>
IKA_ALWAYS_INLINE batch<T> reduce_add_each(const batch<T>* rows) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && width<T> == 16) {
    __m512 t[8], u[4], x[2];
    // halves: 128-bit lanes (0+2, 1+3) of rows i and i+8
    for (int i = 0; i < 8; ++i) {
      const __m512 a = rows[i], b = rows[i + 8];
      t[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
    }
    // quarters: each 128-bit lane of u[i] now holds 4 partial sums of rows i, i+8, i+4, i+12
    for (int i = 0; i < 4; ++i)
      u[i] = _mm512_add_ps(_mm512_shuffle_f32x4(t[i], t[i + 4], 0x88), _mm512_shuffle_f32x4(t[i], t[i + 4], 0xDD));
    // within 128-bit lanes: 4 × 4 partial sums -> 4 sums
    x[0] = _mm512_add_ps(_mm512_unpacklo_ps(u[0], u[1]), _mm512_unpackhi_ps(u[0], u[1]));
    x[1] = _mm512_add_ps(_mm512_unpacklo_ps(u[2], u[3]), _mm512_unpackhi_ps(u[2], u[3]));
    const __m512 y = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(x[0]), _mm512_castps_pd(x[1]))),
                                   _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(x[0]), _mm512_castps_pd(x[1]))));
    // lanes now hold rows 0-3, 8-11, 4-7, 12-15
    return batch<T>(_mm512_shuffle_f32x4(y, y, 0xD8));
  }
#endif
#if defined(__AVX__)
  if constexpr (std::is_same_v<T, float> && width<T> == 8) {
    const __m256 h01 = _mm256_hadd_ps(rows[0], rows[1]), h23 = _mm256_hadd_ps(rows[2], rows[3]);
    const __m256 h45 = _mm256_hadd_ps(rows[4], rows[5]), h67 = _mm256_hadd_ps(rows[6], rows[7]);
    const __m256 lo = _mm256_hadd_ps(h01, h23), hi = _mm256_hadd_ps(h45, h67); // [0-3 low halves | high halves]
    return batch<T>(_mm256_add_ps(_mm256_permute2f128_ps(lo, hi, 0x20), _mm256_permute2f128_ps(lo, hi, 0x31)));
  }
#endif
  alignas(64) T sums[width<T>];
  for (std::size_t i = 0; i < width<T>; ++i) sums[i] = reduce_add(rows[i]);
  return batch<T>::load_aligned(sums);
}

// ---- loops over contiguous rows, vectorised with a scalar tail ------------------------------
// (the row_* forms below are what policy hooks call: vectorised on the CPU, plain loops when nvcc
// compiles a hook for the GPU)

template <class T>
T sum_of_squares(const T* x, std::ptrdiff_t n) {
  constexpr std::ptrdiff_t W = width<T>;
  batch<T> acc(T(0));
  std::ptrdiff_t d = 0;
  for (; d + W <= n; d += W) {
    const auto v = load(x + d);
    acc = xsimd::fma(v, v, acc);
  }
  T s = reduce_add(acc);
  for (; d < n; ++d) s += x[d] * x[d];
  return s;
}

// emit(r, Σ_d power(x[r][d])) for n rows of length dim: the W rows of a group accumulate in
// vectors and are reduced together by one transposing add, instead of a horizontal sum per row.
// `power` takes a scalar or a batch.
template <class T, class Power, class Emit>
void row_sums(const T* const* x, std::ptrdiff_t n, std::ptrdiff_t dim, Power power, Emit emit) {
  constexpr std::ptrdiff_t W = width<T>;
  const std::ptrdiff_t body = dim / W * W;
  for (std::ptrdiff_t r0 = 0; r0 < n; r0 += W) {
    const std::ptrdiff_t m = std::min(W, n - r0);
    batch<T> partial[W];
    for (std::ptrdiff_t u = 0; u < W; ++u) {
      batch<T> acc(T(0));
      if (u < m)
        for (std::ptrdiff_t d = 0; d < body; d += W) acc += power(load(x[r0 + u] + d));
      partial[u] = acc;
    }
    alignas(64) T sums[W];
    reduce_add_each<T>(partial).store_aligned(sums);
    for (std::ptrdiff_t u = 0; u < m; ++u) {
      T s = sums[u];
      for (std::ptrdiff_t d = body; d < dim; ++d) s += power(x[r0 + u][d]);
      emit(r0 + u, s);
    }
  }
}

// Σ_d x[r][d]² for n rows (row_sums).
template <class T, class Emit>
void row_sums_of_squares(const T* const* x, std::ptrdiff_t n, std::ptrdiff_t dim, Emit emit) {
  row_sums(x, n, dim, [](const auto& v) { return v * v; }, emit);
}

// f(power) with power(v) = |v|^p for a scalar or a batch, decided once per call: products
// instead of exp/log for p = 1, 2, 3, 4 (p = 3 is the paper's choice).
template <class T, class F>
decltype(auto) with_abs_power(T p, F&& f) {
  if (p == T(2)) return f([](const auto& v) { return v * v; });
  if (p == T(1)) return f([](const auto& v) { return abs(v); });
  if (p == T(3)) return f([](const auto& v) { const auto a = abs(v); return a * a * a; });
  if (p == T(4)) return f([](const auto& v) { return (v * v) * (v * v); });
  return f([p](const auto& v) { return pow_abs(v, p); });
}

// Σ_d |x[r][d]|^p for n rows (row_sums).
template <class T, class Emit>
void row_sums_abs_pow(const T* const* x, std::ptrdiff_t n, std::ptrdiff_t dim, T p, Emit emit) {
  with_abs_power(p, [&](const auto& power) { row_sums(x, n, dim, power, emit); });
}

// Σ |x_d|^p (p = 2 with FMAs: sum_of_squares).
template <class T>
T sum_abs_pow(const T* x, std::ptrdiff_t n, T p) {
  if (p == T(2)) return sum_of_squares(x, n);
  return with_abs_power(p, [&](const auto& power) {
    constexpr std::ptrdiff_t W = width<T>;
    batch<T> acc(T(0));
    std::ptrdiff_t d = 0;
    for (; d + W <= n; d += W) acc += power(load(x + d));
    T s = reduce_add(acc);
    for (; d < n; ++d) s += power(x[d]);
    return s;
  });
}

template <class T>
T max_abs(const T* x, std::ptrdiff_t n) {
  constexpr std::ptrdiff_t W = width<T>;
  batch<T> acc(T(0));
  std::ptrdiff_t d = 0;
  for (; d + W <= n; d += W) acc = xsimd::max(acc, xsimd::abs(load(x + d)));
  T m = reduce_max(acc);
  for (; d < n; ++d) m = std::max(m, std::abs(x[d]));
  return m;
}

// Σ a_d b_d
template <class T>
T dot(const T* a, const T* b, std::ptrdiff_t n) {
  constexpr std::ptrdiff_t W = width<T>;
  batch<T> acc(T(0));
  std::ptrdiff_t d = 0;
  for (; d + W <= n; d += W) acc = xsimd::fma(load(a + d), load(b + d), acc);
  T s = reduce_add(acc);
  for (; d < n; ++d) s += a[d] * b[d];
  return s;
}

// y[0:n] += a * x[0:n]
template <class T>
void axpy(T* y, T a, const T* x, std::ptrdiff_t n) {
  constexpr std::ptrdiff_t W = width<T>;
  std::ptrdiff_t d = 0;
  const batch<T> va(a);
  for (; d + W <= n; d += W) store(y + d, xsimd::fma(va, load(x + d), load(y + d)));
  for (; d < n; ++d) y[d] += a * x[d];
}

// ---- hooks' row reductions, for the CPU (vectorised) and the GPU (a plain loop per thread) ----

template <class T>
IKA_HOST_DEVICE T row_sum_of_squares(const T* x, std::ptrdiff_t n) {
#if defined(__CUDA_ARCH__)
  T s = 0;
  for (std::ptrdiff_t d = 0; d < n; ++d) s += x[d] * x[d];
  return s;
#else
  return sum_of_squares(x, n);
#endif
}

template <class T>
IKA_HOST_DEVICE T row_sum_abs_pow(const T* x, std::ptrdiff_t n, T p) {
#if defined(__CUDA_ARCH__)
  T s = 0;
  for (std::ptrdiff_t d = 0; d < n; ++d) {
    const T a = x[d] < T(0) ? -x[d] : x[d];
    s += p == T(1) ? a : p == T(2) ? a * a : p == T(3) ? a * a * a : (a == T(0) ? T(0) : pow(a, p));
  }
  return s;
#else
  return sum_abs_pow(x, n, p);
#endif
}

template <class T>
IKA_HOST_DEVICE T row_max_abs(const T* x, std::ptrdiff_t n) {
#if defined(__CUDA_ARCH__)
  T m = 0;
  for (std::ptrdiff_t d = 0; d < n; ++d) m = fmax(m, x[d] < T(0) ? -x[d] : x[d]);
  return m;
#else
  return max_abs(x, n);
#endif
}

} // namespace ika::simd
