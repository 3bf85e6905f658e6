// SPDX-License-Identifier: MIT
// bench_attention: the fused engine against a naive materialised Eigen baseline, in one run.
//
// Four methods, each at fp32, B = 1, H = 8, D = Dv = 64, L = Lq = Lk ∈ {256, 1024, 4096},
// threads ∈ {1, 2}:
//   fused_softmax     ika::attention, log_kernel(rbf{}) + magnitude(lp{2})   == softmax(QKᵀ/√D)·V
//   baseline_softmax  Eigen, per (b, h): S = QKᵀ (GEMM), row softmax of S/√D, O = P·V (GEMM)
//   fused_ika         ika::attention, log_kernel(yaglom_rff<float>::from_seed(seed, H, D, 64))
//                     + magnitude(lp{3})
//   baseline_ika      Eigen, per (b, h): Yaglom features Φq, Φk (two GEMMs + cos/sin each),
//                     S = Φq·Φkᵀ (GEMM), logit = log(S² + 1e-5) + μ(k_j), row softmax, O = P·V
//                     with μ(k) = ‖k‖₃² / (2√D)
//
// Threading: the fused engine gets {.threads = n}; the baseline is an OpenMP loop over the B·H
// (batch, head) pairs with num_threads(n) and Eigen's own threading off (Eigen::setNbThreads(1)),
// so both are one thread per head-task with the same team size.
//
// Counters (per call):
//   GFLOP/s       conventional attention flops 4·B·H·Lq·Lk·D per call / real time, for every method
//                 (2·Lq·Lk·D for QKᵀ plus 2·Lq·Lk·Dv for P·V, D = Dv; exp, log, max, sums ignored)
//   real_GFLOP/s  only for the IKA kernel (fused and baseline): the flops the random-feature
//                 kernel really needs per (b, h):
//                   2·Lq·Lk·2M              feature product Φq·Φkᵀ (feature dimension 2M)
//                 + 2·Lq·Lk·Dv              P·V
//                 + 2·(Lq + Lk)·M·D·2       feature maps: two projections W₁ᵀx, W₂ᵀx per row
//                 everything else (cos/sin, log, exp, ‖k‖₃, max, sums) ignored.
//   peak_MiB      peak extra heap memory of one call: global operator new/delete are replaced
//                 below by counting versions; before a call the peak is reset to the current
//                 byte count, after it peak − before is recorded; the counter is the largest value
//                 over all iterations and one first call from a fresh thread (ika's workspace
//                 lives in thread-local arenas reused across calls, which only that call sees). Only operator new is seen: std::malloc made by Eigen itself
//                 (its GEMM packing blocks) is not counted, which is why the baseline takes every
//                 O(L²) and O(L·M) buffer from operator new.
//
// Every benchmark runs 5 repetitions of at least 0.5 s each (bench/plot.py uses the medians); the
// whole run takes about 2 minutes on 2 cores.
//
// At startup (outside any timed loop) each baseline is checked against its fused counterpart at
// every L with 2 threads; the run aborts unless max |O_fused − O_baseline| < 1e-3.

#include <benchmark/benchmark.h>

// GCC 12 reports its own _mm512_undefined_epi32() as uninitialised when it inlines Eigen's AVX-512
// sin/cos (a known false positive, like the -Wmaybe-uninitialized one the project already mutes).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <numbers>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>

#include <ika/ika.hpp>

// ---- counting global operator new / delete ------------------------------------------------------

