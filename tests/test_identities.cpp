// SPDX-License-Identifier: MIT
// The mathematical facts the library promises (SPEC §1–§3), checked against computations that
// share no code with ika.

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "support.hpp"

using namespace ika_test;

namespace {

// softmax(QKᵀ·scale)·V and the row log-sum-exp, in double, written out plainly.
template <class T>
void plain_softmax_attention(const qkv_problem<T>& p, double scale, std::vector<double>& out, std::vector<double>& lse) {
  out.assign(std::size_t(p.B * p.Hq * p.Lq * p.Dv), 0.0);
  lse.assign(std::size_t(p.B * p.Hq * p.Lq), 0.0);
  const index_t group = p.Hq / p.Hkv;
  for (index_t b = 0; b < p.B; ++b)
    for (index_t h = 0; h < p.Hq; ++h)
      for (index_t i = 0; i < p.Lq; ++i) {
        std::vector<double> s(std::size_t(p.Lk));
        double m = -INFINITY;
        for (index_t j = 0; j < p.Lk; ++j) {
          double dot = 0;
          for (index_t d = 0; d < p.D; ++d) dot += double(p.q(b, h, i, d)) * double(p.k(b, h / group, j, d));
          s[j] = dot * scale;
          m = std::max(m, s[j]);
        }
        double sum = 0;
        for (auto& x : s) sum += (x = std::exp(x - m));
        for (index_t j = 0; j < p.Lk; ++j)
          for (index_t d = 0; d < p.Dv; ++d)
            out[std::size_t(((b * p.Hq + h) * p.Lq + i) * p.Dv + d)] += s[j] / sum * double(p.v(b, h / group, j, d));
        lse[std::size_t((b * p.Hq + h) * p.Lq + i)] = m + std::log(sum);
      }
}

} // namespace

TEST_CASE_TEMPLATE("softmax(QKᵀ/√D)·V == rbf(σ²=√D) + L2 magnitude, through both engines", T, float, double) {
  for (const index_t D : {8, 33, 64}) {
    const qkv_problem<T> p(layout::bhld, 2, 4, 2, 37, 41, D, 19, 77 + D);
    std::vector<double> expected_out, expected_lse;
    plain_softmax_attention(p, 1.0 / std::sqrt(double(D)), expected_out, expected_lse);

    // With the query magnitude included the log-sum-exp is that of QKᵀ/√D too: the
    // -|q|²/2√D of the rbf kernel and the +|q|²/2√D of the magnitude cancel.
    ika::lp l2{2.0};
    l2.include_query = true;
    const auto softmax_as_ika = ika::log_kernel(ika::rbf{}) + ika::magnitude(l2);
    result<T> fused(2, 4, 37, 19), ref(2, 4, 37, 19), dot(2, 4, 37, 19);
    ika::attention(p.q, p.k, p.v, fused.o(), softmax_as_ika, {.lse = fused.l()});
    ika::reference::attention(p.q, p.k, p.v, ref.o(), softmax_as_ika, {.lse = ref.l()});
    ika::attention(p.q, p.k, p.v, dot.o(), ika::log_kernel(ika::dot_product{}), {.lse = dot.l()});
    INFO("D = " << D);
    CHECK(relative_error(fused.out, expected_out) <= tolerance<T>());
    CHECK(relative_error(fused.lse, expected_lse) <= tolerance<T>());
    CHECK(relative_error(ref.out, expected_out) <= tolerance<T>());
    CHECK(relative_error(ref.lse, expected_lse) <= tolerance<T>());
    CHECK(relative_error(dot.out, expected_out) <= tolerance<T>());
    CHECK(relative_error(dot.lse, expected_lse) <= tolerance<T>());
  }
}

