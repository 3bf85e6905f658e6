// SPDX-License-Identifier: MIT
// Linear-time attention: the exact feature form against the double reference engine (same logits),
// the raw form against a pair-by-pair double computation of its own estimator, causal chunks,
// key padding, grouped heads, large magnitudes, thread determinism and argument errors.

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <span>
#include <vector>

#include "support.hpp"

using namespace ika_test;

namespace {

// Spectral points (H, D, M) drawn here, so that the raw test can evaluate φ itself.
std::vector<double> normal_points(index_t H, index_t D, index_t M, std::uint64_t seed, double scale) {
  std::vector<double> w(std::size_t(H * D * M));
  fill_normal(w, seed, scale);
  return w;
}

// A Yaglom kernel over two sets of points drawn here (seeds seed and seed + 1, scale 0.3), which
// it refers to: keep this object alive while the kernel is used.
struct yaglom_points {
  std::vector<double> w1, w2;
  ika::yaglom_rff<double> kernel;
  yaglom_points(index_t H, index_t D, index_t M, std::uint64_t seed)
      : w1(normal_points(H, D, M, seed, 0.3)), w2(normal_points(H, D, M, seed + 1, 0.3)),
        kernel{ika::spectral(w1.data(), H, D, M), ika::spectral(w2.data(), H, D, M)} {}
};

template <class T, class Logit>
void compare_exact(const Logit& logit, index_t B, index_t Hq, index_t Hkv, index_t Lq, index_t Lk, index_t D,
                   index_t Dv, index_t chunk, std::uint64_t seed, double input_scale = 0.5) {
  // the reference runs on the double inputs, the engine on their copies in T
  qkv_problem<double> p(layout::bhld, B, Hq, Hkv, Lq, Lk, D, Dv, seed, input_scale);
  const std::vector<T> q(p.q_data.begin(), p.q_data.end()), k(p.k_data.begin(), p.k_data.end()),
      v(p.v_data.begin(), p.v_data.end());
  result<T> fast(B, Hq, Lq, Dv);
  result<double> ref(B, Hq, Lq, Dv);
  ika::linear_attention(ika::bhld(q.data(), B, Hq, Lq, D), ika::bhld(k.data(), B, Hkv, Lk, D),
                        ika::bhld(v.data(), B, Hkv, Lk, Dv), fast.o(), logit, {.chunk = chunk});
  ika::reference::attention(p.q, p.k, p.v, ref.o(), logit);
  CHECK_FALSE(any_nan(fast.out));
  const double err = relative_error(fast.out, ref.out);
  INFO("Lq ", Lq, ", Lk ", Lk, ", chunk ", chunk, ", relative error ", err);
  CHECK(err < tolerance<T>());
}

template <class T>
void exact_form_suite() {
  const index_t D = 8, M = 4, Hq = 4, Hkv = 2;
  const yaglom_points points(Hq, D, M, 11);
  const auto& yaglom = points.kernel;
  const auto stationary = ika::random_fourier<double>::from_seed(5, 1, D, M);
  std::vector<int> lengths{5, 0}; // the second batch row sees no key at all
  for (const index_t L : {1, 7, 33, 257})
    for (const index_t chunk : {1, 16, 64}) {
      compare_exact<T>(ika::log_kernel(yaglom) + ika::magnitude(ika::lp{3.0}), 2, Hq, Hkv, L, L, D, 5, chunk, 100 + L);
      compare_exact<T>(ika::log_kernel(stationary), 1, Hq, Hkv, L, L, D, 8, chunk, 200 + L);
      compare_exact<T>(ika::log_kernel(yaglom) + ika::magnitude(ika::lp{2.0}) + ika::mask(ika::causal{}), 2, Hq, Hkv, L,
                       L, D, 3, chunk, 300 + L);
      compare_exact<T>(ika::log_kernel(stationary) + ika::magnitude(ika::lp{1.5}) + ika::mask(ika::causal_lower_right{}),
                       1, Hq, Hkv, L, L + 9, D, 4, chunk, 400 + L);
      compare_exact<T>(ika::log_kernel(stationary) + ika::mask(ika::causal_upper_left{}), 1, Hq, Hkv, L + 3, L, D, 4,
                       chunk, 500 + L);
      lengths[0] = int(std::min<index_t>(L, 5));
      compare_exact<T>(ika::log_kernel(yaglom) + ika::magnitude(ika::lp{3.0}) +
                           ika::mask(ika::key_padding<int>{std::span<const int>(lengths)}) + ika::mask(ika::causal{}),
                       2, Hq, Hkv, L, L, D, 6, chunk, 600 + L);
    }
}

// The state's columns [v | 1] run in groups of several SIMD vectors, then one vector at a time:
// value widths of 64 and 100 take whole groups and leftover vectors in float and in double.
template <class T>
void wide_value_suite() {
  const index_t D = 8, H = 2;
  const yaglom_points points(H, D, /*M=*/4, 13);
  const auto& yaglom = points.kernel;
  for (const index_t Dv : {64, 100})
    for (const index_t L : {7, 33}) {
      compare_exact<T>(ika::log_kernel(yaglom) + ika::magnitude(ika::lp{3.0}), 1, H, H, L, L, D, Dv, 16, 700 + L);
      compare_exact<T>(ika::log_kernel(yaglom) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal{}), 1, H, H, L, L,
                       D, Dv, 4, 800 + L);
    }
}

