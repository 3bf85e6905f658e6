// SPDX-License-Identifier: MIT
// Fully masked rows, huge key norms, and bitwise determinism across thread counts and callers' threads.

#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <limits>
#include <omp.h>

#include "support.hpp"

using namespace ika_test;

namespace {

template <class T>
void check_row_fully_masked(const result<T>& r, index_t b, index_t h, index_t i) {
  const T lse = r.lse[std::size_t((b * r.H + h) * r.L + i)];
  CHECK(lse == -std::numeric_limits<T>::infinity());
  for (index_t d = 0; d < r.Dv; ++d) CHECK(r.out[std::size_t(((b * r.H + h) * r.L + i) * r.Dv + d)] == T(0));
}

template <class T, class Expr>
void run_both(const qkv_problem<T>& p, const Expr& expr, result<T>& fused, result<T>& ref) {
  ika::attention(p.q, p.k, p.v, fused.o(), expr, {.lse = fused.l()});
  ika::reference::attention(p.q, p.k, p.v, ref.o(), expr, {.lse = ref.l()});
  CHECK_FALSE(any_nan(fused.out));
  CHECK_FALSE(any_nan(fused.lse));
  CHECK(relative_error(fused.out, ref.out) <= tolerance<T>());
  CHECK(relative_error(fused.lse, ref.lse) <= tolerance<T>());
}

} // namespace

TEST_CASE_TEMPLATE("fully masked rows give zeros and a -inf log-sum-exp, never NaN", T, float, double) {
  const index_t B = 2, H = 2, Lq = 70, Lk = 50, D = 16;
  const qkv_problem<T> p(layout::bhld, B, H, H, Lq, Lk, D, D, 11);
  const auto yaglom = ika::yaglom_rff<double>::from_seed(1, H, D, 32);
  auto with_each_kernel = [&](auto&& f) {
    f(ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}));
    f(ika::log_kernel(yaglom) + ika::magnitude(ika::lp{3.0})); // exp-free path on full tiles
    f(ika::log_kernel(ika::laplacian{}));
  };

  SUBCASE("key padding of length 0") {
    const std::vector<int> lengths{Lk, 0};
    with_each_kernel([&](const auto& logit) {
      result<T> fused(B, H, Lq, D), ref(B, H, Lq, D);
      run_both(p, logit + ika::mask(ika::key_padding{lengths}), fused, ref);
      for (index_t h = 0; h < H; ++h)
        for (index_t i = 0; i < Lq; ++i) check_row_fully_masked(fused, 1, h, i);
    });
  }
  SUBCASE("lower-right causal with Lq > Lk hides every key from the first Lq - Lk queries") {
    with_each_kernel([&](const auto& logit) {
      result<T> fused(B, H, Lq, D), ref(B, H, Lq, D);
      run_both(p, logit + ika::mask(ika::causal_lower_right{}), fused, ref);
      for (index_t i = 0; i < Lq - Lk; ++i) check_row_fully_masked(fused, 0, 1, i);
      CHECK(fused.lse[std::size_t(Lq - Lk)] > -std::numeric_limits<T>::infinity());
    });
  }
  SUBCASE("keep-mask rows of false, -inf bias rows, nodes without neighbours") {
    std::unique_ptr<bool[]> keep(new bool[std::size_t(Lq * Lk)]);
    std::vector<T> bias(std::size_t(Lq * Lk), T(0.5));
    std::vector<int> offsets{0}, columns;
    for (index_t i = 0; i < Lq; ++i) {
      for (index_t j = 0; j < Lk; ++j) {
        keep[std::size_t(i * Lk + j)] = i % 3 != 0;
        if (i % 4 == 0) bias[std::size_t(i * Lk + j)] = -std::numeric_limits<T>::infinity();
        if (i % 5 != 0 && (i + j) % 7 == 0) columns.push_back(int(j));
      }
      offsets.push_back(int(columns.size()));
    }
    with_each_kernel([&](const auto& logit) {
      result<T> a(B, H, Lq, D), ar(B, H, Lq, D), b(B, H, Lq, D), br(B, H, Lq, D), c(B, H, Lq, D), cr(B, H, Lq, D);
      run_both(p, logit + ika::mask(ika::keep_mask{ika::dense(keep.get(), 1, 1, Lq, Lk)}), a, ar);
      run_both(p, logit + ika::mask(ika::additive_bias{ika::dense(bias.data(), 1, 1, Lq, Lk)}), b, br);
      run_both(p, logit + ika::mask(ika::graph_csr{offsets, columns}), c, cr);
      for (index_t i = 0; i < Lq; ++i) {
        if (i % 3 == 0) check_row_fully_masked(a, 1, 0, i);
        if (i % 4 == 0) check_row_fully_masked(b, 0, 1, i);
        if (i % 5 == 0) check_row_fully_masked(c, 1, 1, i);
      }
    });
  }
}

