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

// When a head's packed key features and values outgrow half of L2 and there are enough tiles for
// the team, the engine takes wide query tiles (engine_blocking::wide_query_tile rows). Lk comes from
// this machine's L2 so that the IKA kernel's 2M = 128 features and 64 values per key outgrow it, and
// Lq spans two wide tiles and a partial one; the precondition checks that the shape does take them.
// The tile depends on the team, so results must not depend on the tile: four threads, too many for
// these tiles, take narrow ones and must give the same bits.
TEST_CASE_TEMPLATE("fused == reference with wide query tiles; the same bits as narrow tiles", T, float, double) {
  using blocking = ika::detail::engine_blocking<T>;
  const index_t B = 1, H = 4, D = 64, F = 128;
  const index_t Lk = index_t(ika::detail::l2_cache_bytes() / 2 / ((F + D) * sizeof(T))) + 37;
  const index_t Lq = 2 * blocking::wide_query_tile + 7;
  const auto head_bytes = std::size_t(ika::detail::round_up(Lk, blocking::NR) * (F + D)) * sizeof(T);
  const index_t wide_tiles = B * H * ((Lq + blocking::wide_query_tile - 1) / blocking::wide_query_tile);
  REQUIRE(blocking::query_rows(head_bytes, wide_tiles, 2) == blocking::wide_query_tile);
  // the same head with too few tiles for the team, and a head that fits, keep the narrow tile
  REQUIRE(blocking::query_rows(head_bytes, wide_tiles, 4) == blocking::query_tile);
  CHECK(blocking::query_rows(head_bytes, 2 * blocking::wide_tiles_per_thread - 1, 2) == blocking::query_tile);
  CHECK(blocking::query_rows(ika::detail::l2_cache_bytes() / 2, wide_tiles, 2) == blocking::query_tile);

  const qkv_problem<T> p(layout::bhld, B, H, H, Lq, Lk, D, D, 11, 0.6);
  const auto ika_expr = ika::log_kernel(ika::yaglom_rff<double>::from_seed(5, H, D, F / 2)) + ika::magnitude(ika::lp{3.0});
  const auto check = [&](const char* name, const auto& expr) {
    INFO(name << " Lq=" << Lq << " Lk=" << Lk);
    result<T> one(B, H, Lq, D), two(B, H, Lq, D), narrow(B, H, Lq, D), ref(B, H, Lq, D);
    ika::attention(p.q, p.k, p.v, one.o(), expr, {.lse = one.l(), .threads = 1});
    ika::attention(p.q, p.k, p.v, two.o(), expr, {.lse = two.l(), .threads = 2});
    ika::attention(p.q, p.k, p.v, narrow.o(), expr, {.lse = narrow.l(), .threads = 4});
    ika::reference::attention(p.q, p.k, p.v, ref.o(), expr, {.lse = ref.l()});
    CHECK(relative_error(one.out, ref.out) <= tolerance<T>());
    CHECK(relative_error(one.lse, ref.lse) <= tolerance<T>());
    CHECK(one.out == two.out);
    CHECK(one.lse == two.lse);
    CHECK(one.out == narrow.out);
    CHECK(one.lse == narrow.lse);
  };
  check("ika yaglom p=3", ika_expr);
  check("ika yaglom p=3 causal_lower_right", ika_expr + ika::mask(ika::causal_lower_right{}));
}
