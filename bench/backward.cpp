// SPDX-License-Identifier: MIT
// bench_backward: the fused backward against the fused forward, in one run.
//
// Four methods, each at fp32, B = 1, H = 8, D = Dv = 64, L = Lq = Lk ∈ {1024, 4096},
// threads ∈ {1, 2}:
//   forward_softmax   ika::attention (with the log-sum-exp output the backward needs),
//                     log_kernel(rbf{}) + magnitude(lp{2})        == softmax(QKᵀ/√D)·V
//   backward_softmax  ika::attention_backward of the same expression: dq, dk, dv from
//                     q, k, v, out, lse and d_out (the forward is not part of the timed call)
//   forward_ika       ika::attention, log_kernel(yaglom_rff<float>::from_seed(seed, H, D, 64))
//                     + magnitude(lp{3})
//   backward_ika      ika::attention_backward of that expression (dq, dk, dv; no spectral-point
//                     gradient)
//
// Counters (per call):
//   GFLOP/s        forward: the conventional 4·B·H·Lq·Lk·D; backward: 2.5 × that (FlashAttention's
//                  convention: the backward is credited with 2.5 forwards, i.e. the five products
//                  QKᵀ, dO·Vᵀ, Pᵀ·dO, dSᵀ·Q, dS·K and nothing for recomputation)
//   bwd/fwd        backward rows only: backward GFLOP/s / forward GFLOP/s of the same kernel, L
//                  and thread count, the forward being the median of the repetitions of its
//                  benchmark that ran just before in this process (= 2.5 · t_forward / t_backward)
//   peak_MiB       peak extra heap memory of one call (operator new counted as in bench_attention;
//                  the first call is made from a fresh thread, so thread-local arenas are counted)
//
// Every benchmark runs 5 repetitions of at least 0.5 s each; shape-major order, so the forward
// and the backward compared with each other run back to back.
//
// At startup (outside any timed loop): the backward is checked against the double reference
// backward at L = 64 (relative error < 2e-3), and its gradients at L = 1024 must be bitwise
// identical for 1 and 2 threads; the run aborts otherwise.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <omp.h>

#include <ika/ika.hpp>

// ---- counting global operator new / delete (as in bench_attention) ------------------------------

namespace heap {

std::atomic<std::int64_t> current{0};
std::atomic<std::int64_t> peak{0};

// Every block carries a 16-byte header just below the user pointer: {size, alignment}.
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

enum class kind { softmax, ika };

// Q, K, V, dO ~ N(0, 1) in (B, H, L, D) layout; the forward's out and lse, the gradients.
struct problem {
  ika::index_t L;
  std::vector<float> q, k, v, d_out, out, lse, dq, dk, dv;
  explicit problem(ika::index_t L_)
      : L(L_), q(std::size_t(B * H * L * D)), k(q.size()), v(std::size_t(B * H * L * Dv)), d_out(v.size()),
        out(v.size()), lse(std::size_t(B * H * L)), dq(q.size()), dk(k.size()), dv(v.size()) {
    std::mt19937_64 rng(4321 + std::uint64_t(L));
    std::normal_distribution<float> normal(0.f, 1.f);
    for (auto* x : {&q, &k, &v, &d_out})
      for (float& e : *x) e = normal(rng);
  }
  ika::tensor_view<const float> Q() const { return ika::bhld(q.data(), B, H, L, D); }
  ika::tensor_view<const float> K() const { return ika::bhld(k.data(), B, H, L, D); }
  ika::tensor_view<const float> V() const { return ika::bhld(v.data(), B, H, L, Dv); }
  ika::tensor_view<const float> dO() const { return ika::bhld(d_out.data(), B, H, L, Dv); }
  ika::row_stat_view<float> lse_view() { return ika::bhl(lse.data(), B, H, L); }
  ika::row_stat_view<const float> lse_const() const { return {lse.data(), B, H, L, H * L, L, 1}; }
  ika::attention_grads<float> grads() {
    return {ika::bhld(dq.data(), B, H, L, D), ika::bhld(dk.data(), B, H, L, D), ika::bhld(dv.data(), B, H, L, Dv)};
  }
};

problem& problem_for(ika::index_t L) {
  static std::map<ika::index_t, std::unique_ptr<problem>> cache;
  auto& p = cache[L];
  if (!p) p = std::make_unique<problem>(L);
  return *p;
}

const ika::yaglom_rff<float>& ika_kernel() {
  static const auto k = ika::yaglom_rff<float>::from_seed(kernel_seed, H, D, M);
  return k;
}

auto softmax_logit() { return ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}); }
auto ika_logit() { return ika::log_kernel(ika_kernel()) + ika::magnitude(ika::lp{3.0}); }

template <class F>
decltype(auto) with_logit(kind k, F&& f) {
  if (k == kind::softmax) return f(softmax_logit());
  return f(ika_logit());
}

void forward(problem& p, kind k, int threads) {
  with_logit(k, [&](const auto& logit) {
    ika::attention(p.Q(), p.K(), p.V(), ika::bhld(p.out.data(), B, H, p.L, Dv), logit,
                   {.lse = p.lse_view(), .threads = threads});
  });
}

void backward(problem& p, kind k, int threads) {
  with_logit(k, [&](const auto& logit) {
    ika::attention_backward(p.Q(), p.K(), p.V(), ika::tensor_view<const float>(ika::bhld(p.out.data(), B, H, p.L, Dv)),
                            p.lse_const(), p.dO(), logit, p.grads(), threads);
  });
}

