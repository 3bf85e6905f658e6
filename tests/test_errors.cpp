// SPDX-License-Identifier: MIT
// The error contract of the public API: every bad input raises ika::invalid_argument (a
// std::invalid_argument) whose argument() names the offending argument and whose message says
// what was expected, "ika: argument '<name>': expected <what>". Checks that live in the shared
// argument validation or in a policy's bind() are run through both ika::attention and
// ika::reference::attention, in float and double. Empty inputs that are not errors are checked
// to behave (nothing written for B = 0, zeros and a −inf log-sum-exp for Lk = 0).

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "support.hpp"

using namespace ika_test;

namespace {

static_assert(std::is_base_of_v<std::invalid_argument, ika::invalid_argument>);

constexpr double nan_v = std::numeric_limits<double>::quiet_NaN();
constexpr double inf_v = std::numeric_limits<double>::infinity();

// The two engines behind one call syntax, so a check shared by both is written once.
template <class T>
struct fused {
  using value_type = T;
  template <class Heads = ika::grouped_heads, class... Args>
  static void run(const Args&... args) {
    ika::attention<Heads>(args...);
  }
};
template <class T>
struct reference {
  using value_type = T;
  template <class Heads = ika::grouped_heads, class... Args>
  static void run(const Args&... args) {
    ika::reference::attention<Heads>(args...);
  }
};

std::string expected_prefix(std::string_view argument) {
  return "ika: argument '" + std::string(argument) + "': expected ";
}

} // namespace

TYPE_TO_STRING(fused<float>);
TYPE_TO_STRING(fused<double>);
TYPE_TO_STRING(reference<float>);
TYPE_TO_STRING(reference<double>);

#define IKA_ENGINES fused<float>, fused<double>, reference<float>, reference<double>

// The statement after the first two arguments must throw an ika::invalid_argument whose
// argument() is `arg` and whose what() is "ika: argument '<arg>': expected ..." containing `text`.
#define CHECK_IKA_ERROR(arg, text, ...)                                                             \
  do {                                                                                              \
    const auto ika_call_ = [&] { __VA_ARGS__; };                                                    \
    const std::string ika_text_ = text;                                                             \
    CHECK_THROWS_WITH_AS(ika_call_(), doctest::Contains(ika_text_.c_str()), ika::invalid_argument); \
    try {                                                                                           \
      ika_call_();                                                                                  \
    } catch (const ika::invalid_argument& ika_error_) {                                             \
      const std::string ika_what_ = ika_error_.what();                                              \
      CHECK_MESSAGE(ika_error_.argument() == std::string_view(arg), "what(): " << ika_what_);       \
      CHECK_MESSAGE(ika_what_.starts_with(expected_prefix(arg)), "what(): " << ika_what_);          \
    } catch (...) {                                                                                 \
    }                                                                                               \
  } while (false)

namespace {

// B = 2, Hq = 4, Hkv = 2 (grouped), Lq = 5, Lk = 7, D = 3, Dv = 2. Views made wrong in a test
// keep pointing at these buffers sized for the right shape: every check must fire before any
// element is read (ASan would see an out-of-bounds read otherwise).
constexpr index_t B = 2, Hq = 4, Hkv = 2, Lq = 5, Lk = 7, D = 3, Dv = 2;

template <class T>
struct fixture {
  qkv_problem<T> p{layout::bhld, B, Hq, Hkv, Lq, Lk, D, Dv, 11};
  result<T> r{B, Hq, Lq, Dv};
  ika::tensor_view<T> q = p.q, k = p.k, v = p.v, o = r.o();
  ika::row_stat_view<T> lse = r.l();
  ika::attention_options<T> with_lse() { return {.lse = lse}; }
};

const auto softmax_logit = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0});

// A (B, H, Lq, Lk) array of bool (std::vector<bool> has no data()).
struct bool_array {
  std::unique_ptr<bool[]> data;
  explicit bool_array(index_t n, bool value = true) : data(new bool[std::size_t(n)]) {
    for (index_t i = 0; i < n; ++i) data[std::size_t(i)] = value;
  }
};

} // namespace

TEST_CASE("ika::invalid_argument carries the argument name and a readable message") {
  const ika::invalid_argument e("lp.p", "p > 0, got -1");
  CHECK(e.argument() == "lp.p");
  CHECK(std::string(e.what()) == "ika: argument 'lp.p': expected p > 0, got -1");
  const std::invalid_argument& base = e; // catchable as the standard type
  CHECK(std::string(base.what()) == e.what());
}

