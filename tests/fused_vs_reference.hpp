// SPDX-License-Identifier: MIT
#pragma once

// The fused engine against the double-precision reference for every kernel × norm × mask ×
// head structure × layout, on awkward sizes. Included by one test file per value type, so the
// two halves compile in parallel.

#include <doctest/doctest.h>

#include <functional>
#include <sstream>

#include "support.hpp"

namespace ika_test {

// Spectral points a caller owns (shared by all heads, so heads = 1), for the "view" source.
struct caller_spectral {
  std::vector<double> w1, w2;
  index_t D, M;
  caller_spectral(index_t D_, index_t M_) : w1(std::size_t(D_ * M_)), w2(std::size_t(D_ * M_)), D(D_), M(M_) {
    fill_normal(w1, 101, 0.15);
    fill_normal(w2, 102, 0.15);
  }
};

// How many kernels for_each_kernel<All> visits (see every_kernel).
constexpr int kernel_count(bool all) { return all && every_kernel ? 7 : 3; }

// f(name, kernel, conditioning): the last factor widens the tolerance where the math is
// ill-conditioned. The clamp estimate log(max(k̂, ε)) amplifies a rounding error δ in k̂ to
// δ/k̂ in the logit, and k̂ may be as small as ε = 1e-5.
// All = false: the subset of every_kernel.
template <bool All, class F>
void for_each_kernel(index_t H, index_t D, const caller_spectral& points, F&& f) {
  f("rbf", ika::rbf{}, 1.0);
  f("laplacian", ika::laplacian{}, 1.0);
  if constexpr (All && every_kernel) {
    f("rbf(sigma2=3)", ika::rbf{3.0}, 1.0);
    f("dot_product", ika::dot_product{}, 1.0);
    f("random_fourier(M=7)", ika::random_fourier<double>::from_seed(7, H, D, 7), 1.0);
    f("yaglom_rff(M=13)", ika::yaglom_rff<double>::from_seed(9, H, D, 13), 1.0);
  }
  auto view1 = ika::spectral(points.w1.data(), 1, points.D, points.M);
  auto view2 = ika::spectral(points.w2.data(), 1, points.D, points.M);
  f("yaglom_rff(view, clamp)", ika::yaglom_rff{view1, view2, ika::rff_estimate::clamp}, 10.0);
}

template <class F>
void for_each_norm(F&& f) {
  f("no_norm", ika::no_norm{});
  f("lp(2)", ika::lp{2.0});
  f("lp(3, r=p, code)", ika::lp{3.0, ika::norm_exponent::p, ika::norm_divisor::code});
  f("lp(1.8)", ika::lp{1.8});
  f("lp(inf)", ika::lp{ika::lp::infinity});
  f("lp(1, with query)", ika::lp{1.0, ika::norm_exponent::two, ika::norm_divisor::paper, true});
}

// Masks with the data they point to; lengths etc. chosen so that some rows are fully masked.
struct mask_data {
  std::vector<int> lengths;
  std::vector<unsigned char> keep_storage;
  std::unique_ptr<bool[]> keep;
  std::vector<double> bias;
  std::vector<int> offsets, columns;

