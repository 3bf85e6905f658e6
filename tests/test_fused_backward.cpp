// SPDX-License-Identifier: MIT
// The fused backward against the double reference backward (itself checked by finite
// differences), and bitwise identical gradients for 1 and 2 threads.

#include <doctest/doctest.h>

#include <cstring>
#include <sstream>

#include "support.hpp"

using namespace ika_test;

namespace {

template <class T>
struct backward_problem {
  qkv_problem<T> p;
  std::vector<T> d_out, dq, dk, dv;
  result<T> fwd;
  backward_problem(layout l, index_t B, index_t Hq, index_t Hkv, index_t Lq, index_t Lk, index_t D, index_t Dv,
                   std::uint64_t seed)
      : p(l, B, Hq, Hkv, Lq, Lk, D, Dv, seed, 0.7), d_out(std::size_t(B * Hq * Lq * Dv)), dq(std::size_t(B * Hq * Lq * D)),
        dk(std::size_t(B * Hkv * Lk * D)), dv(std::size_t(B * Hkv * Lk * Dv)), fwd(B, Hq, Lq, Dv) {
    fill_normal(d_out, seed + 7);
  }
  // gradients in (B, H, L, D) order
  template <class Expr>
  void run(const Expr& expr, int threads = 0) {
    ika::attention(p.q, p.k, p.v, fwd.o(), expr, {.lse = fwd.l()});
    const ika::tensor_view<const T> out = fwd.o();
    const ika::row_stat_view<const T> lse{fwd.lse.data(), p.B, p.Hq, p.Lq, p.Hq * p.Lq, p.Lq, 1};
    ika::attention_backward(p.q, p.k, p.v, out, lse, ika::tensor_view<const T>(ika::bhld(d_out.data(), p.B, p.Hq, p.Lq, p.Dv)),
                            expr,
                            ika::attention_grads<T>{ika::bhld(dq.data(), p.B, p.Hq, p.Lq, p.D),
                                                    ika::bhld(dk.data(), p.B, p.Hkv, p.Lk, p.D),
                                                    ika::bhld(dv.data(), p.B, p.Hkv, p.Lk, p.Dv)},
                            threads);
  }
};

} // namespace

TEST_CASE_TEMPLATE("fused backward == reference backward (rbf, dot_product; every norm; dense masks)", T, float, double) {
  const double tol = std::is_same_v<T, float> ? 1e-4 : 1e-10;
  struct shape {
    index_t Lq, Lk, D, Dv;
  };
  int configurations = 0;
  for (const shape sh : {shape{1, 1, 8, 8}, shape{7, 33, 33, 9}, shape{70, 65, 16, 5}, shape{33, 130, 64, 64}}) {
    backward_problem<T> bp(layout::blhd, 2, 4, 2, sh.Lq, sh.Lk, sh.D, sh.Dv, 11 + sh.Lq);
    const std::vector<int> lengths{int(sh.Lk), int(sh.Lk / 2)};
    std::vector<double> bias(std::size_t(sh.Lq * sh.Lk));
    fill_normal(bias, 3);
    auto check = [&](const std::string& what, const auto& expr) {
      INFO(what << " Lq=" << sh.Lq << " Lk=" << sh.Lk << " D=" << sh.D << " Dv=" << sh.Dv);
      bp.run(expr);
      const auto ref = ika::reference::attention_backward(bp.p.q, bp.p.k, bp.p.v,
                                                          ika::bhld(bp.d_out.data(), bp.p.B, bp.p.Hq, bp.p.Lq, bp.p.Dv), expr);
      // q and k are read (B, L, H, D); both gradients are (B, H, L, D)
      CHECK(relative_error(bp.dq, ref.dq) <= tol);
      CHECK(relative_error(bp.dk, ref.dk) <= tol);
      CHECK(relative_error(bp.dv, ref.dv) <= tol);
      CHECK_FALSE(any_nan(bp.dq));
      ++configurations;
    };
    for (int kernel = 0; kernel < 2; ++kernel) {
      auto with_kernel = [&](const auto& k, const char* kname) {
        const std::string name = kname;
        check(name, ika::log_kernel(k));
        check(name + " lp(2)", ika::log_kernel(k) + ika::magnitude(ika::lp{2.0}));
        check(name + " lp(3, r=p) causal_lower_right",
              ika::log_kernel(k) + ika::magnitude(ika::lp{3.0, ika::norm_exponent::p}) + ika::mask(ika::causal_lower_right{}));
        check(name + " lp(1.8, with query) key_padding",
              ika::log_kernel(k) + ika::magnitude(ika::lp{1.8, ika::norm_exponent::two, ika::norm_divisor::code, true}) +
                  ika::mask(ika::key_padding{lengths}));
        check(name + " lp(inf) additive_bias",
              ika::log_kernel(k) + ika::magnitude(ika::lp{ika::lp::infinity}) +
                  ika::mask(ika::additive_bias{ika::dense(bias.data(), 1, 1, sh.Lq, sh.Lk)}));
      };
      if (kernel == 0) with_kernel(ika::rbf{}, "rbf");
      else with_kernel(ika::dot_product{}, "dot_product");
    }
  }
  CHECK(configurations == 4 * 2 * 5);
}

TEST_CASE("fused backward: gradients are bitwise identical for 1 and 2 threads") {
  backward_problem<float> a(layout::bhld, 2, 4, 2, 150, 170, 32, 24, 5), b(layout::bhld, 2, 4, 2, 150, 170, 32, 24, 5);
  const auto expr = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal_upper_left{});
  a.run(expr, 1);
  b.run(expr, 2);
  CHECK(std::memcmp(a.dq.data(), b.dq.data(), a.dq.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(a.dk.data(), b.dk.data(), a.dk.size() * sizeof(float)) == 0);
  CHECK(std::memcmp(a.dv.data(), b.dv.data(), a.dv.size() * sizeof(float)) == 0);
}