// Causal tails (the keys a chunk sees only partly, added pair by pair) longer than a SIMD vector
// (chunks of 64), with 2M = 24 features: one whole float vector (three double vectors) and a rest.
template <class T>
void long_tail_suite() {
  const index_t D = 8, H = 2;
  const yaglom_points points(H, D, /*M=*/12, 15);
  for (const index_t chunk : {16, 64})
    for (const index_t L : {33, 257})
      compare_exact<T>(ika::log_kernel(points.kernel) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal{}), 1, H, H, L, L, D,
                       7, chunk, 900 + L + chunk);
}

} // namespace

TEST_CASE("exact feature form equals the quadratic attention: float and double, awkward sizes") {
  SUBCASE("double") { exact_form_suite<double>(); }
  SUBCASE("float") { exact_form_suite<float>(); }
}

TEST_CASE("exact feature form with value widths past one column group") {
  SUBCASE("double") { wide_value_suite<double>(); }
  SUBCASE("float") { wide_value_suite<float>(); }
}

TEST_CASE("causal tails longer than a SIMD vector, features past whole vectors") {
  SUBCASE("double") { long_tail_suite<double>(); }
  SUBCASE("float") { long_tail_suite<float>(); }
}

TEST_CASE("raw feature form against its estimator computed pair by pair") {
  // κ̂ = φ(q)ᵀφ(k) with φ = M^-½ [cos Ωᵀx, sin Ωᵀx]; weights κ̂ e^{μ(k)}; a row whose normaliser is
  // not positive is zero in both. Small inputs keep κ̂ positive for most pairs.
  const index_t B = 1, H = 2, D = 8, M = 64, Dv = 5;
  const auto omega = normal_points(H, D, M, 21, 1.0 / std::sqrt(std::sqrt(double(D))));
  const ika::random_fourier<double> kernel{ika::spectral(omega.data(), H, D, M)};
  const ika::lp norm{3.0};
  for (const index_t L : {1, 7, 33, 257})
    for (const bool causal : {false, true}) {
      qkv_problem<double> p(layout::bhld, B, H, H, L, L, D, Dv, 700 + L, 0.4);
      result<double> fast(B, H, L, Dv);
      if (causal)
        ika::linear_attention(p.q, p.k, p.v, fast.o(), ika::log_kernel(kernel) + ika::magnitude(norm) + ika::mask(ika::causal{}),
                              {.features = ika::linear_features::raw, .chunk = 16});
      else
        ika::linear_attention(p.q, p.k, p.v, fast.o(), ika::log_kernel(kernel) + ika::magnitude(norm),
                              {.features = ika::linear_features::raw, .chunk = 16});
      std::vector<double> direct(fast.out.size(), 0.0);
      const double divisor = 2 * std::sqrt(double(D)); // the lp magnitude's default: ||x||_p² / (2√D)
      auto magnitude = [&](const double* x) {
        double s = 0;
        for (index_t d = 0; d < D; ++d) s += std::pow(std::abs(x[d]), 3.0);
        return std::pow(s, 2.0 / 3.0) / divisor;
      };
      auto features = [&](index_t h, const double* x) {
        std::vector<double> phi(std::size_t(2 * M));
        for (index_t m = 0; m < M; ++m) {
          double z = 0;
          for (index_t d = 0; d < D; ++d) z += omega[std::size_t((h * D + d) * M + m)] * x[d];
          phi[std::size_t(m)] = std::cos(z) / std::sqrt(double(M));
          phi[std::size_t(M + m)] = std::sin(z) / std::sqrt(double(M));
        }
        return phi;
      };
      for (index_t h = 0; h < H; ++h)
        for (index_t i = 0; i < L; ++i) {
          const auto fq = features(h, p.q.row(0, h, i));
          std::vector<double> acc(std::size_t(Dv + 1), 0.0);
          for (index_t j = 0; j < (causal ? i + 1 : L); ++j) {
            const auto fk = features(h, p.k.row(0, h, j));
            double k_hat = 0;
            for (index_t f = 0; f < 2 * M; ++f) k_hat += fq[std::size_t(f)] * fk[std::size_t(f)];
            const double w = k_hat * std::exp(magnitude(p.k.row(0, h, j)));
            for (index_t d = 0; d < Dv; ++d) acc[std::size_t(d)] += w * p.v.row(0, h, j)[d];
            acc[std::size_t(Dv)] += w;
          }
          for (index_t d = 0; d < Dv; ++d)
            direct[std::size_t((h * L + i) * Dv + d)] = acc[std::size_t(Dv)] > 0 ? acc[std::size_t(d)] / acc[std::size_t(Dv)] : 0.0;
        }
      const double err = relative_error(fast.out, direct);
      INFO("L ", L, ", causal ", causal, ", relative error ", err);
      CHECK(err < 1e-9);
    }
}

