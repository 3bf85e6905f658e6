// SPDX-License-Identifier: MIT
// ika::key_cache (include/ika/cpu/key_cache.hpp): attention over keys whose features were prepared
// when they were appended, against the reference computed from the keys themselves, for every
// kernel, the masks of the split-key engine and the three head structures, keys appended in
// uneven pieces and across split boundaries (512 keys); bitwise equal to the split-key engine
// that reads K (float); thread-count determinism; errors at the API edge.

#include <doctest/doctest.h>

#include <sstream>

#include "fused_vs_reference.hpp"

using namespace ika_test;

namespace {

// rows [j0, j1) of a (B, H, L, D) view
template <class T>
ika::tensor_view<T> rows_of(const ika::tensor_view<T>& x, index_t j0, index_t j1) {
  ika::tensor_view<T> part = x;
  part.data = x.data + j0 * x.row_stride;
  part.rows = j1 - j0;
  return part;
}

// the cache filled with the keys of p in three uneven pieces (1 key, a third, the rest)
template <class Cache, class T>
void append_in_pieces(Cache& cache, const qkv_problem<T>& p, int threads = 0) {
  const index_t a = std::min<index_t>(1, p.Lk), b = std::max(a, p.Lk / 3);
  cache.append(rows_of(p.k, 0, a), threads);
  cache.append(rows_of(p.k, a, b), threads);
  cache.append(rows_of(p.k, b, p.Lk), threads);
}

// Lq = 9: more query rows than the split-key engine takes from ika::attention (4), still exact
constexpr shape_case cache_shapes[] = {{1, 1, 8, 8},     {2, 7, 33, 9},   {1, 513, 64, 64},
                                       {4, 1100, 16, 5}, {3, 257, 8, 17}, {9, 100, 8, 8}};

template <class T>
void cache_matches_reference() {
  const index_t B = 2;
  // every kernel in float, which also checks the bits against the engine that reads K; the
  // subset in double (support.hpp)
  constexpr bool all_kernels = std::is_same_v<T, float>;
  std::size_t cases = 0;
  for (std::size_t shape_index = 0; shape_index < std::size(cache_shapes); ++shape_index) {
    const shape_case& sc = cache_shapes[shape_index];
    const head_case& hc = head_cases[shape_index % std::size(head_cases)];
    const qkv_problem<T> p(layout::bhld, B, hc.Hq, hc.Hkv, sc.Lq, sc.Lk, sc.D, sc.Dv, 9100 + shape_index, 0.7);
    const caller_spectral points(sc.D, 5);
    mask_data md(B, hc.Hq, sc.Lq, sc.Lk);
    for_each_kernel<all_kernels>(hc.Hq, sc.D, points, [&](const char* kernel_name, const auto& kernel, double conditioning) {
      const auto with_norm = [&](const char* norm_name, const auto& norm) {
        const auto logit = ika::log_kernel(kernel) + ika::magnitude(norm);
        ika::key_cache<T, std::decay_t<decltype(kernel)>, std::decay_t<decltype(norm)>> cache(logit, B, hc.Hq, hc.Hkv,
                                                                                               sc.D, sc.Lk + 3);
        append_in_pieces(cache, p);
        REQUIRE(cache.size() == sc.Lk);
        for_each_mask<false>(md, B, sc.Lq, sc.Lk, [&](const char* mask_name, const auto& masks) {
          std::ostringstream what;
          what << hc.name << " Lq=" << sc.Lq << " Lk=" << sc.Lk << " D=" << sc.D << " Dv=" << sc.Dv
               << " mask=" << mask_name << " kernel=" << kernel_name << " norm=" << norm_name;
          INFO(what.str());
          result<T> cached(B, hc.Hq, sc.Lq, sc.Dv), ref(B, hc.Hq, sc.Lq, sc.Dv);
          ika::attention(p.q, cache, p.v, cached.o(), masks, {.lse = cached.l()});
          ika::reference::attention(p.q, p.k, p.v, ref.o(), logit + masks, {.lse = ref.l()});
          CHECK_FALSE(any_nan(cached.out));
          CHECK(relative_error(cached.out, ref.out) <= conditioning * tolerance<T>());
          CHECK(relative_error(cached.lse, ref.lse) <= conditioning * tolerance<T>());
          // the same features, terms and order of operations as the engine that reads K (the
          // fused engine serves ika::attention when Lq > 4); in float only, to keep this
          // file's compile time (each call instantiates both CPU engines) within CI's budget
          if constexpr (std::is_same_v<T, float>) {
            if (sc.Lq <= 4) {
              result<T> direct(B, hc.Hq, sc.Lq, sc.Dv);
              ika::attention(p.q, p.k, p.v, direct.o(), logit + masks, {.lse = direct.l()});
              CHECK(cached.out == direct.out);
              CHECK(cached.lse == direct.lse);
            }
          }
          ++cases;
        });
      };
      if (cases % 3 == 0) with_norm("lp(3)", ika::lp{3.0});
      else if (cases % 3 == 1) with_norm("lp(2)", ika::lp{2.0});
      else with_norm("lp(1, with query)", ika::lp{1.0, ika::norm_exponent::two, ika::norm_divisor::paper, true});
    });
  }
  CHECK(cases == std::size(cache_shapes) * kernel_count(all_kernels) * 7);
}

} // namespace

TEST_CASE("key cache == reference for every kernel x decode mask x heads (float)") { cache_matches_reference<float>(); }
TEST_CASE("key cache == reference for the kernel subset x decode mask x heads (double)") {
  cache_matches_reference<double>();
}