TEST_CASE_TEMPLATE("keys with norms up to 1e3 do not overflow", T, float, double) {
  const index_t B = 1, H = 2, L = 100, D = 32;
  qkv_problem<T> p(layout::bhld, B, H, H, L, L, D, D, 21);
  // rescale each key row to a norm spread log-uniformly over [1, 1e3]
  for (index_t h = 0; h < H; ++h)
    for (index_t j = 0; j < L; ++j) {
      T* row = p.k.row(0, h, j);
      double n = 0;
      for (index_t d = 0; d < D; ++d) n += double(row[d]) * row[d];
      const double target = std::pow(10.0, 3.0 * double((j * 37) % L) / double(L - 1));
      for (index_t d = 0; d < D; ++d) row[d] = T(row[d] * target / std::sqrt(n));
    }
  const auto yaglom = ika::yaglom_rff<double>::from_seed(2, H, D, 64);
  auto check = [&](const char* name, const auto& logit) {
    INFO(name);
    result<T> fused(B, H, L, D), ref(B, H, L, D);
    run_both(p, logit, fused, ref);
    for (const T x : fused.out) CHECK(std::isfinite(x));
    for (const T x : fused.lse) CHECK(std::isfinite(x));
  };
  check("softmax", ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}));
  check("rbf only", ika::log_kernel(ika::rbf{}));
  check("ika p=3 r=p", ika::log_kernel(yaglom) + ika::magnitude(ika::lp{3.0, ika::norm_exponent::p}));
  check("ika p=1.8", ika::log_kernel(yaglom) + ika::magnitude(ika::lp{1.8}));
  check("laplacian p=inf", ika::log_kernel(ika::laplacian{}) + ika::magnitude(ika::lp{ika::lp::infinity}));
}

// The exp-free weights of bounded kernels scale each key by exp(b_j − max b over its key tile).
// On a masked tile the key that sets that max may be hidden or outside the computed range: here
// keys 10-39 are 12 times longer than keys 0-9, so their L2 magnitudes exceed those of the first
// ten by about 150 and spread among themselves by more than float's exp range. Key padding leaves
// every row only the first ten keys; under the causal mask the keys the last rows see do not include
// the one with the tile's largest magnitude.
TEST_CASE_TEMPLATE("masked rows whose visible keys have magnitudes far below their tile's largest", T, float, double) {
  const index_t B = 1, H = 2, L = 40, D = 8, small = 10;
  qkv_problem<T> p(layout::bhld, B, H, H, L, L, D, D, 23);
  for (index_t h = 0; h < H; ++h)
    for (index_t j = small; j < L; ++j)
      for (index_t d = 0; d < D; ++d) p.k.row(0, h, j)[d] *= T(12);
  const std::vector<int> lengths{int(small)};
  const auto yaglom = ika::yaglom_rff<double>::from_seed(4, H, D, 16);
  auto check = [&](const std::string& name, const auto& logit) {
    INFO(name);
    result<T> fused(B, H, L, D), ref(B, H, L, D);
    run_both(p, logit, fused, ref); // fused against the double reference
  };
  const auto base = ika::log_kernel(yaglom) + ika::magnitude(ika::lp{2.0});
  check("yaglom lp(2) causal_upper_left", base + ika::mask(ika::causal_upper_left{}));
  check("yaglom lp(2) key_padding", base + ika::mask(ika::key_padding{lengths}));
}