  mask_data(index_t B, index_t H, index_t Lq, index_t Lk) {
    for (index_t b = 0; b < B; ++b) lengths.push_back(b == 0 ? int(Lk) : int((Lk * 2) / 3) * int(b % 2));
    std::mt19937 gen(5);
    keep.reset(new bool[std::size_t(B * Lq * Lk)]);
    for (index_t i = 0; i < B * Lq * Lk; ++i) keep[i] = gen() % 3 != 0;
    for (index_t j = 0; j < Lk; ++j) keep[j] = false; // first query row of batch 0 sees nothing
    bias.resize(std::size_t(Lq * Lk));                 // broadcast over batch and heads
    std::normal_distribution<double> n;
    for (auto& x : bias) x = n(gen);
    if (Lk > 1) bias[1] = -std::numeric_limits<double>::infinity();
    offsets.push_back(0);
    for (index_t i = 0; i < Lq; ++i) {
      if (i % 5 != 3) // every fifth row has no neighbours
        for (index_t j = 0; j < Lk; ++j)
          if (gen() % 4 == 0 || j == i % Lk) columns.push_back(int((j * 7 + i) % Lk));
      std::sort(columns.begin() + offsets.back(), columns.end());
      columns.erase(std::unique(columns.begin() + offsets.back(), columns.end()), columns.end());
      offsets.push_back(int(columns.size()));
    }
    (void)H;
  }
};

// WithGraph = false leaves out the graph mask (engines that do not take one).
template <bool WithGraph = true, class F>
void for_each_mask(mask_data& m, index_t B, index_t Lq, index_t Lk, F&& f) {
  f("none", ika::logit_expression<ika::no_kernel, ika::no_norm>{});
  f("causal_upper_left", ika::mask(ika::causal_upper_left{}));
  f("causal_lower_right", ika::mask(ika::causal_lower_right{}));
  f("key_padding", ika::mask(ika::key_padding{m.lengths}));
  f("keep_mask", ika::mask(ika::keep_mask{ika::dense(m.keep.get(), B, 1, Lq, Lk)}));
  f("additive_bias", ika::mask(ika::additive_bias{ika::dense(m.bias.data(), 1, 1, Lq, Lk)}));
  if constexpr (WithGraph) f("graph_csr", ika::mask(ika::graph_csr{m.offsets, m.columns}));
  f("causal_lower_right+key_padding",
    ika::mask(ika::causal_lower_right{}) + ika::mask(ika::key_padding{m.lengths}));
}

struct head_case {
  const char* name;
  index_t Hq, Hkv;
};
inline constexpr head_case head_cases[] = {{"independent", 3, 3}, {"grouped", 4, 2}, {"multi-query", 3, 1}};

// Runs one expression through both engines and checks outputs and log-sum-exp.
template <class T, class Heads = ika::grouped_heads, class Expr>
void compare_engines(const qkv_problem<T>& p, const Expr& expr, const std::string& what, double tol = tolerance<T>()) {
  result<T> fused(p.B, p.Hq, p.Lq, p.Dv), ref(p.B, p.Hq, p.Lq, p.Dv);
  ika::attention<Heads>(p.q, p.k, p.v, fused.o(), expr, {.lse = fused.l(), .threads = 2}); // 2: even the tiny calls
  ika::reference::attention<Heads>(p.q, p.k, p.v, ref.o(), expr, {.lse = ref.l()});
  const double e_out = relative_error(fused.out, ref.out), e_lse = relative_error(fused.lse, ref.lse);
  INFO(what);
  CHECK_FALSE(any_nan(fused.out));
  CHECK(e_out <= tol);
  CHECK(e_lse <= tol);
}

struct shape_case {
  index_t Lq, Lk, D, Dv;
};
// Awkward sizes, cycled through the configurations so that every kernel, norm, mask, head
// structure and layout meets several of them: single rows, sizes that are not multiples of the
// SIMD width, and key counts that span several key tiles (512 keys: Lk = 1000). Long keys are paired with
// few queries to keep the double reference cheap.
inline constexpr shape_case self_shapes[] = {{1, 1, 8, 8}, {7, 7, 33, 9}, {33, 33, 64, 17}, {257, 257, 8, 5}};
inline constexpr shape_case cross_shapes[] = {{7, 33, 33, 9}, {1, 257, 128, 33}, {33, 300, 8, 64}, {50, 1000, 8, 3}};

// The whole product: 3 layouts × 3 head structures × 8 masks × kernel_count kernels × 6 norms;
// every kernel in double, the subset in float (see every_kernel).
template <class T>
void fused_matches_reference_everywhere() {
  const index_t B = 2;
  constexpr bool all_kernels = std::is_same_v<T, double>;
  constexpr std::size_t per_mask = kernel_count(all_kernels) * 6; // configurations per mask: kernels × norms
  std::size_t cases = 0;
  for (const layout l : {layout::bhld, layout::blhd, layout::packed}) {
    for (const head_case& hc : head_cases) {
      for (int mask_index = 0; mask_index < 8; ++mask_index) {
        // packed QKV needs Lq == Lk; blhd is used for cross-attention (Lq != Lk)
        const shape_case& sc = l == layout::blhd ? cross_shapes[(cases / per_mask + mask_index) % 4]
                                                 : self_shapes[(cases / per_mask + mask_index + int(l)) % 4];
        const qkv_problem<T> p(l, B, hc.Hq, hc.Hkv, sc.Lq, sc.Lk, sc.D, sc.Dv, 1000 + cases, 0.7);
        const caller_spectral points(sc.D, 5);
        mask_data md(B, hc.Hq, sc.Lq, sc.Lk);
        int seen = 0;
        for_each_mask(md, B, sc.Lq, sc.Lk, [&](const char* mask_name, const auto& mask_expr) {
          if (seen++ != mask_index) return;
          for_each_kernel<all_kernels>(hc.Hq, sc.D, points, [&](const char* kernel_name, const auto& kernel, double conditioning) {
            for_each_norm([&](const char* norm_name, const auto& norm) {
              std::ostringstream what;
              what << name(l) << " " << hc.name << " Lq=" << sc.Lq << " Lk=" << sc.Lk << " D=" << sc.D
                   << " Dv=" << sc.Dv << " mask=" << mask_name << " kernel=" << kernel_name << " norm=" << norm_name;
              compare_engines(p, ika::log_kernel(kernel) + ika::magnitude(norm) + mask_expr, what.str(),
                              conditioning * tolerance<T>());
              ++cases;
            });
          });
        });
      }
    }
  }
  MESSAGE("compared " << cases << " configurations");
  CHECK(cases == std::size_t(3 * 3 * 8 * kernel_count(all_kernels) * 6));
}

} // namespace ika_test