TEST_CASE_TEMPLATE("malformed views: negative sizes and null data", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  {
    auto q = f.q;
    q.rows = -1;
    CHECK_IKA_ERROR("q", "non-negative sizes, got (2, 4, -1, 3)", E::run(q, f.k, f.v, f.o, softmax_logit));
  }
  {
    auto v = f.v;
    v.cols = -2;
    CHECK_IKA_ERROR("v", "non-negative sizes, got (2, 2, 7, -2)", E::run(f.q, f.k, v, f.o, softmax_logit));
  }
  for (const char* which : {"q", "k", "v", "out"}) {
    CAPTURE(which);
    auto q = f.q, k = f.k, v = f.v, o = f.o;
    const std::string_view w = which;
    if (w == "q") q.data = nullptr;
    if (w == "k") k.data = nullptr;
    if (w == "v") v.data = nullptr;
    if (w == "out") o.data = nullptr;
    CHECK_IKA_ERROR(which, "a non-null pointer for a non-empty tensor", E::run(q, k, v, o, softmax_logit));
  }
  {
    auto q = f.q;
    q.heads = 0;
    CHECK_IKA_ERROR("q", "at least one head and D >= 1, got (2, 0, 5, 3)", E::run(q, f.k, f.v, f.o, softmax_logit));
    q = f.q;
    q.cols = 0;
    CHECK_IKA_ERROR("q", "at least one head and D >= 1, got (2, 4, 5, 0)", E::run(q, f.k, f.v, f.o, softmax_logit));
  }
}

TEST_CASE_TEMPLATE("a negative thread count", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  CHECK_IKA_ERROR("threads", "a thread count >= 0 (0 = chosen from the call's size), got -3",
                  E::run(f.q, f.k, f.v, f.o, softmax_logit, ika::attention_options<T>{.threads = -3}));
  CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o, softmax_logit, ika::attention_options<T>{.threads = 1}));
}

TEST_CASE_TEMPLATE("q, k, v, out and lse of the wrong shape", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  SUBCASE("k: batch or D differs from q") {
    auto k = f.k;
    k.batch = 1;
    CHECK_IKA_ERROR("k", "(B = 2, Hkv, Lk, D = 3) to match q (2, 4, 5, 3), got (1, 2, 7, 3)",
                    E::run(f.q, k, f.v, f.o, softmax_logit));
    k = f.k;
    k.cols = 2;
    CHECK_IKA_ERROR("k", "(B = 2, Hkv, Lk, D = 3) to match q (2, 4, 5, 3), got (2, 2, 7, 2)",
                    E::run(f.q, k, f.v, f.o, softmax_logit));
  }
  SUBCASE("v: rows, heads or batch differ from k, or Dv = 0") {
    auto v = f.v;
    v.rows = 6;
    CHECK_IKA_ERROR("v", "(2, 2, 7, Dv) to match k (2, 2, 7, 3), got (2, 2, 6, 2)",
                    E::run(f.q, f.k, v, f.o, softmax_logit));
    v = f.v;
    v.heads = 1;
    CHECK_IKA_ERROR("v", "(2, 2, 7, Dv) to match k (2, 2, 7, 3), got (2, 1, 7, 2)",
                    E::run(f.q, f.k, v, f.o, softmax_logit));
    v = f.v;
    v.batch = 1;
    CHECK_IKA_ERROR("v", "(2, 2, 7, Dv) to match k (2, 2, 7, 3), got (1, 2, 7, 2)",
                    E::run(f.q, f.k, v, f.o, softmax_logit));
    v = f.v;
    v.cols = 0;
    CHECK_IKA_ERROR("v", "Dv >= 1, got (2, 2, 7, 0)", E::run(f.q, f.k, v, f.o, softmax_logit));
  }
  SUBCASE("out: not (B, Hq, Lq, Dv)") {
    const auto check = [&](index_t ob, index_t oh, index_t ol, index_t od) {
      auto o = f.o;
      o.batch = ob, o.heads = oh, o.rows = ol, o.cols = od;
      CAPTURE(ob);
      CAPTURE(oh);
      CAPTURE(ol);
      CAPTURE(od);
      CHECK_IKA_ERROR("out", "(2, 4, 5, 2) = (B, Hq, Lq, Dv), got", E::run(f.q, f.k, f.v, o, softmax_logit));
    };
    check(1, Hq, Lq, Dv);
    check(B, Hkv, Lq, Dv); // the kv head count instead of the query head count
    check(B, Hq, Lk, Dv);  // Lk instead of Lq
    check(B, Hq, Lq, D);   // D instead of Dv
  }
  SUBCASE("lse: not (B, Hq, Lq)") {
    const auto check = [&](index_t lb, index_t lh, index_t ll) {
      auto opts = f.with_lse();
      opts.lse.batch = lb, opts.lse.heads = lh, opts.lse.rows = ll;
      CAPTURE(lb);
      CAPTURE(lh);
      CAPTURE(ll);
      CHECK_IKA_ERROR("lse", "(2, 4, 5) = (B, Hq, Lq), got", E::run(f.q, f.k, f.v, f.o, softmax_logit, opts));
    };
    check(1, Hq, Lq);
    check(B, Hkv, Lq);
    check(B, Hq, Lk);
    check(0, 0, 0); // a non-null pointer asks for the log-sum-exp, so the shape must be right
  }
  SUBCASE("the right shapes pass") {
    CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o, softmax_logit, f.with_lse()));
    CHECK_FALSE(any_nan(f.r.out));
    CHECK_FALSE(any_nan(f.r.lse));
  }
}