TEST_CASE_TEMPLATE("results are bitwise identical for 1 and 2 threads", T, float, double) {
  const index_t B = 2, Hq = 4, Hkv = 2, L = 301, D = 40;
  const qkv_problem<T> p(layout::blhd, B, Hq, Hkv, L, L, D, D, 31);
  const std::vector<int> lengths{L, 123};
  std::vector<int> offsets{0}, columns;
  for (index_t i = 0; i < L; ++i) {
    for (index_t j = 0; j < L; j += 1 + (i % 13)) columns.push_back(int(j));
    offsets.push_back(int(columns.size()));
  }
  auto check = [&](const char* name, const auto& logit) {
    INFO(name);
    result<T> one(B, Hq, L, D), two(B, Hq, L, D), automatic(B, Hq, L, D);
    ika::attention(p.q, p.k, p.v, one.o(), logit, {.lse = one.l(), .threads = 1});
    ika::attention(p.q, p.k, p.v, two.o(), logit, {.lse = two.l(), .threads = 2});
    ika::attention(p.q, p.k, p.v, automatic.o(), logit, {.lse = automatic.l()}); // threads = 0
    for (const result<T>* r : {&two, &automatic}) {
      CHECK(std::memcmp(one.out.data(), r->out.data(), one.out.size() * sizeof(T)) == 0);
      CHECK(std::memcmp(one.lse.data(), r->lse.data(), one.lse.size() * sizeof(T)) == 0);
    }
  };
  const auto yaglom = ika::yaglom_rff<double>::from_seed(5, Hq, D, 64);
  check("softmax", ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}));
  check("ika causal", ika::log_kernel(yaglom) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal{}));
  check("laplacian key padding", ika::log_kernel(ika::laplacian{}) + ika::mask(ika::key_padding{lengths}));
  check("graph", ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{1.8}) + ika::mask(ika::graph_csr{offsets, columns}));
}

// Each engine called by both threads of the caller's own parallel region, asked for 1 thread (it
// then opens no region of its own, and its loops must not bind to the caller's team) and for 2 (a
// nested region): the same bits as a call from outside any region.
TEST_CASE("calls from inside the caller's parallel region give the same bits") {
  const index_t B = 2, Hq = 4, Hkv = 2, L = 97, D = 16;
  const qkv_problem<float> p(layout::bhld, B, Hq, Hkv, L, L, D, D, 61);
  const qkv_problem<float> decode(layout::bhld, B, Hq, Hkv, 1, L, D, D, 62);
  const auto yaglom = ika::yaglom_rff<float>::from_seed(7, Hq, D, 16);
  const auto logit = ika::log_kernel(yaglom) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal_lower_right{});
  const auto join = [](std::vector<float> a, const std::vector<float>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  // each returns everything its call wrote, in one vector
  const std::vector<std::pair<const char*, std::function<std::vector<float>(int)>>> calls{
      {"fused forward",
       [&](int threads) {
         result<float> r(B, Hq, L, D);
         ika::attention(p.q, p.k, p.v, r.o(), logit, {.lse = r.l(), .threads = threads});
         return join(r.out, r.lse);
       }},
      {"split-key decode",
       [&](int threads) {
         result<float> r(B, Hq, 1, D);
         ika::attention(decode.q, decode.k, decode.v, r.o(), logit, {.lse = r.l(), .threads = threads});
         return join(r.out, r.lse);
       }},
      {"key cache",
       [&](int threads) {
         ika::key_cache<float, ika::yaglom_rff<float>, ika::lp> cache(ika::log_kernel(yaglom) + ika::magnitude(ika::lp{3.0}),
                                                                     B, Hq, Hkv, D, L);
         cache.append(decode.k, threads);
         result<float> r(B, Hq, 1, D);
         ika::attention(decode.q, cache, decode.v, r.o(), ika::mask(ika::causal_lower_right{}), {.threads = threads});
         return r.out;
       }},
      {"linear-time",
       [&](int threads) {
         result<float> r(B, Hq, L, D);
         ika::linear_attention(p.q, p.k, p.v, r.o(), logit, {.chunk = 16, .threads = threads});
         return r.out;
       }},
      {"backward",
       [&](int threads) {
         result<float> forward(B, Hq, L, D);
         ika::attention(p.q, p.k, p.v, forward.o(), logit, {.lse = forward.l(), .threads = threads});
         std::vector<float> d_out(forward.out.size()), dq(p.q_data.size()), dk(p.k_data.size()), dv(p.v_data.size());
         for (std::size_t i = 0; i < d_out.size(); ++i) d_out[i] = float(std::sin(0.37 * double(i)));
         ika::attention_backward(p.q, p.k, p.v, ika::tensor_view<const float>(forward.o()),
                                 ika::row_stat_view<const float>{forward.lse.data(), B, Hq, L, Hq * L, L, 1},
                                 ika::tensor_view<const float>(ika::bhld(d_out.data(), B, Hq, L, D)), logit,
                                 ika::attention_grads<float>{.dq = ika::bhld(dq.data(), B, Hq, L, D),
                                                             .dk = ika::bhld(dk.data(), B, Hkv, L, D),
                                                             .dv = ika::bhld(dv.data(), B, Hkv, L, D)},
                                 threads);
         return join(join(dq, dk), dv);
       }},
  };
  for (const auto& [name, call] : calls) {
    INFO(name);
    const std::vector<float> outside = call(1);
    CHECK_FALSE(any_nan(outside));
    CHECK(call(0) == outside); // the automatic team, from outside any region
    std::vector<float> inside[2][2]; // [caller's thread][engine's threads − 1]
    int team = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
      team = omp_get_num_threads();
      for (const int threads : {1, 2}) inside[omp_get_thread_num()][threads - 1] = call(threads);
    }
    REQUIRE(team == 2);
    for (const auto& thread : inside)
      for (const auto& r : thread) CHECK(r == outside);
  }
}