// ---- flop convention ----------------------------------------------------------------------------

double forward_flops(ika::index_t L) { return 4.0 * double(B * H) * double(L) * double(L) * double(D); }
double backward_flops(ika::index_t L) { return 2.5 * forward_flops(L); }

// ---- benchmark bodies --------------------------------------------------------------------------

// Seconds per call of each forward repetition, by (kind, L, threads): the backward's ratio counter.
std::map<std::tuple<int, ika::index_t, int>, std::vector<double>> forward_seconds;

double median(std::vector<double> x) {
  std::sort(x.begin(), x.end());
  const std::size_t n = x.size();
  return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

void run(benchmark::State& state, kind k, bool is_backward) {
  const ika::index_t L = state.range(0);
  const int threads = int(state.range(1));
  problem& p = problem_for(L);
  forward(p, k, threads); // the backward reads this forward's out and lse
  auto call = [&] { is_backward ? backward(p, k, threads) : forward(p, k, threads); };
  std::int64_t peak_extra = 0;
  std::thread([&] {
    const std::int64_t before = heap::reset_peak();
    call();
    peak_extra = heap::peak.load(std::memory_order_relaxed) - before;
  }).join();
  call(); // warm-up in this thread: arenas, thread team
  const auto start = std::chrono::steady_clock::now();
  std::int64_t calls = 0;
  for (auto _ : state) {
    const std::int64_t before = heap::reset_peak();
    call();
    ++calls;
    peak_extra = std::max(peak_extra, heap::peak.load(std::memory_order_relaxed) - before);
    benchmark::ClobberMemory();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / double(calls);
  const double flops = is_backward ? backward_flops(L) : forward_flops(L);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  const auto key = std::make_tuple(int(k), L, threads);
  if (!is_backward) {
    forward_seconds[key].push_back(seconds);
  } else if (auto it = forward_seconds.find(key); it != forward_seconds.end()) {
    state.counters["bwd/fwd"] = (backward_flops(L) / seconds) / (forward_flops(L) / median(it->second));
  }
  state.counters["peak_MiB"] = double(peak_extra) / (1024.0 * 1024.0);
}

// ---- startup checks -----------------------------------------------------------------------------

bool check_reference() {
  bool ok = true;
  problem p(64);
  for (const kind k : {kind::softmax, kind::ika}) {
    forward(p, k, 2);
    backward(p, k, 2);
    const auto ref = with_logit(k, [&](const auto& logit) {
      return ika::reference::attention_backward(p.Q(), p.K(), p.V(), p.dO(), logit);
    });
    auto rel = [](const std::vector<float>& a, const std::vector<double>& b) {
      double diff = 0, scale = 1e-30;
      for (std::size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, std::isfinite(a[i]) ? std::abs(double(a[i]) - b[i]) : INFINITY);
        scale = std::max(scale, std::abs(b[i]));
      }
      return diff / scale;
    };
    const double e = std::max({rel(p.dq, ref.dq), rel(p.dk, ref.dk), rel(p.dv, ref.dv)});
    const char* name = k == kind::softmax ? "softmax" : "ika";
    std::fprintf(stderr, "check %-7s L=64: max relative error vs reference backward = %.3g\n", name, e);
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", e);
    benchmark::AddCustomContext(std::string("check_reference_rel_error_") + name, text);
    if (!(e < 2e-3)) ok = false;
  }
  return ok;
}

bool check_threads(ika::index_t L) {
  bool ok = true;
  problem& p = problem_for(L);
  for (const kind k : {kind::softmax, kind::ika}) {
    forward(p, k, 2);
    backward(p, k, 1);
    const auto dq = p.dq, dk = p.dk, dv = p.dv;
    backward(p, k, 2);
    const bool same = dq == p.dq && dk == p.dk && dv == p.dv;
    const char* name = k == kind::softmax ? "softmax" : "ika";
    std::fprintf(stderr, "check %-7s L=%td: gradients for 1 and 2 threads %s\n", name, L,
                 same ? "bitwise identical" : "DIFFER");
    benchmark::AddCustomContext(std::string("check_threads_bitwise_") + name, same ? "yes" : "NO");
    ok = ok && same;
  }
  return ok;
}

} // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;

  const std::vector<ika::index_t> lengths{1024, 4096};
  const std::vector<int> thread_counts{1, 2};
  if (!check_reference() || !check_threads(1024)) {
    std::fprintf(stderr, "bench_backward: aborting, the startup checks failed\n");
    return 2;
  }
  benchmark::AddCustomContext("shape", "fp32 B=1 H=8 D=Dv=64 Lq=Lk=L, yaglom M=64");
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));

  const struct {
    const char* name;
    kind k;
    bool backward;
  } methods[] = {{"forward_softmax", kind::softmax, false},
                 {"backward_softmax", kind::softmax, true},
                 {"forward_ika", kind::ika, false},
                 {"backward_ika", kind::ika, true}};
  for (const ika::index_t L : lengths)
    for (const int t : thread_counts)
      for (const auto& m : methods)
        benchmark::RegisterBenchmark(m.name, run, m.k, m.backward)
            ->Args({L, t})
            ->ArgNames({"L", "omp"})
            ->UseRealTime()
            ->MinTime(0.5)
            ->Repetitions(5)
            ->DisplayAggregatesOnly(true)
            ->Unit(benchmark::kMillisecond);

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