namespace heap {

std::atomic<std::int64_t> current{0};
std::atomic<std::int64_t> peak{0};

// Every block carries a 16-byte header just below the user pointer: {size, alignment}. The raw
// block starts `alignment` bytes below the user pointer (alignment ≥ 16).
void* allocate(std::size_t n, std::size_t align) {
  align = std::max<std::size_t>(align, 16);
  void* raw = nullptr;
  if (align == 16) raw = std::malloc(n + align);
  else if (posix_memalign(&raw, align, n + align) != 0) raw = nullptr;
  if (!raw) return nullptr;
  auto* user = static_cast<unsigned char*>(raw) + align;
  auto* header = reinterpret_cast<std::size_t*>(user) - 2;
  header[0] = n;
  header[1] = align;
  const std::int64_t now = current.fetch_add(std::int64_t(n), std::memory_order_relaxed) + std::int64_t(n);
  std::int64_t p = peak.load(std::memory_order_relaxed);
  while (now > p && !peak.compare_exchange_weak(p, now, std::memory_order_relaxed)) {
  }
  return user;
}

void release(void* user) noexcept {
  if (!user) return;
  const auto* header = static_cast<const std::size_t*>(user) - 2;
  const std::size_t n = header[0], align = header[1];
  current.fetch_sub(std::int64_t(n), std::memory_order_relaxed);
  std::free(static_cast<unsigned char*>(user) - align);
}

void* allocate_or_throw(std::size_t n, std::size_t align) {
  if (void* p = allocate(n, align)) return p;
  throw std::bad_alloc();
}

// Start of a measured call: the peak forgets everything before it.
std::int64_t reset_peak() {
  const std::int64_t now = current.load(std::memory_order_relaxed);
  peak.store(now, std::memory_order_relaxed);
  return now;
}

} // namespace heap