TEST_CASE("key cache: appended and attended with 1, 2 and 3 threads, bitwise the same") {
  const qkv_problem<float> p(layout::bhld, 2, 4, 2, 1, 1300, 64, 64, 77, 0.7);
  const auto logit = ika::log_kernel(ika::yaglom_rff<float>::from_seed(3, 4, 64, 32)) + ika::magnitude(ika::lp{3.0});
  std::vector<float> first;
  for (const int threads : {1, 2, 3}) {
    ika::key_cache<float, ika::yaglom_rff<float>, ika::lp> cache(logit, 2, 4, 2, 64, 1300);
    append_in_pieces(cache, p, threads);
    result<float> r(2, 4, 1, 64);
    ika::attention(p.q, cache, p.v, r.o(), ika::mask(ika::causal_lower_right{}), {.threads = threads});
    if (first.empty()) first = r.out;
    else CHECK(r.out == first);
  }
}

TEST_CASE("key cache: clear, grow up to the capacity, empty cache and fully masked rows") {
  const qkv_problem<double> p(layout::bhld, 1, 2, 2, 1, 40, 8, 8, 5);
  const auto logit = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{3.0});
  ika::key_cache<double, ika::rbf, ika::lp, ika::independent_heads> cache(logit, 1, 2, 2, 8, 40);
  // nothing appended: every row is fully masked, zeros and a −inf log-sum-exp
  result<double> empty(1, 2, 1, 8);
  ika::attention(p.q, cache, rows_of(p.v, 0, 0), empty.o(), {}, {.lse = empty.l()});
  for (const double x : empty.out) CHECK(x == 0.0);
  for (const double x : empty.lse) CHECK(x == -std::numeric_limits<double>::infinity());
  // stale keys are forgotten by clear()
  cache.append(rows_of(p.k, 0, 40));
  cache.clear();
  CHECK(cache.size() == 0);
  cache.append(rows_of(p.k, 0, 25));
  cache.append(rows_of(p.k, 25, 40));
  CHECK(cache.size() == 40);
  result<double> cached(1, 2, 1, 8), ref(1, 2, 1, 8);
  ika::attention(p.q, cache, p.v, cached.o());
  ika::reference::attention<ika::independent_heads>(p.q, p.k, p.v, ref.o(), logit);
  CHECK(relative_error(cached.out, ref.out) <= tolerance<double>());
}

// The cache binds its kernel (packs the spectral points) once per fill: points changed in place
// are read again at the first append after clear(), and the result is then that of the new points.
TEST_CASE("key cache: after clear() the spectral points are read again") {
  const index_t H = 2, D = 8, M = 16, Lk = 40;
  const qkv_problem<float> p(layout::bhld, 1, H, H, 1, Lk, D, D, 17);
  std::vector<float> w1(std::size_t(H * D * M)), w2(w1.size());
  fill_normal(w1, 18);
  fill_normal(w2, 19);
  const ika::yaglom_rff<float> kernel{ika::spectral(static_cast<const float*>(w1.data()), H, D, M),
                                      ika::spectral(static_cast<const float*>(w2.data()), H, D, M)};
  const auto logit = ika::log_kernel(kernel) + ika::magnitude(ika::lp{3.0});
  ika::key_cache<float, ika::yaglom_rff<float>, ika::lp> cache(logit, 1, H, H, D, Lk);
  const auto cached_and_direct = [&] {
    cache.append(p.k);
    result<float> cached(1, H, 1, D), direct(1, H, 1, D);
    ika::attention(p.q, cache, p.v, cached.o());
    ika::attention(p.q, p.k, p.v, direct.o(), logit); // binds the points as they are now
    return std::pair{cached.out, direct.out};
  };
  const auto [before, direct_before] = cached_and_direct();
  CHECK(before == direct_before);
  for (float& w : w1) w *= 1.5f;
  cache.clear();
  const auto [after, direct_after] = cached_and_direct();
  CHECK(after == direct_after);
  CHECK(after != before);
}

TEST_CASE("key cache: bad shapes name the argument and the expected shape") {
  const qkv_problem<float> p(layout::bhld, 2, 4, 2, 1, 10, 8, 8, 5);
  const auto logit = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0});
  ika::key_cache<float, ika::rbf, ika::lp> cache(logit, 2, 4, 2, 8, 12);
  cache.append(rows_of(p.k, 0, 10));
  const auto message = [](auto&& f) {
    try {
      f();
    } catch (const ika::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  CHECK(message([&] { cache.append(rows_of(p.k, 0, 3)); }).find("argument 'k': expected at most 2 new keys") != std::string::npos);
  CHECK(cache.size() == 10); // a refused append leaves the cache as it was
  const qkv_problem<float> wrong(layout::bhld, 2, 3, 3, 1, 10, 7, 8, 6);
  CHECK(message([&] { cache.append(wrong.k); }).find("argument 'k': expected (B = 2, Hkv = 2, n, D = 8)") !=
        std::string::npos);
  result<float> r(2, 4, 1, 8);
  CHECK(message([&] { ika::attention(p.q, cache, rows_of(p.v, 0, 9), r.o()); }).find("argument 'v': expected") !=
        std::string::npos);
  result<float> r3(2, 3, 1, 8);
  CHECK(message([&] { ika::attention(wrong.q, cache, p.v, r3.o()); }).find("argument 'q': expected Hq = 4") !=
        std::string::npos);
  CHECK(message([&] { ika::key_cache<float, ika::rbf, ika::lp> c(logit, 1, 3, 2, 8, 4); }).find("Hq % Hkv") !=
        std::string::npos);
  CHECK(message([&] { ika::key_cache<float, ika::rbf, ika::lp> c(logit, 1, 4, 2, 8, -1); })
            .find("key_cache.capacity") != std::string::npos);
}
