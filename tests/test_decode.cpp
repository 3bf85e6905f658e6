// SPDX-License-Identifier: MIT
// The split-key engine (Lq ≤ 4, decoding) against the reference: every kernel and mask, the
// three head structures, key counts within one split, across split boundaries (512 keys) and
// not a multiple of the 64-key block; bitwise determinism across thread counts.

#include <doctest/doctest.h>

#include <sstream>

#include "fused_vs_reference.hpp"

using namespace ika_test;

namespace {

constexpr shape_case decode_shapes[] = {{1, 1, 8, 8},     {2, 7, 33, 9},    {3, 33, 64, 17},
                                        {4, 257, 16, 5},  {1, 513, 64, 64}, {2, 1500, 8, 33},
                                        {4, 1100, 33, 3}, {1, 2100, 16, 16}};

template <class T>
void decode_matches_reference() {
  const index_t B = 2;
  constexpr bool all_kernels = std::is_same_v<T, double>; // the subset in float (support.hpp)
  std::size_t cases = 0;
  for (std::size_t shape_index = 0; shape_index < std::size(decode_shapes); ++shape_index) {
    const shape_case& sc = decode_shapes[shape_index];
    const head_case& hc = head_cases[shape_index % std::size(head_cases)];
    const qkv_problem<T> p(layout::bhld, B, hc.Hq, hc.Hkv, sc.Lq, sc.Lk, sc.D, sc.Dv, 7000 + shape_index, 0.7);
    const caller_spectral points(sc.D, 5);
    mask_data md(B, hc.Hq, sc.Lq, sc.Lk);
    for_each_mask(md, B, sc.Lq, sc.Lk, [&](const char* mask_name, const auto& mask_expr) {
      for_each_kernel<all_kernels>(hc.Hq, sc.D, points, [&](const char* kernel_name, const auto& kernel, double conditioning) {
        const auto check = [&](const char* norm_name, const auto& norm) {
          std::ostringstream what;
          what << hc.name << " Lq=" << sc.Lq << " Lk=" << sc.Lk << " D=" << sc.D << " Dv=" << sc.Dv
               << " mask=" << mask_name << " kernel=" << kernel_name << " norm=" << norm_name;
          compare_engines(p, ika::log_kernel(kernel) + ika::magnitude(norm) + mask_expr, what.str(),
                          conditioning * tolerance<T>());
          ++cases;
        };
        if (cases % 2 == 0) check("lp(3)", ika::lp{3.0});
        else check("lp(1, with query)", ika::lp{1.0, ika::norm_exponent::two, ika::norm_divisor::paper, true});
      });
    });
  }
  CHECK(cases == std::size(decode_shapes) * 8 * kernel_count(all_kernels));
}

// Softmax (rbf with the L2 magnitude): the key terms cancel, and the key rows are scored as they
// are (the key pass's shortcut).
template <class T>
void softmax_decode_matches_reference() {
  std::size_t cases = 0;
  for (std::size_t shape_index = 0; shape_index < std::size(decode_shapes); ++shape_index) {
    const shape_case& sc = decode_shapes[shape_index];
    const head_case& hc = head_cases[(shape_index + 1) % std::size(head_cases)];
    const qkv_problem<T> p(layout::bhld, 2, hc.Hq, hc.Hkv, sc.Lq, sc.Lk, sc.D, sc.Dv, 7100 + shape_index, 0.7);
    mask_data md(2, hc.Hq, sc.Lq, sc.Lk);
    for_each_mask(md, 2, sc.Lq, sc.Lk, [&](const char* mask_name, const auto& mask_expr) {
      std::ostringstream what;
      what << hc.name << " Lq=" << sc.Lq << " Lk=" << sc.Lk << " D=" << sc.D << " mask=" << mask_name;
      compare_engines(p, ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}) + mask_expr, what.str(),
                      tolerance<T>());
      ++cases;
    });
  }
  CHECK(cases == std::size(decode_shapes) * 8);
}

} // namespace

