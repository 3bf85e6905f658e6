// SPDX-License-Identifier: MIT
#pragma once

// Shared helpers of the tests: seeded random tensors in the layouts ika accepts, error measures
// between two engines, and a check of the argument named by an ika::invalid_argument.

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <ika/ika.hpp>

namespace ika_test {

using ika::index_t;

// The product tests (every kernel x norm x mask) take every kernel in the release build and, under
// the sanitizers (IKA_TEST_SANITIZED, set by ika_target_sanitize), one kernel per way the engines
// obtain a key's features: the rows themselves with a key term (rbf), a pairwise score (laplacian),
// computed features (yaglom_rff). Each kernel is another instantiation of every engine, so even in
// release a test crosses every kernel in one precision only and takes the subset in the other
// (each test says which): the kernels' code is the same template in both, and what
// differs by precision (SIMD width and tails, the float exp/sincos, the tolerances) the subset
// reaches (docs/decisions.md, "Test builds").
#if defined(IKA_TEST_SANITIZED)
inline constexpr bool every_kernel = false;
#else
inline constexpr bool every_kernel = true;
#endif

enum class layout { bhld, blhd, packed };

inline const char* name(layout l) {
  switch (l) {
  case layout::bhld: return "bhld";
  case layout::blhd: return "blhd";
  default: return "packed_qkv";
  }
}

template <class T>
void fill_normal(std::vector<T>& x, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> n(0.0, scale);
  for (auto& e : x) e = T(n(gen));
}

// q, k, v in one of the layouts, owning their storage. For `packed` the three live in one
// (B, L, [Hq·D | Hkv·D | Hkv·Dv]) buffer, which needs Lq == Lk.
template <class T>
struct qkv_problem {
  index_t B, Hq, Hkv, Lq, Lk, D, Dv;
  std::vector<T> q_data, k_data, v_data, packed_data;
  ika::tensor_view<T> q, k, v;

  qkv_problem(layout l, index_t B_, index_t Hq_, index_t Hkv_, index_t Lq_, index_t Lk_, index_t D_, index_t Dv_,
              std::uint64_t seed, double scale = 1.0)
      : B(B_), Hq(Hq_), Hkv(Hkv_), Lq(Lq_), Lk(Lk_), D(D_), Dv(Dv_) {
    if (l == layout::packed) {
      packed_data.resize(std::size_t(B * Lq * (Hq * D + Hkv * D + Hkv * Dv)));
      fill_normal(packed_data, seed, scale);
      auto views = ika::packed_qkv(packed_data.data(), B, Lq, Hq, Hkv, D, Dv);
      q = views.q;
      k = views.k;
      v = views.v;
      return;
    }
    q_data.resize(std::size_t(B * Hq * Lq * D));
    k_data.resize(std::size_t(B * Hkv * Lk * D));
    v_data.resize(std::size_t(B * Hkv * Lk * Dv));
    fill_normal(q_data, seed, scale);
    fill_normal(k_data, seed + 1, scale);
    fill_normal(v_data, seed + 2, 1.0);
    if (l == layout::bhld) {
      q = ika::bhld(q_data.data(), B, Hq, Lq, D);
      k = ika::bhld(k_data.data(), B, Hkv, Lk, D);
      v = ika::bhld(v_data.data(), B, Hkv, Lk, Dv);
    } else {
      q = ika::blhd(q_data.data(), B, Lq, Hq, D);
      k = ika::blhd(k_data.data(), B, Lk, Hkv, D);
      v = ika::blhd(v_data.data(), B, Lk, Hkv, Dv);
    }
  }
};

// Output and log-sum-exp buffers (B, Hq, Lq, Dv) and (B, Hq, Lq), prefilled with NaN so that a
// row the engine forgot to write shows up.
template <class T>
struct result {
  std::vector<T> out, lse;
  index_t B, H, L, Dv;
  result(index_t B_, index_t H_, index_t L_, index_t Dv_)
      : out(std::size_t(B_ * H_ * L_ * Dv_), std::numeric_limits<T>::quiet_NaN()),
        lse(std::size_t(B_ * H_ * L_), std::numeric_limits<T>::quiet_NaN()), B(B_), H(H_), L(L_), Dv(Dv_) {}
  ika::tensor_view<T> o() { return ika::bhld(out.data(), B, H, L, Dv); }
  ika::row_stat_view<T> l() { return ika::bhl(lse.data(), B, H, L); }
};

// max |a − b| / max(1, max |b|): relative to the size of the reference output.
template <class A, class B>
double relative_error(const std::vector<A>& a, const std::vector<B>& b) {
  double diff = 0, scale = 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = double(a[i]), y = double(b[i]);
    if (std::isinf(y) && x == y) continue; // −inf log-sum-exp of a fully masked row
    diff = std::max(diff, std::isnan(x) || std::isnan(y) ? std::numeric_limits<double>::infinity() : std::abs(x - y));
    if (std::isfinite(y)) scale = std::max(scale, std::abs(y));
  }
  return diff / scale;
}

template <class T>
bool any_nan(const std::vector<T>& x) {
  return std::any_of(x.begin(), x.end(), [](T v) { return std::isnan(v); });
}

template <class T>
constexpr double tolerance() {
  return std::is_same_v<T, float> ? 2e-4 : 1e-10;
}

// f must throw ika::invalid_argument naming `argument`.
template <class F>
void check_throws_argument(F&& f, const std::string& argument) {
  try {
    f();
    FAIL("no ika::invalid_argument for ", argument);
  } catch (const ika::invalid_argument& e) {
    CHECK(e.argument() == argument);
  }
}

} // namespace ika_test