TEST_CASE_TEMPLATE("head counts: grouped_heads needs Hq % Hkv == 0, independent_heads Hq == Hkv", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  const auto with_kv_heads = [&](index_t h) {
    auto k = f.k, v = f.v;
    k.heads = v.heads = h;
    return std::pair{k, v};
  };
  for (const index_t h : {3, 0, 8}) { // 4 % 3 != 0, no kv heads, more kv heads than query heads
    CAPTURE(h);
    const auto kv = with_kv_heads(h);
    CHECK_IKA_ERROR("k", "divides the 4 query heads (Hq % Hkv == 0), got Hkv = " + std::to_string(h),
                    E::run(f.q, kv.first, kv.second, f.o, softmax_logit));
  }
  CHECK_IKA_ERROR("k",
                  "as many key/value heads as query heads (4) for independent_heads, got 2; use grouped_heads for GQA/MQA",
                  E::template run<ika::independent_heads>(f.q, f.k, f.v, f.o, softmax_logit));
  // multi-query (Hkv = 1) is grouped, and independent heads with Hkv == Hq are accepted
  {
    const auto kv = with_kv_heads(1);
    CHECK_NOTHROW(E::run(f.q, kv.first, kv.second, f.o, softmax_logit));
  }
  const qkv_problem<T> same(layout::bhld, B, Hq, Hq, Lq, Lk, D, Dv, 5);
  CHECK_NOTHROW(E::template run<ika::independent_heads>(same.q, same.k, same.v, f.o, softmax_logit));
  CHECK_FALSE(any_nan(f.r.out));
}

TEST_CASE_TEMPLATE("lp magnitude: p > 0 or infinity, finite p with norm_exponent::p", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  for (const double p : {0.0, -1.0, -inf_v, nan_v}) {
    CAPTURE(p);
    CHECK_IKA_ERROR("lp.p", "p > 0 or p = infinity, got",
                    E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{p})));
  }
  CHECK_IKA_ERROR("lp.exponent", "a finite p with norm_exponent::p",
                  E::run(f.q, f.k, f.v, f.o,
                         ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{inf_v, ika::norm_exponent::p})));
  // the accepted corners
  CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{inf_v})));
  CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o,
                       ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{0.5, ika::norm_exponent::p})));
  CHECK_FALSE(any_nan(f.r.out));
}

TEST_CASE_TEMPLATE("rbf, laplacian and dot_product parameters", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  for (const double bad : {-1.0, -inf_v, inf_v, nan_v}) {
    CAPTURE(bad);
    CHECK_IKA_ERROR("rbf.bandwidth_sq", "a finite value > 0 (or 0 for the default √D), got",
                    E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::rbf{bad}) + ika::magnitude(ika::lp{2.0})));
    CHECK_IKA_ERROR("laplacian.bandwidth", "a finite value > 0 (or 0 for the default D^(1/4)), got",
                    E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::laplacian{bad})));
  }
  for (const double bad : {nan_v, inf_v, -inf_v}) {
    CAPTURE(bad);
    CHECK_IKA_ERROR("dot_product.scale", "a finite value, got",
                    E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::dot_product{bad})));
  }
  CHECK_IKA_ERROR("dot_product.scale", "a finite value, got nan",
                  E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::dot_product{nan_v})));
  CHECK_IKA_ERROR("rbf.bandwidth_sq", "got -1", E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::rbf{-1.0})));
  // defaults (0) and explicit finite values are accepted; any finite scale is a valid temperature
  CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::rbf{0.0})));
  CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::rbf{2.5})));
  CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::laplacian{0.0})));
  CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::laplacian{0.7})));
  CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::dot_product{0.0})));
  CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::dot_product{-0.25})));
  CHECK_FALSE(any_nan(f.r.out));
}

TEST_CASE_TEMPLATE("random_fourier: spectral points of the wrong shape and a bad epsilon", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  const index_t M = 5;
  std::vector<double> storage(std::size_t(Hq * (D + 1) * M));
  fill_normal(storage, 3);
  const double* w = storage.data();
  const auto run = [&](const ika::random_fourier<double>& kernel) {
    E::run(f.q, f.k, f.v, f.o, ika::log_kernel(kernel) + ika::magnitude(ika::lp{2.0}));
  };
  const char* omega = "random_fourier.omega";
  CHECK_IKA_ERROR(omega, "shape (4, 3, M) to match the query dimension 3, got (4, 4, 5)",
                  run(ika::random_fourier{ika::spectral(w, Hq, D + 1, M)}));
  CHECK_IKA_ERROR(omega, "shape (4, 3, M) to match the query dimension 3, got (4, 2, 5)",
                  run(ika::random_fourier{ika::spectral(w, Hq, D - 1, M)}));
  // one matrix per query head (or one shared): the kv head count is not accepted
  CHECK_IKA_ERROR(omega, "shape (1 or 4, 3, M) for 4 query heads of dimension 3, got (2, 3, 5)",
                  run(ika::random_fourier{ika::spectral(w, Hkv, D, M)}));
  CHECK_IKA_ERROR(omega, "at least one spectral point (M > 0), got M = 0",
                  run(ika::random_fourier{ika::spectral(w, Hq, D, index_t(0))}));
  CHECK_IKA_ERROR(omega, "spectral points (a non-empty view), got a null view", run(ika::random_fourier<double>{}));
  for (const double eps : {0.0, -1e-5, nan_v, inf_v}) {
    CAPTURE(eps);
    ika::random_fourier<double> kernel{ika::spectral(w, Hq, D, M)};
    kernel.epsilon = eps;
    CHECK_IKA_ERROR("random_fourier.epsilon", "a finite value > 0, got", run(kernel));
  }
  CHECK_NOTHROW(run(ika::random_fourier{ika::spectral(w, Hq, D, M)}));
  CHECK_NOTHROW(run(ika::random_fourier{ika::spectral(w, 1, D, M)}));
  CHECK_FALSE(any_nan(f.r.out));
}