TEST_CASE("large key magnitudes are shifted, not overflowed") {
  // keys 40× larger: e^{μ(k)} alone overflows double; the weights are still defined
  const index_t D = 8, M = 4, H = 2, L = 65, Dv = 4;
  const auto kernel = ika::yaglom_rff<double>::from_seed(3, H, D, M);
  qkv_problem<double> p(layout::bhld, 1, H, H, L, L, D, Dv, 31, 1.0);
  for (auto& x : p.k_data) x *= 40.0;
  const auto logit = ika::log_kernel(kernel) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal{});
  result<double> fast(1, H, L, Dv), ref(1, H, L, Dv);
  ika::linear_attention(p.q, p.k, p.v, fast.o(), logit, {.chunk = 8});
  ika::reference::attention(p.q, p.k, p.v, ref.o(), logit);
  CHECK_FALSE(any_nan(fast.out));
  CHECK(relative_error(fast.out, ref.out) < 1e-9);
}

TEST_CASE("results are bitwise identical for 1 and 2 threads") {
  const index_t D = 16, M = 8, H = 3, L = 200, Dv = 16;
  const auto kernel = ika::yaglom_rff<float>::from_seed(9, H, D, M);
  qkv_problem<float> p(layout::blhd, 2, H, H, L, L, D, Dv, 41, 0.5);
  for (const auto features : {ika::linear_features::exact, ika::linear_features::raw}) {
    result<float> one(2, H, L, Dv), two(2, H, L, Dv);
    const auto logit = ika::log_kernel(kernel) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal{});
    ika::linear_attention(p.q, p.k, p.v, one.o(), logit, {.features = features, .chunk = 32, .threads = 1});
    ika::linear_attention(p.q, p.k, p.v, two.o(), logit, {.features = features, .chunk = 32, .threads = 2});
    CHECK(one.out == two.out);
  }
}

TEST_CASE("bad arguments name themselves") {
  const index_t D = 4, M = 2, H = 1, L = 3;
  qkv_problem<double> p(layout::bhld, 1, H, H, L, L, D, D, 51);
  result<double> r(1, H, L, D);
  auto clamped = ika::random_fourier<double>::from_seed(1, H, D, M);
  clamped.estimate = ika::rff_estimate::clamp;
  check_throws_argument([&] { ika::linear_attention(p.q, p.k, p.v, r.o(), ika::log_kernel(clamped)); },
                        "logit.kernel.estimate");
  const auto kernel = ika::random_fourier<double>::from_seed(1, H, D, M);
  check_throws_argument([&] { ika::linear_attention(p.q, p.k, p.v, r.o(), ika::log_kernel(kernel), {.chunk = 0}); },
                        "linear_options.chunk");
  // the clamp estimate is fine for the raw form, which does not use it
  ika::linear_attention(p.q, p.k, p.v, r.o(), ika::log_kernel(clamped), {.features = ika::linear_features::raw});
  CHECK_FALSE(any_nan(r.out));
}
