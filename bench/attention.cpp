// SPDX-License-Identifier: MIT
// bench_attention: the fused engine against a naive materialised Eigen baseline and a flash-attention
// baseline on OpenBLAS, in one run.
//
// Seven methods, each at fp32, B = 1, H = 8, D = Dv = 64, L = Lq = Lk ∈ {256, 1024, 4096},
// threads ∈ {1, 2} (or the list in IKA_BENCH_THREADS, e.g. "1,2,16"):
//   fused_softmax     ika::attention, log_kernel(rbf{}) + magnitude(lp{2})   == softmax(QKᵀ/√D)·V
//   blas_flash_softmax  PyTorch's CPU flash-attention algorithm on OpenBLAS (bench/flash_blas.hpp):
//                     per (b, h, 256-row query block), per 512-key block: S = Q_blk·K_blkᵀ/√D
//                     (SGEMM), online softmax (running max and sum, xsimd exp), O_blk += P·V_blk
//                     (SGEMM); only when OpenBLAS was found (IKA_BENCH_HAVE_OPENBLAS)
//   baseline_softmax  Eigen, per (b, h): S = QKᵀ (GEMM), row softmax of S/√D, O = P·V (GEMM)
//   fused_ika         ika::attention, log_kernel(yaglom_rff<float>::from_seed(seed, H, D, 64))
//                     + magnitude(lp{3})
//   baseline_ika      Eigen, per (b, h): Yaglom features Φq, Φk (two GEMMs + cos/sin each),
//                     S = Φq·Φkᵀ (GEMM), logit = log(S² + 1e-5) + μ(k_j), row softmax, O = P·V
//                     with μ(k) = ‖k‖₃² / (2√D)
//   fused_softmax_causal  fused_softmax + mask(causal_upper_left{})   (query i sees keys j ≤ i)
//   fused_ika_causal      fused_ika + mask(causal_upper_left{})
//
// Threading: the fused engine gets {.threads = n}; the Eigen baseline is an OpenMP loop over the
// B·H (batch, head) pairs with num_threads(n) and Eigen's own threading off (Eigen::setNbThreads(1)),
// the BLAS flash baseline an OpenMP loop over the B·H·(L/256) (batch, head, query block) tasks with
// num_threads(n) and OpenBLAS's own threading off (openblas_set_num_threads(1)), so all are one
// thread per task with the same team size.
//
// Counters (per call):
//   GFLOP/s       conventional attention flops 4·B·H·Lq·Lk·D per call / real time, for every method
//                 (2·Lq·Lk·D for QKᵀ plus 2·Lq·Lk·Dv for P·V, D = Dv; exp, log, max, sums ignored);
//                 the causal methods too (the same count, not the half they need), so their
//                 GFLOP/s against the non-causal ones is the inverse time ratio
//   real_GFLOP/s  only for the IKA kernel (fused and baseline): the flops the random-feature
//                 kernel really needs per (b, h):
//                   2·Lq·Lk·2M              feature product Φq·Φkᵀ (feature dimension 2M)
//                 + 2·Lq·Lk·Dv              P·V
//                 + 2·(Lq + Lk)·M·D·2       feature maps: two projections W₁ᵀx, W₂ᵀx per row
//                 everything else (cos/sin, log, exp, ‖k‖₃, max, sums) ignored.
//   peak_MiB      peak extra heap memory of one call: global operator new/delete are replaced
//                 by counting versions (bench/common.hpp); before a call the peak is reset to the
//                 current byte count, after it peak − before is recorded; the counter is the largest
//                 value over all iterations and one first call from a fresh thread (ika's workspace
//                 lives in thread-local arenas reused across calls, which only that call sees).
//                 Only operator new is seen: std::malloc made by Eigen itself (its GEMM packing
//                 blocks) and OpenBLAS's own buffer pool are not counted, which is why the
//                 baselines take every buffer that grows with L from operator new.
//
// Every benchmark runs 5 repetitions of at least 0.5 s each (bench/plot.py uses the medians); the
// whole run takes about 3 minutes on 2 cores.
//
// At startup (outside any timed loop) each baseline is checked against its fused counterpart at
// every L with 2 threads (Eigen softmax and IKA, BLAS flash softmax, and the BLAS flash code with
// its causal option against fused_softmax_causal); the run aborts unless
// max |O_fused − O_baseline| < 1e-3.

#include <benchmark/benchmark.h>

// GCC 12 reports its own _mm512_undefined_epi32() as uninitialised when it inlines Eigen's AVX-512
// sin/cos (a known false positive, like the -Wmaybe-uninitialized one the project already mutes).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <new>
#include <numbers>
#include <string>
#include <vector>