TEST_CASE_TEMPLATE("yaglom_rff: w1 and w2 each checked, and checked against each other", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  const index_t M = 5;
  std::vector<double> storage(std::size_t(2 * Hq * (D + 1) * M));
  fill_normal(storage, 4, 0.2);
  const double* a = storage.data();
  const double* b = a + Hq * (D + 1) * M;
  const auto run = [&](const ika::yaglom_rff<double>& kernel) {
    E::run(f.q, f.k, f.v, f.o, ika::log_kernel(kernel) + ika::magnitude(ika::lp{3.0}));
  };
  const auto good1 = ika::spectral(a, Hq, D, M), good2 = ika::spectral(b, Hq, D, M);
  CHECK_IKA_ERROR("yaglom_rff.w1", "to match the query dimension 3, got (4, 4, 5)",
                  run(ika::yaglom_rff{ika::spectral(a, Hq, D + 1, M), good2}));
  CHECK_IKA_ERROR("yaglom_rff.w2", "to match the query dimension 3, got (4, 4, 5)",
                  run(ika::yaglom_rff{good1, ika::spectral(b, Hq, D + 1, M)}));
  CHECK_IKA_ERROR("yaglom_rff.w1", "shape (1 or 4, 3, M) for 4 query heads",
                  run(ika::yaglom_rff{ika::spectral(a, 3, D, M), good2}));
  CHECK_IKA_ERROR("yaglom_rff.w2", "at least one spectral point (M > 0), got M = 0",
                  run(ika::yaglom_rff{good1, ika::spectral(b, Hq, D, index_t(0))}));
  CHECK_IKA_ERROR("yaglom_rff.w1", "got a null view", run(ika::yaglom_rff<double>{{}, good2}));
  CHECK_IKA_ERROR("yaglom_rff.w2", "got a null view", run(ika::yaglom_rff<double>{good1, {}}));
  // each valid on its own, but not the same shape
  CHECK_IKA_ERROR("yaglom_rff.w2", "the shape of w1 (4, 3, 5), got (1, 3, 5)",
                  run(ika::yaglom_rff{good1, ika::spectral(b, 1, D, M)}));
  CHECK_IKA_ERROR("yaglom_rff.w2", "the shape of w1 (4, 3, 5), got (4, 3, 4)",
                  run(ika::yaglom_rff{good1, ika::spectral(b, Hq, D, M - 1)}));
  for (const double eps : {0.0, -1.0, nan_v, -inf_v}) {
    CAPTURE(eps);
    ika::yaglom_rff<double> kernel{good1, good2};
    kernel.epsilon = eps;
    CHECK_IKA_ERROR("yaglom_rff.epsilon", "a finite value > 0, got", run(kernel));
  }
  CHECK_NOTHROW(run(ika::yaglom_rff{good1, good2}));
  CHECK_NOTHROW(run(ika::yaglom_rff{ika::spectral(a, 1, D, M), ika::spectral(b, 1, D, M)}));
  CHECK_FALSE(any_nan(f.r.out));
}

TEST_CASE("from_seed: non-positive sizes and a bad bandwidth") {
  struct sizes {
    index_t heads, dim, count;
  };
  const sizes bad_sizes[] = {{0, 3, 5}, {4, 0, 5}, {4, 3, 0}, {-1, 3, 5}, {4, -3, 5}, {4, 3, -5}};
  for (const sizes s : bad_sizes) {
    CAPTURE(s.heads);
    CAPTURE(s.dim);
    CAPTURE(s.count);
    const std::string got = "sizes > 0, got (" + std::to_string(s.heads) + ", " + std::to_string(s.dim) +
                            ", " + std::to_string(s.count) + ")";
    CHECK_IKA_ERROR("from_seed(heads, dim, count)", got, ika::random_fourier<double>::from_seed(1, s.heads, s.dim, s.count));
    CHECK_IKA_ERROR("from_seed(heads, dim, count)", got, ika::random_fourier<float>::from_seed(1, s.heads, s.dim, s.count, 2.0));
    CHECK_IKA_ERROR("from_seed(heads, dim, count)", got, ika::yaglom_rff<double>::from_seed(1, s.heads, s.dim, s.count));
    CHECK_IKA_ERROR("from_seed(heads, dim, count)", got, ika::yaglom_rff<float>::from_seed(1, s.heads, s.dim, s.count, 2.0));
  }
  for (const double bad : {-1.0, nan_v, inf_v, -inf_v}) {
    CAPTURE(bad);
    CHECK_IKA_ERROR("from_seed.bandwidth_sq", "a finite value > 0 (or 0 for √D), got",
                    ika::random_fourier<double>::from_seed(1, 4, 3, 5, bad));
    CHECK_IKA_ERROR("from_seed.bandwidth_sq", "a finite value > 0 (or 0 for √D), got",
                    ika::yaglom_rff<double>::from_seed(1, 4, 3, 5, bad));
  }
  CHECK_NOTHROW(ika::random_fourier<double>::from_seed(1, 1, 1, 1));
  CHECK_NOTHROW(ika::yaglom_rff<float>::from_seed(1, 4, 3, 5, 0.5));
}