void* operator new(std::size_t n) { return heap::allocate_or_throw(n, 16); }
void* operator new[](std::size_t n) { return heap::allocate_or_throw(n, 16); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return heap::allocate(n, 16); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return heap::allocate(n, 16); }
void* operator new(std::size_t n, std::align_val_t a) { return heap::allocate_or_throw(n, std::size_t(a)); }
void* operator new[](std::size_t n, std::align_val_t a) { return heap::allocate_or_throw(n, std::size_t(a)); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return heap::allocate(n, std::size_t(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return heap::allocate(n, std::size_t(a));
}
void operator delete(void* p) noexcept { heap::release(p); }
void operator delete[](void* p) noexcept { heap::release(p); }
void operator delete(void* p, std::size_t) noexcept { heap::release(p); }
void operator delete[](void* p, std::size_t) noexcept { heap::release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { heap::release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { heap::release(p); }
void operator delete(void* p, std::align_val_t) noexcept { heap::release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { heap::release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { heap::release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { heap::release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { heap::release(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { heap::release(p); }

// ---- problem ---------------------------------------------------------------------------------

namespace {

constexpr ika::index_t B = 1, H = 8, D = 64, Dv = 64, M = 64;
constexpr std::uint64_t kernel_seed = 42;
constexpr float rff_epsilon = 1e-5f;

using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using row_map = Eigen::Map<row_matrix, Eigen::Aligned64>;
using const_row_map = Eigen::Map<const row_matrix, Eigen::Aligned64>;

// Uninitialised, 64-byte aligned float storage from operator new (so peak_MiB sees it).
struct floats {
  struct deleter {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  std::unique_ptr<float[], deleter> p;
  explicit floats(std::size_t n) : p(static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t(64)))) {}
  float* get() const { return p.get(); }
};

// Q, K, V ~ N(0, 1) in (B, H, L, D) layout, and the output, made once per L; 64-byte aligned.
struct problem {
  ika::index_t L;
  std::size_t n, nv;
  floats q, k, v, out;
  explicit problem(ika::index_t L_)
      : L(L_), n(std::size_t(B * H * L * D)), nv(std::size_t(B * H * L * Dv)), q(n), k(n), v(nv), out(nv) {
    std::mt19937_64 rng(1234 + std::uint64_t(L));
    std::normal_distribution<float> normal(0.f, 1.f);
    for (std::size_t i = 0; i < n; ++i) q.get()[i] = normal(rng);
    for (std::size_t i = 0; i < n; ++i) k.get()[i] = normal(rng);
    for (std::size_t i = 0; i < nv; ++i) v.get()[i] = normal(rng);
    std::fill(out.get(), out.get() + nv, 0.f);
  }
  ika::tensor_view<const float> qv() const { return ika::bhld(static_cast<const float*>(q.get()), B, H, L, D); }
  ika::tensor_view<const float> kv() const { return ika::bhld(static_cast<const float*>(k.get()), B, H, L, D); }
  ika::tensor_view<const float> vv() const { return ika::bhld(static_cast<const float*>(v.get()), B, H, L, Dv); }
  ika::tensor_view<float> ov() { return ika::bhld(out.get(), B, H, L, Dv); }
  std::vector<float> output() const { return {out.get(), out.get() + nv}; }
};

problem& problem_for(ika::index_t L) {
  static std::map<ika::index_t, std::unique_ptr<problem>> cache;
  auto& p = cache[L];
  if (!p) p = std::make_unique<problem>(L);
  return *p;
}

// The IKA kernel, drawn once; its points 2π·W₁, 2π·W₂ as per-head (D, M) Eigen matrices,
// rounded to float exactly as the engine packs them.
struct ika_kernel {
  ika::yaglom_rff<float> kernel = ika::yaglom_rff<float>::from_seed(kernel_seed, H, D, M);
  std::vector<row_matrix> w1, w2;
  ika_kernel() {
    const double two_pi = 2 * std::numbers::pi;
    for (ika::index_t h = 0; h < H; ++h) {
      row_matrix a(D, M), b(D, M);
      for (ika::index_t d = 0; d < D; ++d)
        for (ika::index_t m = 0; m < M; ++m) {
          a(d, m) = float(two_pi * double(kernel.w1(h, d, m)));
          b(d, m) = float(two_pi * double(kernel.w2(h, d, m)));
        }
      w1.push_back(std::move(a));
      w2.push_back(std::move(b));
    }
  }
};

const ika_kernel& ika_points() {
  static const ika_kernel k;
  return k;
}

auto softmax_logit() { return ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}); }
auto ika_logit() { return ika::log_kernel(ika_points().kernel) + ika::magnitude(ika::lp{3.0}); }

// ---- methods ------------------------------------------------------------------------------------

void fused_softmax(problem& p, int threads) {
  ika::attention(p.qv(), p.kv(), p.vv(), p.ov(), softmax_logit(), {.threads = threads});
}

void fused_ika(problem& p, int threads) {
  ika::attention(p.qv(), p.kv(), p.vv(), p.ov(), ika_logit(), {.threads = threads});
}

// Row softmax in place over a row-major (L, L) score matrix, logit = f(row) computed by `logit`;
// returns 1/Σ per row in inv_sum.
template <class Logit>
void row_softmax(float* s, ika::index_t L, float* inv_sum, Logit&& logit) {
  for (ika::index_t i = 0; i < L; ++i) {
    Eigen::Map<Eigen::ArrayXf, Eigen::Aligned64> row(s + i * L, L);
    logit(row);
    const float m = row.maxCoeff();
    row = (row - m).exp();
    inv_sum[i] = 1.f / row.sum();
  }
}

// O = diag(inv_sum) · P · V for one (b, h).
void weighted_values(const float* P, const float* v, const float* inv_sum, float* o, ika::index_t L) {
  const_row_map Pm(P, L, L);
  const_row_map Vm(v, L, Dv);
  row_map Om(o, L, Dv);
  Om.noalias() = Pm * Vm;
  Om.array().colwise() *= Eigen::Map<const Eigen::ArrayXf>(inv_sum, L);
}

void baseline_softmax(problem& p, int threads) {
  const ika::index_t L = p.L;
  const float scale = 1.f / std::sqrt(float(D));
#pragma omp parallel num_threads(threads)
  {
    floats S{std::size_t(L * L)}, inv_sum{std::size_t(L)};
#pragma omp for schedule(static)
    for (ika::index_t bh = 0; bh < B * H; ++bh) {
      const float* q = p.q.get() + bh * L * D;
      const float* k = p.k.get() + bh * L * D;
      const float* v = p.v.get() + bh * L * Dv;
      row_map Sm(S.get(), L, L);
      Sm.noalias() = const_row_map(q, L, D) * const_row_map(k, L, D).transpose();
      // softmax of S/√D: exp((s − max s)/√D), scale > 0
      row_softmax(S.get(), L, inv_sum.get(), [scale](auto& row) { row *= scale; });
      weighted_values(S.get(), v, inv_sum.get(), p.out.get() + bh * L * Dv, L);
    }
  }
}

// Φ(x) rows for the L rows of x (row-major (L, D)) into phi (row-major (L, 2M)):
// (4M)^-½ [cos Z₁ + cos Z₂, sin Z₁ + sin Z₂], Z_i = X · (2π W_i).
void yaglom_features(const float* x, ika::index_t L, const row_matrix& w1, const row_matrix& w2, float* z1,
                     float* z2, float* phi) {
  const float c = float(1.0 / std::sqrt(4.0 * double(M)));
  const_row_map X(x, L, D);
  row_map Z1(z1, L, M), Z2(z2, L, M), Phi(phi, L, 2 * M);
  Z1.noalias() = X * w1;
  Z2.noalias() = X * w2;
  Phi.leftCols(M) = (c * (Z1.array().cos() + Z2.array().cos())).matrix();
  Phi.rightCols(M) = (c * (Z1.array().sin() + Z2.array().sin())).matrix();
}

void baseline_ika(problem& p, int threads) {
  const ika::index_t L = p.L;
  const auto& points = ika_points();
  const double mu_divisor = 2 * std::sqrt(double(D));
#pragma omp parallel num_threads(threads)
  {
    floats S{std::size_t(L * L)}, inv_sum{std::size_t(L)}, mu{std::size_t(L)};
    floats z1{std::size_t(L * M)}, z2{std::size_t(L * M)}, phi_q{std::size_t(L * 2 * M)},
        phi_k{std::size_t(L * 2 * M)};
#pragma omp for schedule(static)
    for (ika::index_t bh = 0; bh < B * H; ++bh) {
      const ika::index_t h = bh % H;
      const float* q = p.q.get() + bh * L * D;
      const float* k = p.k.get() + bh * L * D;
      const float* v = p.v.get() + bh * L * Dv;
      yaglom_features(q, L, points.w1[h], points.w2[h], z1.get(), z2.get(), phi_q.get());
      yaglom_features(k, L, points.w1[h], points.w2[h], z1.get(), z2.get(), phi_k.get());
      // μ(k_j) = ‖k_j‖₃² / (2√D)
      const const_row_map K(k, L, D);
      for (ika::index_t j = 0; j < L; ++j)
        mu.get()[j] = float(std::pow(double(K.row(j).array().abs().cube().sum()), 2.0 / 3.0) / mu_divisor);
      row_map Sm(S.get(), L, L);
      Sm.noalias() = const_row_map(phi_q.get(), L, 2 * M) * const_row_map(phi_k.get(), L, 2 * M).transpose();
      const Eigen::Map<const Eigen::ArrayXf, Eigen::Aligned64> mu_row(mu.get(), L);
      row_softmax(S.get(), L, inv_sum.get(), [&mu_row](auto& row) { row = (row.square() + rff_epsilon).log() + mu_row; });
      weighted_values(S.get(), v, inv_sum.get(), p.out.get() + bh * L * Dv, L);
    }
  }
}

// ---- flop conventions -------------------------------------------------------------------------

double conventional_flops(ika::index_t L) { return 4.0 * double(B * H) * double(L) * double(L) * double(D); }

double ika_real_flops(ika::index_t L) {
  const double Lq = double(L), Lk = double(L);
  return double(B * H) * (2 * Lq * Lk * 2 * M + 2 * Lq * Lk * Dv + 2 * (Lq + Lk) * M * D * 2);
}

// ---- benchmark bodies --------------------------------------------------------------------------

using method_fn = void (*)(problem&, int);

void run_method(benchmark::State& state, method_fn method, bool ika_kernel_flops) {
  const ika::index_t L = state.range(0);
  const int threads = int(state.range(1));
  problem& p = problem_for(L);
  // Memory of one call made from a fresh thread: ika keeps its workspace in thread-local arenas
  // reused across calls, which a fresh thread starts without, so they are counted here.
  std::int64_t peak_extra = 0;
  std::thread([&] {
    const std::int64_t before = heap::reset_peak();
    method(p, threads);
    peak_extra = heap::peak.load(std::memory_order_relaxed) - before;
  }).join();
  method(p, threads); // warm-up: first touch of the output, kernel points, thread team
  for (auto _ : state) {
    const std::int64_t before = heap::reset_peak();
    method(p, threads);
    peak_extra = std::max(peak_extra, heap::peak.load(std::memory_order_relaxed) - before);
    benchmark::DoNotOptimize(p.out.get());
    benchmark::ClobberMemory();
  }
  state.counters["GFLOP/s"] = benchmark::Counter(conventional_flops(L) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (ika_kernel_flops)
    state.counters["real_GFLOP/s"] = benchmark::Counter(ika_real_flops(L) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_MiB"] = double(peak_extra) / (1024.0 * 1024.0);
}

// ---- startup check ------------------------------------------------------------------------------

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::abs(a[i] - b[i])));
  return m;
}

bool check_agreement(const std::vector<ika::index_t>& lengths, int threads) {
  bool ok = true;
  for (const ika::index_t L : lengths) {
    problem& p = problem_for(L);
    const struct {
      const char* name;
      method_fn fused, baseline;
    } pairs[] = {{"softmax", fused_softmax, baseline_softmax}, {"ika", fused_ika, baseline_ika}};
    for (const auto& pair : pairs) {
      pair.fused(p, threads);
      const std::vector<float> fused_out = p.output();
      pair.baseline(p, threads);
      const double diff = max_abs_diff(fused_out, p.output());
      bool finite = true;
      for (float x : fused_out) finite = finite && std::isfinite(x);
      std::fprintf(stderr, "check %-7s L=%-5td max|fused - baseline| = %.3g%s\n", pair.name, L, diff,
                   finite ? "" : " (non-finite output)");
      char text[32];
      std::snprintf(text, sizeof text, "%.3g", diff);
      benchmark::AddCustomContext(std::string("check_max_abs_diff_") + pair.name + "_L" + std::to_string(L), text);
      if (!(diff < 1e-3) || !finite) {
        std::fprintf(stderr, "bench_attention: fused and baseline %s disagree at L=%td (max abs diff %.3g >= 1e-3)\n",
                     pair.name, L, diff);
        ok = false;
      }
    }
  }
  return ok;
}

} // namespace

int main(int argc, char** argv) {
  Eigen::setNbThreads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  const std::vector<ika::index_t> lengths{256, 1024, 4096};
  const std::vector<int> thread_counts{1, 2};
  if (!check_agreement(lengths, 2)) {
    std::fprintf(stderr, "bench_attention: aborting, the baseline does not compute what the fused engine computes\n");
    return 2;
  }
  benchmark::AddCustomContext("shape", "fp32 B=1 H=8 D=Dv=64 Lq=Lk=L, yaglom M=64");
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));
  benchmark::AddCustomContext("eigen_threads", std::to_string(Eigen::nbThreads()));

  const struct {
    const char* name;
    method_fn fn;
    bool ika;
  } methods[] = {{"fused_softmax", fused_softmax, false},
                 {"baseline_softmax", baseline_softmax, false},
                 {"fused_ika", fused_ika, true},
                 {"baseline_ika", baseline_ika, true}};
  // Shape-major order, so the methods compared against each other run back to back.
  for (const ika::index_t L : lengths)
    for (const int t : thread_counts)
      for (const auto& m : methods)
        benchmark::RegisterBenchmark(m.name, run_method, m.fn, m.ika)
            ->Args({L, t})
            ->ArgNames({"L", "omp"})
            ->UseRealTime()
            ->MinTime(0.5)
            ->Repetitions(5)
            ->DisplayAggregatesOnly(true) // the JSON file still gets every repetition
            ->Unit(benchmark::kMillisecond);

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