#include "common.hpp" // heap counting, shape, inputs, logits, timed loop, registration

#if IKA_BENCH_HAVE_OPENBLAS
#include "flash_blas.hpp" // bench::flash_blas_attention
#endif

// ---- problem ---------------------------------------------------------------------------------

namespace {

using bench::B, bench::H, bench::D, bench::Dv, bench::M;
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
    bench::fill_normal(1234 + std::uint64_t(L), {{q.get(), n}, {k.get(), n}, {v.get(), nv}});
    std::fill(out.get(), out.get() + nv, 0.f);
  }
  ika::tensor_view<const float> qv() const { return bench::qk_view<const float>(q.get(), L); }
  ika::tensor_view<const float> kv() const { return bench::qk_view<const float>(k.get(), L); }
  ika::tensor_view<const float> vv() const { return bench::v_view<const float>(v.get(), L); }
  ika::tensor_view<float> ov() { return bench::v_view(out.get(), L); }
  std::vector<float> output() const { return {out.get(), out.get() + nv}; }
};

problem& problem_for(ika::index_t L) { return bench::problem_for<problem>(L); }

// The IKA kernel's points 2π·W₁, 2π·W₂ as per-head (D, M) Eigen matrices, rounded to float
// exactly as the engine packs them.
struct kernel_points {
  std::vector<row_matrix> w1, w2;
  kernel_points() {
    const auto& kernel = bench::ika_kernel();
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

const kernel_points& ika_points() {
  static const kernel_points k;
  return k;
}

// ---- methods ------------------------------------------------------------------------------------

void fused_softmax(problem& p, int threads) {
  ika::attention(p.qv(), p.kv(), p.vv(), p.ov(), bench::softmax_logit(), {.threads = threads});
}

void fused_ika(problem& p, int threads) {
  ika::attention(p.qv(), p.kv(), p.vv(), p.ov(), bench::ika_logit(), {.threads = threads});
}

void fused_softmax_causal(problem& p, int threads) {
  ika::attention(p.qv(), p.kv(), p.vv(), p.ov(), bench::softmax_logit() + ika::mask(ika::causal_upper_left{}),
                 {.threads = threads});
}

void fused_ika_causal(problem& p, int threads) {
  ika::attention(p.qv(), p.kv(), p.vv(), p.ov(), bench::ika_logit() + ika::mask(ika::causal_upper_left{}),
                 {.threads = threads});
}

#if IKA_BENCH_HAVE_OPENBLAS
void blas_flash_softmax(problem& p, int threads) {
  bench::flash_blas_attention(p.q.get(), p.k.get(), p.v.get(), p.out.get(), B * H, p.L, D, Dv, threads);
}

// Only for the startup check of fused_softmax_causal (not timed).
void blas_flash_softmax_causal(problem& p, int threads) {
  bench::flash_blas_attention(p.q.get(), p.k.get(), p.v.get(), p.out.get(), B * H, p.L, D, Dv, threads, true);
}
#endif

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
  const bench::timing t = bench::time_calls(state, [&] {
    method(p, threads);
    benchmark::DoNotOptimize(p.out.get());
  });
  state.counters["GFLOP/s"] = bench::gflops(bench::conventional_flops(L));
  if (ika_kernel_flops) state.counters["real_GFLOP/s"] = bench::gflops(ika_real_flops(L));
  state.counters["peak_MiB"] = bench::mib(t.peak_bytes);
}

// ---- startup check ------------------------------------------------------------------------------

// max |a − b|; NaN when either holds a non-finite value.
double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return std::numeric_limits<double>::quiet_NaN();
    m = std::max(m, double(std::abs(a[i] - b[i])));
  }
  return m;
}

// Runs f(p, threads) on an output filled with NaN (so a method that leaves rows unwritten fails the
// check) and returns the output.
std::vector<float> output_of(method_fn f, problem& p, int threads) {
  std::fill(p.out.get(), p.out.get() + p.nv, std::numeric_limits<float>::quiet_NaN());
  f(p, threads);
  return p.output();
}