TEST_CASE_TEMPLATE("key_padding: one length per batch row, each in [0, Lk]", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  const auto run = [&](const std::vector<int>& lengths) {
    E::run(f.q, f.k, f.v, f.o, softmax_logit + ika::mask(ika::key_padding{lengths}));
  };
  CHECK_IKA_ERROR("key_padding.lengths", "one length per batch row (2), got 1", run({7}));
  CHECK_IKA_ERROR("key_padding.lengths", "one length per batch row (2), got 3", run({7, 7, 7}));
  CHECK_IKA_ERROR("key_padding.lengths", "one length per batch row (2), got 0", run({}));
  CHECK_IKA_ERROR("key_padding.lengths", "lengths in [0, Lk = 7], got lengths[1] = 8", run({7, 8}));
  CHECK_IKA_ERROR("key_padding.lengths", "lengths in [0, Lk = 7], got lengths[0] = -1", run({-1, 3}));
  CHECK_NOTHROW(run({0, 7})); // both ends of the range; a length of 0 is a fully masked batch row
  CHECK_FALSE(any_nan(f.r.out));
}

TEST_CASE_TEMPLATE("keep_mask and additive_bias: shape (B, Hq, Lq, Lk), 1 broadcasts", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  const index_t n = B * Hq * Lq * Lk;
  bool_array keep(2 * n);
  std::vector<double> bias(std::size_t(2 * n), 0.25);
  const auto run_keep = [&](index_t b, index_t h, index_t i, index_t j) {
    E::run(f.q, f.k, f.v, f.o, softmax_logit + ika::mask(ika::keep_mask{ika::dense(keep.data.get(), b, h, i, j)}));
  };
  const auto run_bias = [&](index_t b, index_t h, index_t i, index_t j) {
    E::run(f.q, f.k, f.v, f.o, softmax_logit + ika::mask(ika::additive_bias{ika::dense(bias.data(), b, h, i, j)}));
  };
  struct bad_shape {
    index_t b, h, i, j;
    const char* text;
  };
  const bad_shape cases[] = {
      {3, Hq, Lq, Lk, "shape (2, 4, 5, 7) or 1 to broadcast along B, got (3, 4, 5, 7)"},
      {B, Hkv, Lq, Lk, "shape (2, 4, 5, 7) or 1 to broadcast along H, got (2, 2, 5, 7)"}, // kv heads, not q heads
      {B, Hq, Lk, Lk, "shape (2, 4, 5, 7) or 1 to broadcast along Lq, got (2, 4, 7, 7)"},
      {B, Hq, Lq, Lq, "shape (2, 4, 5, 7) or 1 to broadcast along Lk, got (2, 4, 5, 5)"},
      {B, Hq, Lq, 0, "shape (2, 4, 5, 7) or 1 to broadcast along Lk, got (2, 4, 5, 0)"},
      {B, Hq, Lq, Lk + 1, "shape (2, 4, 5, 7) or 1 to broadcast along Lk, got (2, 4, 5, 8)"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    CHECK_IKA_ERROR("keep_mask", c.text, run_keep(c.b, c.h, c.i, c.j));
    CHECK_IKA_ERROR("additive_bias", c.text, run_bias(c.b, c.h, c.i, c.j));
  }
  CHECK_IKA_ERROR("keep_mask", "a non-null (B, H, Lq, Lk) array",
                  E::run(f.q, f.k, f.v, f.o, softmax_logit + ika::mask(ika::keep_mask{})));
  CHECK_IKA_ERROR("additive_bias", "a non-null (B, H, Lq, Lk) array",
                  E::run(f.q, f.k, f.v, f.o, softmax_logit + ika::mask(ika::additive_bias<double>{})));
}

TEST_CASE_TEMPLATE("keep_mask and additive_bias: every size-1 pattern broadcasts like the expanded array", E,
                   IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  const index_t full[4] = {B, Hq, Lq, Lk};
  const index_t n = B * Hq * Lq * Lk;
  for (int pattern = 0; pattern < 16; ++pattern) { // bit d set: dimension d has size 1
    index_t size[4];
    for (int d = 0; d < 4; ++d) size[d] = (pattern >> d) & 1 ? 1 : full[d];
    CAPTURE(pattern);
    const index_t m = size[0] * size[1] * size[2] * size[3];
    bool_array small_keep(m), full_keep(n);
    std::vector<T> small_bias(static_cast<std::size_t>(m)), full_bias(static_cast<std::size_t>(n));
    // a pattern that depends on every index left, and keeps key 0 so no row is fully masked
    const auto keep_at = [&](index_t b, index_t h, index_t i, index_t j) {
      return j == 0 || (b + 2 * h + 3 * i + j) % 3 != 0;
    };
    const auto bias_at = [&](index_t b, index_t h, index_t i, index_t j) { return T(0.1 * double(b - h + 2 * i - j)); };
    for (index_t b = 0; b < B; ++b)
      for (index_t h = 0; h < Hq; ++h)
        for (index_t i = 0; i < Lq; ++i)
          for (index_t j = 0; j < Lk; ++j) {
            // the value the broadcast array holds at (b, h, i, j)
            const index_t sb = size[0] == 1 ? 0 : b, sh = size[1] == 1 ? 0 : h, si = size[2] == 1 ? 0 : i,
                          sj = size[3] == 1 ? 0 : j;
            const index_t small_at = ((sb * size[1] + sh) * size[2] + si) * size[3] + sj;
            const index_t full_at = ((b * Hq + h) * Lq + i) * Lk + j;
            small_keep.data[std::size_t(small_at)] = full_keep.data[std::size_t(full_at)] = keep_at(sb, sh, si, sj);
            small_bias[std::size_t(small_at)] = full_bias[std::size_t(full_at)] = bias_at(sb, sh, si, sj);
          }
    result<T> broadcast(B, Hq, Lq, Dv), expanded(B, Hq, Lq, Dv);
    const auto small_view = ika::dense(small_keep.data.get(), size[0], size[1], size[2], size[3]);
    const auto full_view = ika::dense(full_keep.data.get(), B, Hq, Lq, Lk);
    const auto small_bias_view = ika::dense(small_bias.data(), size[0], size[1], size[2], size[3]);
    const auto full_bias_view = ika::dense(full_bias.data(), B, Hq, Lq, Lk);
    REQUIRE_NOTHROW(E::run(f.q, f.k, f.v, broadcast.o(),
                           softmax_logit + ika::mask(ika::keep_mask{small_view}) +
                               ika::mask(ika::additive_bias{small_bias_view}),
                           ika::attention_options<T>{.lse = broadcast.l()}));
    E::run(f.q, f.k, f.v, expanded.o(),
           softmax_logit + ika::mask(ika::keep_mask{full_view}) + ika::mask(ika::additive_bias{full_bias_view}),
           ika::attention_options<T>{.lse = expanded.l()});
    CHECK_FALSE(any_nan(broadcast.out));
    CHECK(broadcast.out == expanded.out);
    CHECK(broadcast.lse == expanded.lse);
  }
}

TEST_CASE_TEMPLATE("graph_csr: offsets and neighbour lists", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f;
  // Lq = 5 nodes with neighbour lists into Lk = 7 nodes
  const std::vector<int> offsets{0, 2, 3, 3, 5, 6}, columns{0, 1, 2, 3, 6, 4};
  const auto run = [&](const std::vector<int>& off, const std::vector<int>& col) {
    E::run(f.q, f.k, f.v, f.o, softmax_logit + ika::mask(ika::graph_csr{off, col}));
  };
  CHECK_NOTHROW(run(offsets, columns));
  CHECK_FALSE(any_nan(f.r.out));
  CHECK_IKA_ERROR("graph_csr.row_offsets", "Lq + 1 = 6 entries, got 5", run({0, 2, 3, 3, 5}, {0, 1, 2, 3, 6}));
  CHECK_IKA_ERROR("graph_csr.row_offsets", "Lq + 1 = 6 entries, got 7", run({0, 2, 3, 3, 5, 6, 6}, columns));
  CHECK_IKA_ERROR("graph_csr.row_offsets", "Lq + 1 = 6 entries, got 0", run({}, {}));
  CHECK_IKA_ERROR("graph_csr.row_offsets", "row_offsets[0] == 0, got 1", run({1, 2, 3, 3, 5, 6}, columns));
  CHECK_IKA_ERROR("graph_csr.row_offsets", "non-decreasing offsets, got 3 then 2 at row 2",
                  run({0, 2, 3, 2, 5, 6}, columns));
  CHECK_IKA_ERROR("graph_csr.col_index", "row_offsets[Lq] = 6 entries, got 5", run(offsets, {0, 1, 2, 3, 6}));
  CHECK_IKA_ERROR("graph_csr.col_index", "row_offsets[Lq] = 6 entries, got 7", run(offsets, {0, 1, 2, 3, 6, 4, 5}));
  CHECK_IKA_ERROR("graph_csr.col_index", "node indices in [0, Lk = 7), got col_index[4] = 7",
                  run(offsets, {0, 1, 2, 3, 7, 4}));
  CHECK_IKA_ERROR("graph_csr.col_index", "node indices in [0, Lk = 7), got col_index[0] = -1",
                  run(offsets, {-1, 1, 2, 3, 6, 4}));
  CHECK_IKA_ERROR("graph_csr.col_index", "each neighbour at most once per row, got a repeat in row 3",
                  run(offsets, {0, 1, 2, 6, 6, 4}));
  CHECK_IKA_ERROR("graph_csr.col_index", "each neighbour at most once per row, got a repeat in row 0",
                  run({0, 3, 3, 3, 5, 6}, {4, 1, 4, 3, 6, 4}));
  // the same node in different rows is fine
  CHECK_NOTHROW(run(offsets, {4, 1, 4, 4, 6, 4}));
}

TEST_CASE_TEMPLATE("plain causal needs Lq == Lk and names the two aligned variants", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f; // Lq = 5, Lk = 7
  CHECK_IKA_ERROR("causal", "Lq == Lk (got Lq = 5, Lk = 7); for Lq != Lk choose causal_upper_left or causal_lower_right",
                  E::run(f.q, f.k, f.v, f.o, softmax_logit + ika::mask(ika::causal{})));
  CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o, softmax_logit + ika::mask(ika::causal_upper_left{})));
  CHECK_NOTHROW(E::run(f.q, f.k, f.v, f.o, softmax_logit + ika::mask(ika::causal_lower_right{})));
  CHECK_FALSE(any_nan(f.r.out));
  // Lq > Lk too
  const qkv_problem<T> longer(layout::bhld, B, Hq, Hkv, Lq, Lk - 4, D, Dv, 9);
  CHECK_IKA_ERROR("causal", "Lq == Lk (got Lq = 5, Lk = 3)",
                  E::run(f.q, longer.k, longer.v, f.o, softmax_logit + ika::mask(ika::causal{})));
  const qkv_problem<T> square(layout::bhld, B, Hq, Hkv, Lq, Lq, D, Dv, 9);
  CHECK_NOTHROW(E::run(square.q, square.k, square.v, f.o, softmax_logit + ika::mask(ika::causal{})));
}

