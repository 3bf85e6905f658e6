// SPDX-License-Identifier: MIT
// Decoding: one query row against a long key/value cache (Lq = 1, Lk = 4096 … 32768), fp32,
// B = 1, H = 8, D = Dv = 64, softmax and the IKA kernel, causal lower-right (the last query sees
// every key). Reported as GB/s of K and V read, against a plain streaming read of the same bytes
// in the same run (the machine's practical memory bandwidth for this access):
//   stream/Lk:<Lk>/omp:<t>         sum of K and V, the bandwidth baseline
//   softmax/Lk:<Lk>/omp:<t>        ika::attention, rbf + L2
//   ika/Lk:<Lk>/omp:<t>            ika::attention, Yaglom M = 64 + L3
//   ika_cached/Lk:<Lk>/omp:<t>     the same over an ika::key_cache filled once beforehand (the
//                                  features of the keys prepared when they were appended): GB/s of
//                                  K and V as above, and read_GB/s of what it reads (2M features
//                                  and a term per key and query head, V)

#include "common.hpp"

namespace {

using ika_key_cache = ika::key_cache<float, ika::yaglom_rff<float>, ika::lp>;

// 64-byte aligned arrays, as a framework's tensors are (PyTorch's CPU allocator aligns to 64 bytes).
// A std::vector<float> of these sizes starts 32 bytes past a boundary (malloc's block and
// common.hpp's counting header), so that every 512-bit load of a row straddles two cache lines: it
// cost the streaming read 20-30 % on the AVX-512 VM of 2026-12-08, the decode 3-8 %
// (bench/results/blocking/decode_schedule/).
struct cache {
  ika::detail::aligned_buffer<float> q, k, v, out;
  std::unique_ptr<ika_key_cache> prepared; // filled on first use
  explicit cache(ika::index_t Lk)
      : q(std::size_t(bench::B * bench::H * bench::D)), k(std::size_t(bench::B * bench::H * Lk * bench::D)),
        v(std::size_t(bench::B * bench::H * Lk * bench::Dv)), out(std::size_t(bench::B * bench::H * bench::Dv)) {
    bench::fill_normal(11, {{q.data(), q.size()}, {k.data(), k.size()}, {v.data(), v.size()}});
    std::fill(out.data(), out.data() + out.size(), 0.0f);
  }
};

double kv_bytes(ika::index_t Lk) { return 4.0 * double(bench::B * bench::H * Lk) * double(bench::D + bench::Dv); }

// bytes an ika_cached call reads: per key and query head its features (padded) and term, and V
double cached_bytes(ika::index_t Lk) {
  return 4.0 * double(bench::B * bench::H * Lk) * double(2 * bench::M + 1 + bench::Dv);
}

enum class method { stream, softmax, ika, ika_cached };

void run(benchmark::State& state, method m, bool) {
  const ika::index_t Lk = state.range(0);
  const int threads = int(state.range(1));
  cache& c = bench::problem_for<cache>(Lk);
  const auto q = ika::bhld(c.q.data(), bench::B, bench::H, 1, bench::D);
  const auto k = bench::qk_view(c.k.data(), Lk), v = bench::v_view(c.v.data(), Lk);
  const auto out = ika::bhld(c.out.data(), bench::B, bench::H, 1, bench::Dv);
  const auto decode = ika::mask(ika::causal_lower_right{});
  if (m == method::ika_cached && c.prepared == nullptr) {
    c.prepared = std::make_unique<ika_key_cache>(bench::ika_logit(), bench::B, bench::H, bench::H, bench::D, Lk);
    c.prepared->append(k);
  }
  double sink = 0;
  const auto call = [&] {
    switch (m) {
    case method::stream: {
      // four independent vector sums per thread: bound by the memory system, not by add latency
      using V = ika::simd::batch<float>;
      constexpr std::size_t W = ika::simd::width<float>, step = 4 * W;
      const std::size_t n = c.k.size() / step * step; // K and V have the same size here (D = Dv)
      double total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
      {
        V acc[4] = {V(0.0f), V(0.0f), V(0.0f), V(0.0f)};
#pragma omp for schedule(static)
        for (std::size_t i = 0; i < n; i += step)
          for (std::size_t u = 0; u < 4; ++u)
            acc[u] += ika::simd::load(c.k.data() + i + u * W) + ika::simd::load(c.v.data() + i + u * W);
        total += double(ika::simd::reduce_add(acc[0] + acc[1] + acc[2] + acc[3]));
      }
      sink += total;
      break;
    }
    case method::softmax: ika::attention(q, k, v, out, bench::softmax_logit() + decode, {.threads = threads}); break;
    case method::ika: ika::attention(q, k, v, out, bench::ika_logit() + decode, {.threads = threads}); break;
    case method::ika_cached: ika::attention(q, *c.prepared, v, out, decode, {.threads = threads}); break;
    }
    benchmark::DoNotOptimize(c.out.data());
    benchmark::DoNotOptimize(sink);
  };
  bench::time_calls(state, call);
  state.counters["GB/s"] = benchmark::Counter(kv_bytes(Lk) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (m == method::ika_cached)
    state.counters["read_GB/s"] =
        benchmark::Counter(cached_bytes(Lk) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

} // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  bench::add_common_context();
  for (const ika::index_t Lk : {4096, 8192, 16384, 32768})
    for (const int t : {1, 2})
      for (const auto& [name, m] : {std::pair{"stream", method::stream}, std::pair{"softmax", method::softmax},
                                    std::pair{"ika", method::ika}, std::pair{"ika_cached", method::ika_cached}})
        bench::configure(benchmark::RegisterBenchmark(name, run, m, false)->Args({Lk, t})->ArgNames({"Lk", "omp"}), 0.3,
                         3, benchmark::kMicrosecond);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