bool check_agreement(const std::vector<ika::index_t>& lengths, int threads) {
  bool ok = true;
  for (const ika::index_t L : lengths) {
    problem& p = problem_for(L);
    struct check_pair {
      const char* name;
      method_fn fused, baseline;
    };
    std::vector<check_pair> pairs{{"softmax", fused_softmax, baseline_softmax}, {"ika", fused_ika, baseline_ika}};
#if IKA_BENCH_HAVE_OPENBLAS
    pairs.push_back({"blas_flash_softmax", fused_softmax, blas_flash_softmax});
    pairs.push_back({"blas_flash_softmax_causal", fused_softmax_causal, blas_flash_softmax_causal});
#endif
    for (const auto& pair : pairs) {
      const std::vector<float> fused_out = output_of(pair.fused, p, threads);
      const double diff = max_abs_diff(fused_out, output_of(pair.baseline, p, threads));
      std::fprintf(stderr, "check %-25s L=%-5td max|fused - baseline| = %.3g%s\n", pair.name, L, diff,
                   std::isnan(diff) ? " (non-finite or unwritten output)" : "");
      char text[32];
      std::snprintf(text, sizeof text, "%.3g", diff);
      benchmark::AddCustomContext(std::string("check_max_abs_diff_") + pair.name + "_L" + std::to_string(L), text);
      if (!(diff < 1e-3)) {
        std::fprintf(stderr, "bench_attention: fused and baseline %s disagree at L=%td (max abs diff %.3g >= 1e-3)\n",
                     pair.name, L, diff);
        ok = false;
      }
    }
  }
  return ok;
}

} // namespace

// The machine's fp32 FMA peak at the ISA this binary targets: each thread runs independent FMA
// chains (more than latency × FMA ports of them), nothing loaded or stored. The yardstick for
// every GFLOP/s above: a method at 90 % of it has little left to gain.
void fma_peak(benchmark::State& state) {
  using V = ika::simd::batch<float>;
  constexpr int chains = 12;
  constexpr std::int64_t steps = std::int64_t(1) << 22;
  const int threads = int(state.range(0));
  const auto call = [&] {
#pragma omp parallel num_threads(threads)
    {
      V acc[chains];
#pragma GCC unroll 12
      for (int c = 0; c < chains; ++c) acc[c] = V(1e-3f * float(c));
      const V a(0.999999f), b(1e-7f);
      for (std::int64_t step = 0; step < steps; ++step) {
#pragma GCC unroll 12
        for (int c = 0; c < chains; ++c) acc[c] = xsimd::fma(acc[c], a, b);
      }
      V total = acc[0];
#pragma GCC unroll 12
      for (int c = 1; c < chains; ++c) total += acc[c];
      benchmark::DoNotOptimize(total);
    }
  };
  for (auto _ : state) call();
  state.counters["GFLOP/s"] =
      bench::gflops(2.0 * double(threads) * double(steps) * double(chains) * double(ika::simd::width<float>));
}

int main(int argc, char** argv) {
#if IKA_BENCH_HAVE_OPENBLAS
  bench::prefer_avx512_openblas_kernels(argv); // may re-execute this program once
#endif
  Eigen::setNbThreads(1);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  const std::vector<ika::index_t> lengths{256, 1024, 4096};
  const std::vector<int> thread_counts = bench::thread_counts();
  if (!check_agreement(lengths, 2)) {
    std::fprintf(stderr, "bench_attention: aborting, the baseline does not compute what the fused engine computes\n");
    return 2;
  }
  bench::add_common_context();
  benchmark::AddCustomContext("eigen_threads", std::to_string(Eigen::nbThreads()));
#if IKA_BENCH_HAVE_OPENBLAS
  benchmark::AddCustomContext("openblas", bench::openblas_description());
  benchmark::AddCustomContext("blas_flash_blocks", "q " + std::to_string(bench::flash_q_block) + ", k " +
                                                       std::to_string(bench::flash_k_block));
#else
  std::fprintf(stderr, "bench_attention: built without OpenBLAS, blas_flash_softmax is not run\n");
  benchmark::AddCustomContext("openblas", "not built (OpenBLAS not found at configure time, or IKA_BENCH_OPENBLAS=OFF)");
#endif

  // {name, method, counts real_GFLOP/s}
  bench::register_shape_major(lengths, thread_counts, run_method,
                              {{"fused_softmax", fused_softmax, false},
#if IKA_BENCH_HAVE_OPENBLAS
                               {"blas_flash_softmax", blas_flash_softmax, false},
#endif
                               {"baseline_softmax", baseline_softmax, false},
                               {"fused_ika", fused_ika, true},
                               {"baseline_ika", baseline_ika, true},
                               // causal: conventional GFLOP/s only (the same count as non-causal)
                               {"fused_softmax_causal", fused_softmax_causal, false},
                               {"fused_ika_causal", fused_ika_causal, false}});

  for (const int t : thread_counts)
    bench::configure(benchmark::RegisterBenchmark("fma_peak", fma_peak)->Arg(t)->ArgName("omp"), 0.3, 3,
                     benchmark::kMillisecond);

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