TEST_CASE_TEMPLATE("a rejected call writes nothing to out or lse", E, IKA_ENGINES) {
  using T = typename E::value_type;
  fixture<T> f; // out and lse are prefilled with NaN
  const auto untouched = [&] {
    return std::all_of(f.r.out.begin(), f.r.out.end(), [](T x) { return std::isnan(x); }) &&
           std::all_of(f.r.lse.begin(), f.r.lse.end(), [](T x) { return std::isnan(x); });
  };
  const std::vector<int> lengths{7, 9};
  CHECK_THROWS_AS(E::run(f.q, f.k, f.v, f.o, softmax_logit + ika::mask(ika::key_padding{lengths}), f.with_lse()),
                  ika::invalid_argument);
  CHECK(untouched());
  CHECK_THROWS_AS(E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{-2.0}), f.with_lse()),
                  ika::invalid_argument);
  CHECK(untouched());
  CHECK_THROWS_AS(E::run(f.q, f.k, f.v, f.o, ika::log_kernel(ika::laplacian{nan_v}), f.with_lse()),
                  ika::invalid_argument);
  CHECK(untouched());
  // the last of several masks is the bad one
  CHECK_THROWS_AS(E::run(f.q, f.k, f.v, f.o,
                         softmax_logit + ika::mask(ika::causal_lower_right{}) + ika::mask(ika::causal{}), f.with_lse()),
                  ika::invalid_argument);
  CHECK(untouched());
}

