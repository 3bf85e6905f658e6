// SPDX-License-Identifier: MIT
// Fused vs reference across tile boundaries: L ∈ {1, 7, 33, 257, 1000}, D ∈ {8, 33, 64, 128},
// for the expressions that exercise each epilogue (exp per element, exp-free, L1 pairwise,
// masked tiles skipped or partial).

#include <doctest/doctest.h>

#include <sstream>

#include "support.hpp"

using namespace ika_test;

namespace {

template <class T, class Expr>
void check_sizes(const char* name, const Expr& make_expr_for) {
  std::uint64_t seed = 1;
  for (const index_t L : {1, 7, 33, 257, 1000})
    for (const index_t D : {8, 33, 64, 128}) {
      if (L == 1000 && D != 64) continue; // the largest length once, the other D at smaller L
      const index_t Lk = L == 1 ? 1 : L + 5; // Lq != Lk, so lower-right and upper-left differ
      const qkv_problem<T> p(layout::bhld, 1, 2, 2, L, Lk, D, D, seed++, 0.6);
      const auto expr = make_expr_for(D);
      result<T> fused(1, 2, L, D), ref(1, 2, L, D);
      ika::attention(p.q, p.k, p.v, fused.o(), expr, {.lse = fused.l(), .threads = 2});
      ika::reference::attention(p.q, p.k, p.v, ref.o(), expr, {.lse = ref.l()});
      std::ostringstream what;
      what << name << " L=" << L << " Lk=" << Lk << " D=" << D;
      INFO(what.str());
      CHECK(relative_error(fused.out, ref.out) <= tolerance<T>());
      CHECK(relative_error(fused.lse, ref.lse) <= tolerance<T>());
    }
}

} // namespace

TEST_CASE_TEMPLATE("fused == reference across tile boundaries", T, float, double) {
  check_sizes<T>("softmax", [](index_t) { return ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}); });
  check_sizes<T>("ika yaglom p=3 causal_lower_right", [](index_t D) {
    return ika::log_kernel(ika::yaglom_rff<double>::from_seed(3, 2, D, 64)) + ika::magnitude(ika::lp{3.0}) +
           ika::mask(ika::causal_lower_right{});
  });
  check_sizes<T>("laplacian lp(1.8) causal_upper_left", [](index_t) {
    return ika::log_kernel(ika::laplacian{}) + ika::magnitude(ika::lp{1.8}) + ika::mask(ika::causal_upper_left{});
  });
  check_sizes<T>("stationary rff clamp no_norm", [](index_t D) {
    auto k = ika::random_fourier<double>::from_seed(4, 2, D, 33);
    k.estimate = ika::rff_estimate::clamp;
    k.epsilon = 1e-2; // keep the clamp away from its ill-conditioned floor at these sizes
    return ika::log_kernel(k);
  });
}

// The key passes write each panel of NR keys with pack_panel: element (k, f) of the row block lands
// at [f][k] of the panel, and nothing past the panel's features · NR values is written.
TEST_CASE_TEMPLATE("pack_panel transposes a panel's rows", T, float, double) {
  constexpr index_t NR = ika::detail::engine_blocking<T>::NR;
  for (const index_t features : {1, 7, 33, 64}) {
    const index_t stride = features + 3;
    std::vector<T> rows(std::size_t(NR * stride));
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = T(i) + T(0.25);
    std::vector<T> panel(std::size_t(features * NR + 1), T(-1));
    ika::detail::pack_panel(rows.data(), stride, features, panel.data());
    INFO("features = " << features);
    bool transposed = true;
    for (index_t f = 0; f < features; ++f)
      for (index_t k = 0; k < NR; ++k) transposed = transposed && panel[f * NR + k] == rows[k * stride + f];
    CHECK(transposed);
    CHECK(panel.back() == T(-1));
  }
}