// threads = 0: one thread per detail::work_per_thread multiply-adds, within [1, OpenMP's default]
TEST_CASE("the automatic team grows with the call's work, within the OpenMP default") {
  using ika::detail::thread_team, ika::detail::work_per_thread;
  const int most = omp_get_max_threads();
  CHECK(thread_team(3, 0.0, 1) == 3); // a thread count asked for is kept, whatever the work and tasks
  CHECK(thread_team(1, 1e15, 100) == 1);
  CHECK(thread_team(0, 0.0, 100) == 1);
  CHECK(thread_team(0, 1.9 * work_per_thread, 100) == 1);
  CHECK(thread_team(0, 2.0 * work_per_thread, 100) == std::min(2, most));
  CHECK(thread_team(0, 1e15, 100'000) == most);
  CHECK(thread_team(0, 1e15, 1) == 1); // no more threads than tasks
  CHECK(thread_team(0, 1e15, 0) == 1);
}

// Each member of a team of 1-5 gets one contiguous range; together they are [0, count) in order,
// and no share exceeds an equal part of the work by more than the largest single task.
TEST_CASE("balanced_share deals tasks out in contiguous ranges of about equal work") {
  const std::vector<double> task_work = {9, 9, 9, 9, 0, 0, 1, 0, 2, 0, 0, 1, 0};
  std::vector<double> work_before(task_work.size() + 1, 0.0);
  for (std::size_t i = 0; i < task_work.size(); ++i) work_before[i + 1] = work_before[i] + task_work[i];
  const index_t count = index_t(task_work.size());
  const double total = work_before.back(), largest = 9;
  for (int team = 1; team <= 5; ++team) {
    std::vector<std::pair<index_t, index_t>> shares(std::size_t(team), {-1, -1});
    int members = 0;
#pragma omp parallel num_threads(team)
    {
      shares[std::size_t(omp_get_thread_num())] = ika::detail::balanced_share(work_before.data(), count);
#pragma omp single
      members = omp_get_num_threads();
    }
    CAPTURE(team);
    REQUIRE(members == team);
    index_t next = 0;
    for (const auto& [first, last] : shares) {
      CHECK(first == next);
      CHECK(last >= first);
      CHECK(work_before[std::size_t(last)] - work_before[std::size_t(first)] <= total / team + largest);
      next = last;
    }
    CHECK(next == count);
  }
  // outside a parallel region: the whole range
  const auto whole = ika::detail::balanced_share(work_before.data(), count);
  CHECK(whole == std::pair<index_t, index_t>{0, count});
}

TEST_CASE("the layout of the inputs does not change a single bit of the result") {
  const index_t B = 2, H = 3, L = 77, D = 24;
  const qkv_problem<float> a(layout::bhld, B, H, H, L, L, D, D, 41);
  // the same numbers laid out (B, L, H, D)
  std::vector<float> q(a.q_data.size()), k(q.size()), v(q.size());
  const auto Q = ika::blhd(q.data(), B, L, H, D), K = ika::blhd(k.data(), B, L, H, D), V = ika::blhd(v.data(), B, L, H, D);
  for (index_t b = 0; b < B; ++b)
    for (index_t h = 0; h < H; ++h)
      for (index_t l = 0; l < L; ++l)
        for (index_t d = 0; d < D; ++d) {
          Q(b, h, l, d) = a.q(b, h, l, d);
          K(b, h, l, d) = a.k(b, h, l, d);
          V(b, h, l, d) = a.v(b, h, l, d);
        }
  const auto logit = ika::log_kernel(ika::yaglom_rff<float>::from_seed(3, H, D, 64)) + ika::magnitude(ika::lp{3.0});
  result<float> x(B, H, L, D), y(B, H, L, D);
  ika::attention(a.q, a.k, a.v, x.o(), logit);
  ika::attention(Q, K, V, y.o(), logit);
  CHECK(std::memcmp(x.out.data(), y.out.data(), x.out.size() * sizeof(float)) == 0);
}

// The engines keep their buffers in per-thread scratch memory reused across calls: a call gives
// the same bits after a larger call of the same engine type has filled that memory.
TEST_CASE("every engine gives the same bits whatever an earlier call left in its scratch memory") {
  using yaglom = ika::yaglom_rff<float>;
  using logit_type = decltype(ika::log_kernel(std::declval<yaglom>()) + ika::magnitude(ika::lp{3.0}) +
                              ika::mask(ika::causal_lower_right{}));
  using cache_type = ika::key_cache<float, yaglom, ika::lp>;
  // every engine at one shape; each returns everything its calls wrote, one after the other
  const auto run_all = [](index_t Hq, index_t Hkv, index_t L, index_t D, index_t M, std::uint64_t seed) {
    const qkv_problem<float> p(layout::bhld, 2, Hq, Hkv, L, L, D, D, seed);
    const qkv_problem<float> decode(layout::bhld, 2, Hq, Hkv, 1, L, D, D, seed + 1);
    const logit_type logit = ika::log_kernel(yaglom::from_seed(seed, Hq, D, M)) + ika::magnitude(ika::lp{3.0}) +
                             ika::mask(ika::causal_lower_right{});
    std::vector<float> all;
    const auto keep = [&](const std::vector<float>& x) { all.insert(all.end(), x.begin(), x.end()); };
    result<float> fused(2, Hq, L, D), linear_exact(2, Hq, L, D), linear_raw(2, Hq, L, D), split(2, Hq, 1, D),
        cached(2, Hq, 1, D);
    ika::attention(p.q, p.k, p.v, fused.o(), logit, {.lse = fused.l(), .threads = 2});
    ika::linear_attention(p.q, p.k, p.v, linear_exact.o(), logit, {.chunk = 8, .threads = 2});
    ika::linear_attention(p.q, p.k, p.v, linear_raw.o(), logit,
                          {.features = ika::linear_features::raw, .chunk = 8, .threads = 2});
    ika::attention(decode.q, decode.k, decode.v, split.o(), logit, {.lse = split.l(), .threads = 2});
    cache_type cache(ika::log_kernel(logit.kernel) + ika::magnitude(ika::lp{3.0}), 2, Hq, Hkv, D, L);
    cache.append(decode.k, 2);
    ika::attention(decode.q, cache, decode.v, cached.o(), ika::mask(ika::causal_lower_right{}), {.threads = 2});
    for (const result<float>* r : {&fused, &linear_exact, &linear_raw, &split, &cached}) keep(r->out);
    keep(fused.lse);
    keep(split.lse);
    return all;
  };
  const std::vector<float> first = run_all(4, 2, 45, 12, 5, 21);
  CHECK_FALSE(any_nan(first));
  (void)run_all(4, 4, 300, 20, 24, 22);
  CHECK(run_all(4, 2, 45, 12, 5, 21) == first);
}