TEST_CASE_TEMPLATE("B = 0 and Lq = 0 are not errors and write nothing", E, IKA_ENGINES) {
  using T = typename E::value_type;
  const T sentinel = T(-7);
  std::vector<T> out(1, sentinel), lse(1, sentinel), x(1, T(1));
  const std::vector<int> no_lengths;
  const std::vector<int> no_edges, one_offset{0};
  const std::vector<int> lq_offsets(std::size_t(Lq + 1), 0);
  for (const bool null_data : {true, false}) {
    CAPTURE(null_data);
    T* data = null_data ? nullptr : x.data();
    T* o = null_data ? nullptr : out.data();
    T* l = null_data ? nullptr : lse.data();
    // B = 0
    {
      const auto q = ika::bhld(data, 0, Hq, Lq, D);
      const auto k = ika::bhld(data, 0, Hkv, Lk, D), v = ika::bhld(data, 0, Hkv, Lk, Dv);
      const auto ov = ika::bhld(o, 0, Hq, Lq, Dv);
      const ika::attention_options<T> opts{.lse = ika::bhl(l, 0, Hq, Lq)};
      CHECK_NOTHROW(E::run(q, k, v, ov, softmax_logit, opts));
      CHECK_NOTHROW(E::run(q, k, v, ov, softmax_logit + ika::mask(ika::key_padding{no_lengths}), opts));
      CHECK_NOTHROW(E::run(q, k, v, ov, softmax_logit + ika::mask(ika::causal_lower_right{}), opts));
      CHECK_NOTHROW(E::run(q, k, v, ov, softmax_logit + ika::mask(ika::graph_csr{lq_offsets, no_edges}), opts));
      CHECK_NOTHROW(E::run(q, k, v, ov, ika::log_kernel(ika::yaglom_rff<T>::from_seed(3, Hq, D, 4)), opts));
      CHECK_NOTHROW(E::template run<ika::independent_heads>(q, ika::bhld(data, 0, Hq, Lk, D), ika::bhld(data, 0, Hq, Lk, Dv),
                                                            ov, ika::log_kernel(ika::laplacian{}), opts));
    }
    // Lq = 0 (Lk = 7 keys, nobody asks)
    {
      const qkv_problem<T> p(layout::bhld, B, Hq, Hkv, Lq, Lk, D, Dv, 2);
      auto q = p.q;
      q.rows = 0;
      if (null_data) q.data = nullptr;
      const auto ov = ika::strided(o, B, Hq, 0, Dv, 0, 0, 0);
      const ika::attention_options<T> opts{.lse = {l, B, Hq, 0, 0, 0, 1}};
      CHECK_NOTHROW(E::run(q, p.k, p.v, ov, softmax_logit, opts));
      CHECK_NOTHROW(E::run(q, p.k, p.v, ov, softmax_logit + ika::mask(ika::causal_upper_left{}), opts));
      CHECK_NOTHROW(E::run(q, p.k, p.v, ov, softmax_logit + ika::mask(ika::graph_csr{one_offset, no_edges}), opts));
    }
  }
  CHECK(out[0] == sentinel);
  CHECK(lse[0] == sentinel);
}