TEST_CASE("split-key engine == reference for softmax (float, double)") {
  softmax_decode_matches_reference<float>();
  softmax_decode_matches_reference<double>();
}

TEST_CASE("split-key engine == reference for the kernel subset x mask x heads (float)") { decode_matches_reference<float>(); }
TEST_CASE("split-key engine == reference for every kernel x mask x heads (double)") {
  decode_matches_reference<double>();
}

TEST_CASE("split-key engine: large key norms, one visible key, fully masked batch rows") {
  // keys with very different magnitudes across splits: the merge rescales by exp(m_s − M)
  qkv_problem<float> p(layout::bhld, 2, 2, 2, 1, 1600, 32, 32, 77, 0.5);
  for (index_t j = 0; j < 1600; j += 97)
    for (index_t d = 0; d < 32; ++d) p.k_data[std::size_t(((0 * 2 + 1) * 1600 + j) * 32 + d)] *= 40.0f;
  const std::vector<int> lengths = {1, 0}; // batch 0 sees key 0 only, batch 1 nothing
  const auto expr = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{3.0});
  compare_engines(p, expr, "40x key norms");
  result<float> out(2, 2, 1, 32);
  ika::attention(p.q, p.k, p.v, out.o(), expr + ika::mask(ika::key_padding{lengths}), {.lse = out.l()});
  for (index_t h = 0; h < 2; ++h) {
    for (index_t d = 0; d < 32; ++d) {
      // one visible key: its value exactly
      CHECK(out.out[std::size_t((0 * 2 + h) * 32 + d)] == p.v_data[std::size_t((0 * 2 + h) * 1600 * 32 + d)]);
      CHECK(out.out[std::size_t((1 * 2 + h) * 32 + d)] == 0.0f);
    }
    CHECK(out.lse[std::size_t(2 + h)] == -std::numeric_limits<float>::infinity());
  }
}

TEST_CASE("split-key engine: bitwise identical for 1, 2 and 3 threads (features computed)") {
  const qkv_problem<float> p(layout::bhld, 1, 4, 2, 3, 2100, 64, 64, 91, 0.7);
  const auto expr = ika::log_kernel(ika::yaglom_rff<float>::from_seed(3, 4, 64, 32)) + ika::magnitude(ika::lp{3.0}) +
                    ika::mask(ika::causal_lower_right{});
  std::vector<result<float>> runs;
  for (const int threads : {1, 2, 3}) {
    runs.emplace_back(1, 4, 3, 64);
    ika::attention(p.q, p.k, p.v, runs.back().o(), expr, {.lse = runs.back().l(), .threads = threads});
  }
  CHECK(runs[1].out == runs[0].out);
  CHECK(runs[2].out == runs[0].out);
  CHECK(runs[1].lse == runs[0].lse);
  CHECK(runs[2].lse == runs[0].lse);
}

// Softmax scores the key rows in place; batch rows with very different visible lengths give the
// tasks unequal work, so the teams split them at different tasks.
TEST_CASE("split-key engine: bitwise identical for 1, 2, 3 and 4 threads (softmax, uneven key padding)") {
  const qkv_problem<float> p(layout::bhld, 3, 4, 2, 1, 3000, 64, 48, 92, 0.7);
  const std::vector<int> lengths = {3000, 130, 1700};
  const auto expr = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}) + ika::mask(ika::key_padding{lengths});
  compare_engines(p, expr, "softmax, key padding 3000 / 130 / 1700");
  std::vector<result<float>> runs;
  for (const int threads : {1, 2, 3, 4}) {
    runs.emplace_back(3, 4, 1, 48);
    ika::attention(p.q, p.k, p.v, runs.back().o(), expr, {.lse = runs.back().l(), .threads = threads});
  }
  for (std::size_t r = 1; r < runs.size(); ++r) {
    CHECK(runs[r].out == runs[0].out);
    CHECK(runs[r].lse == runs[0].lse);
  }
}
