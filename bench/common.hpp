// SPDX-License-Identifier: MIT
// bench/common.hpp: what bench_attention and bench_backward share, kept in one place so that the two
// benchmarks time the same problem (shape, inputs, kernels) and count memory and flops the same
// way, and their numbers stay comparable.
//
//   heap::          counting global operator new / delete, and the peak extra memory of one call
//   bench::B ... M  the shape: fp32, B = 1, H = 8, D = Dv = 64, yaglom M = 64, seed 42
//   bench::         inputs ~ N(0, 1), (B, H, L, ·) views, the softmax and IKA logit expressions,
//                   the conventional flop count, the timed loop, counters, context and registration
//
// This header replaces the global allocation functions (which may not be inline), so include it
// from exactly one translation unit per executable: each bench/*.cpp is its own executable.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>

#include <ika/ika.hpp>

// ---- counting global operator new / delete ------------------------------------------------------
// peak_MiB counts only operator new: std::malloc made by other code (e.g. Eigen's GEMM packing) is
// not seen, which is why a baseline takes its large buffers from operator new.

namespace heap {

inline std::atomic<std::int64_t> current{0};
inline std::atomic<std::int64_t> peak{0};

// Every block carries a 16-byte header just below the user pointer: {size, alignment}. The raw
// block starts `alignment` bytes below the user pointer (alignment ≥ 16).
inline void* allocate(std::size_t n, std::size_t align) {
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

inline void release(void* user) noexcept {
  if (!user) return;
  const auto* header = static_cast<const std::size_t*>(user) - 2;
  const std::size_t n = header[0], align = header[1];
  current.fetch_sub(std::int64_t(n), std::memory_order_relaxed);
  std::free(static_cast<unsigned char*>(user) - align);
}

inline void* allocate_or_throw(std::size_t n, std::size_t align) {
  if (void* p = allocate(n, align)) return p;
  throw std::bad_alloc();
}

// Start of a measured call: the peak forgets everything before it.
inline std::int64_t reset_peak() {
  const std::int64_t now = current.load(std::memory_order_relaxed);
  peak.store(now, std::memory_order_relaxed);
  return now;
}

// Peak extra heap bytes held during one call of f.
template <class F>
std::int64_t peak_of(F&& f) {
  const std::int64_t before = reset_peak();
  f();
  return peak.load(std::memory_order_relaxed) - before;
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

namespace bench {

// ---- problem ------------------------------------------------------------------------------------

inline constexpr ika::index_t B = 1, H = 8, D = 64, Dv = 64, M = 64;
inline constexpr std::uint64_t kernel_seed = 42;

// One Problem per L, made on first use and kept for the whole run (inputs are drawn once).
template <class Problem>
Problem& problem_for(ika::index_t L) {
  static std::map<ika::index_t, std::unique_ptr<Problem>> cache;
  auto& p = cache[L];
  if (!p) p = std::make_unique<Problem>(L);
  return *p;
}

// Fills the arrays in order with N(0, 1) draws from one mt19937_64(seed) stream.
inline void fill_normal(std::uint64_t seed, std::initializer_list<std::span<float>> arrays) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  for (const std::span<float> a : arrays)
    for (float& e : a) e = normal(rng);
}

// (B, H, L, D) views of q/k-shaped and (B, H, L, Dv) views of v/out-shaped contiguous arrays.
template <class T>
ika::tensor_view<T> qk_view(T* x, ika::index_t L) {
  return ika::bhld(x, B, H, L, D);
}
template <class T>
ika::tensor_view<T> v_view(T* x, ika::index_t L) {
  return ika::bhld(x, B, H, L, Dv);
}

// The IKA kernel (its spectral points), drawn once.
inline const ika::yaglom_rff<float>& ika_kernel() {
  static const auto k = ika::yaglom_rff<float>::from_seed(kernel_seed, H, D, M);
  return k;
}

// softmax(QKᵀ/√D) and the IKA kernel, as logit expressions.
inline auto softmax_logit() { return ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}); }
inline auto ika_logit() { return ika::log_kernel(ika_kernel()) + ika::magnitude(ika::lp{3.0}); }

// ---- measurement --------------------------------------------------------------------------------

// Conventional attention flops per call: 4·B·H·Lq·Lk·D (QKᵀ and P·V, D = Dv), Lq = Lk = L.
inline double conventional_flops(ika::index_t L) { return 4.0 * double(B * H) * double(L) * double(L) * double(D); }

struct timing {
  std::int64_t peak_bytes;  // largest extra heap memory of one call, the fresh-thread one included
  double seconds_per_call;  // wall-clock time of the timed loop / its iterations
};

// The body of a benchmark: one call from a fresh thread (ika keeps its workspace in thread-local
// arenas reused across calls, which a fresh thread starts without, so they are counted), one
// warm-up call in this thread (arenas, thread team, first touch), then the timed loop.
template <class F>
timing time_calls(benchmark::State& state, F&& call) {
  std::int64_t peak_bytes = 0;
  std::thread([&] { peak_bytes = heap::peak_of(call); }).join();
  call();
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    peak_bytes = std::max(peak_bytes, heap::peak_of(call));
    benchmark::ClobberMemory();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {peak_bytes, seconds / double(state.iterations())};
}

// A rate counter: flops per call, shown as GFLOP/s of real time.
inline benchmark::Counter gflops(double flops_per_call) {
  return benchmark::Counter(flops_per_call * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

inline double mib(std::int64_t bytes) { return double(bytes) / (1024.0 * 1024.0); }

// ---- registration -------------------------------------------------------------------------------

// Context written by both binaries (bench/plot.py reads "shape").
inline void add_common_context() {
  benchmark::AddCustomContext("shape", "fp32 B=1 H=8 D=Dv=64 Lq=Lk=L, yaglom M=64");
  benchmark::AddCustomContext("omp_max_threads", std::to_string(omp_get_max_threads()));
}

// A method to time: its benchmark name and the arguments its body gets after the state.
template <class Arg>
struct method {
  const char* name;
  Arg arg;
  bool flag;
};

// The settings every bench binary gives its benchmarks: real (wall-clock) time, at least min_time
// seconds per repetition, `repetitions` repetitions (the console shows the aggregates, the JSON file
// keeps every repetition; plot.py and linear_report.py use the medians), times shown in `unit`.
inline benchmark::internal::Benchmark* configure(benchmark::internal::Benchmark* b, double min_time, int repetitions,
                                                 benchmark::TimeUnit unit) {
  return b->UseRealTime()->MinTime(min_time)->Repetitions(repetitions)->DisplayAggregatesOnly(true)->Unit(unit);
}

// The thread counts to time: {1, 2} (this project's machines have 2 cores), or the comma-separated
// list in IKA_BENCH_THREADS (e.g. "1,2,16" on a larger host). A malformed list is an error, not a
// silent default, so a run never reports thread counts it did not time.
inline std::vector<int> thread_counts() {
  const char* env = std::getenv("IKA_BENCH_THREADS");
  if (env == nullptr || *env == '\0') return {1, 2};
  std::vector<int> counts;
  for (const char* p = env; *p != '\0';) {
    char* end = nullptr;
    const long n = std::strtol(p, &end, 10);
    if (end == p || n < 1 || n > 1024 || (*end != ',' && *end != '\0')) {
      std::fprintf(stderr, "IKA_BENCH_THREADS must be a comma-separated list of thread counts in [1, 1024], got '%s'\n",
                   env);
      std::exit(2);
    }
    counts.push_back(int(n));
    p = *end == ',' ? end + 1 : end;
  }
  return counts;
}

// Registers body(state, m.arg, m.flag) as `<m.name>/L:<L>/omp:<threads>` for every L, thread
// count and method, in shape-major order, so the methods compared with each other run back to
// back. Each one: configure(…, 0.5 s, 5 repetitions, milliseconds).
template <class Arg>
void register_shape_major(const std::vector<ika::index_t>& lengths, const std::vector<int>& thread_counts,
                          void (*body)(benchmark::State&, Arg, bool), std::initializer_list<method<Arg>> methods) {
  for (const ika::index_t L : lengths)
    for (const int t : thread_counts)
      for (const method<Arg>& m : methods)
        configure(benchmark::RegisterBenchmark(m.name, body, m.arg, m.flag)->Args({L, t})->ArgNames({"L", "omp"}), 0.5,
                  5, benchmark::kMillisecond);
}

} // namespace bench