TEST_CASE_TEMPLATE("Lk = 0: zero output and a -inf log-sum-exp, never NaN", E, IKA_ENGINES) {
  using T = typename E::value_type;
  const std::vector<int> zero_lengths(std::size_t(B), 0);
  const std::vector<int> no_neighbours(std::size_t(Lq + 1), 0), no_edges;
  const qkv_problem<T> p(layout::bhld, B, Hq, Hkv, Lq, Lk, D, Dv, 8);
  for (const bool null_data : {true, false}) {
    CAPTURE(null_data);
    auto k = p.k, v = p.v;
    k.rows = v.rows = 0;
    if (null_data) k.data = v.data = nullptr;
    int expression = 0;
    const auto check = [&](const auto& logit) {
      CAPTURE(expression);
      ++expression;
      result<T> r(B, Hq, Lq, Dv);
      REQUIRE_NOTHROW(E::run(p.q, k, v, r.o(), logit, ika::attention_options<T>{.lse = r.l()}));
      CHECK(std::all_of(r.out.begin(), r.out.end(), [](T x) { return x == T(0); }));
      CHECK(std::all_of(r.lse.begin(), r.lse.end(), [](T x) { return x == -std::numeric_limits<T>::infinity(); }));
    };
    check(softmax_logit);
    check(ika::log_kernel(ika::dot_product{}));
    check(ika::log_kernel(ika::laplacian{}) + ika::magnitude(ika::lp{1.0}));
    check(ika::log_kernel(ika::random_fourier<T>::from_seed(1, Hq, D, 8)) + ika::magnitude(ika::lp{inf_v}));
    check(ika::log_kernel(ika::yaglom_rff<double>::from_seed(2, 1, D, 3)) +
          ika::magnitude(ika::lp{3.0, ika::norm_exponent::p}));
    check(softmax_logit + ika::mask(ika::key_padding{zero_lengths}));
    check(softmax_logit + ika::mask(ika::causal_upper_left{}));
    check(softmax_logit + ika::mask(ika::causal_lower_right{}));
    check(softmax_logit + ika::mask(ika::graph_csr{no_neighbours, no_edges}));
  }
}

// An empty std::vector's data() may be null: a mask with no elements accepts it, as views do.
TEST_CASE_TEMPLATE("B = 0 with a dense mask over an empty buffer", E, fused<float>,
                   reference<double>) {
  using T = typename E::value_type;
  const auto q = ika::bhld<T>(nullptr, 0, Hq, Lq, D), k = ika::bhld<T>(nullptr, 0, Hkv, Lk, D),
             v = ika::bhld<T>(nullptr, 0, Hkv, Lk, Dv);
  const auto o = ika::bhld<T>(nullptr, 0, Hq, Lq, Dv);
  const std::vector<double> no_bias;
  const auto no_keep = ika::dense<const bool>(nullptr, 0, Hq, Lq, Lk);
  CHECK_NOTHROW(E::run(q, k, v, o, softmax_logit + ika::mask(ika::keep_mask{no_keep})));
  CHECK_NOTHROW(E::run(q, k, v, o, softmax_logit + ika::mask(ika::additive_bias{ika::dense(no_bias.data(), 0, Hq, Lq, Lk)})));
}