TEST_CASE("softmax as rbf + L2 in float: keys whose |k|^2 overflows float still give softmax") {
  // |k|² = 64 · (3e18)² ≈ 6e38 > FLT_MAX, while q·k/√D stays near 1: the key term −|k|²/2√D and
  // the magnitude +|k|²/2√D would be −inf + inf in float; they cancel exactly, and the engines
  // skip both (kernel_traits.hpp, key_terms_cancel), as the mathematics does.
  for (const index_t Lq : {1, 37}) { // the split-key (decode) engine and the fused engine
    qkv_problem<float> p(layout::bhld, 1, 2, 2, Lq, 41, 64, 16, 5);
    for (auto& x : p.q_data) x *= 1e-18f;
    for (auto& x : p.k_data) x *= 3e18f;
    std::vector<double> expected_out, expected_lse;
    plain_softmax_attention(p, 1.0 / 8.0, expected_out, expected_lse);
    result<float> fused(1, 2, Lq, 16);
    ika::attention(p.q, p.k, p.v, fused.o(), ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}));
    INFO("Lq = " << Lq);
    CHECK(relative_error(fused.out, expected_out) <= tolerance<float>());
  }
  // the cancellation is decided from the bound policies: only rbf(σ²) with |k|²/2σ² cancels
  CHECK(ika::detail::key_terms_cancel(ika::rbf{}.bind<float>(1, 64), ika::lp{2.0}.bind<float>(64)));
  CHECK(ika::detail::key_terms_cancel(ika::rbf{8.0}.bind<float>(1, 64), ika::lp{2.0}.bind<float>(64)));
  CHECK_FALSE(ika::detail::key_terms_cancel(ika::rbf{2.0}.bind<float>(1, 64), ika::lp{2.0}.bind<float>(64)));
  CHECK_FALSE(ika::detail::key_terms_cancel(ika::rbf{}.bind<float>(1, 64), ika::lp{3.0}.bind<float>(64)));
  CHECK_FALSE(ika::detail::key_terms_cancel(ika::rbf{}.bind<float>(1, 64),
                                            ika::lp{2.0, ika::norm_exponent::two, ika::norm_divisor::code}.bind<float>(64)));
  CHECK_FALSE(ika::detail::key_terms_cancel(ika::dot_product{}.bind<float>(1, 64), ika::lp{2.0}.bind<float>(64)));
}

TEST_CASE("a different bandwidth or norm order is not softmax") {
  // guards the identity test against passing for any expression
  const qkv_problem<double> p(layout::bhld, 1, 2, 2, 16, 16, 8, 8, 3);
  std::vector<double> expected_out, expected_lse;
  plain_softmax_attention(p, 1.0 / std::sqrt(8.0), expected_out, expected_lse);
  result<double> a(1, 2, 16, 8), b(1, 2, 16, 8);
  ika::attention(p.q, p.k, p.v, a.o(), ika::log_kernel(ika::rbf{2.0}) + ika::magnitude(ika::lp{2.0}));
  ika::attention(p.q, p.k, p.v, b.o(), ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{3.0}));
  CHECK(relative_error(a.out, expected_out) > 1e-3);
  CHECK(relative_error(b.out, expected_out) > 1e-3);
}

TEST_CASE("stationary random Fourier features converge to the rbf kernel like 1/√M") {
  // The squared estimate k̂² approximates κ(q,k)² = exp(-|q-k|²/σ²), the rbf kernel with
  // bandwidth σ²/2. Inputs are small so κ² stays far above ε = 1e-5.
  const index_t D = 8, L = 24;
  const double s2 = std::sqrt(double(D));
  std::vector<double> errors;
  const std::vector<index_t> counts{16, 64, 256, 1024, 4096};
  for (const index_t M : counts) {
    double error = 0;
    const int draws = 6;
    for (int seed = 0; seed < draws; ++seed) {
      const qkv_problem<double> p(layout::bhld, 1, 1, 1, L, L, D, D, 500 + seed, 0.3);
      result<double> rff(1, 1, L, D), exact(1, 1, L, D);
      const auto kernel = ika::random_fourier<double>::from_seed(seed, 1, D, M, s2);
      ika::reference::attention(p.q, p.k, p.v, rff.o(), ika::log_kernel(kernel));
      ika::reference::attention(p.q, p.k, p.v, exact.o(), ika::log_kernel(ika::rbf{s2 / 2}));
      double sq = 0;
      for (std::size_t i = 0; i < rff.out.size(); ++i) sq += std::pow(rff.out[i] - exact.out[i], 2);
      error += std::sqrt(sq / double(rff.out.size())) / draws;
    }
    errors.push_back(error);
    MESSAGE("M = " << M << ": RMS error " << error);
  }
  // 256× more points: 1/√M predicts 16× less error; ask for at least 8×, and monotone decrease.
  CHECK(errors.back() < errors.front() / 8);
  for (std::size_t i = 1; i < errors.size(); ++i) CHECK(errors[i] < errors[i - 1]);
  // log-log slope between the ends close to -1/2
  const double slope = std::log(errors.back() / errors.front()) / std::log(double(counts.back()) / counts.front());
  CHECK(slope < -0.35);
  CHECK(slope > -0.65);
}
