// SPDX-License-Identifier: MIT
// bench_backward: the fused backward against the fused forward, in one run.
//
// Four methods, each at fp32, B = 1, H = 8, D = Dv = 64, L = Lq = Lk ∈ {1024, 4096},
// threads ∈ {1, 2} (or the list in IKA_BENCH_THREADS, e.g. "1,2,16"):
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
//   peak_MiB       peak extra heap memory of one call (operator new counted by bench/common.hpp, as
//                  in bench_attention; the first call is made from a fresh thread, so thread-local
//                  arenas are counted)
//
// Every benchmark runs 5 repetitions of at least 0.5 s each; shape-major order, so the forward
// and the backward compared with each other run back to back.
//
// At startup (outside any timed loop): the backward is checked against the double reference
// backward at L = 64 (relative error < 2e-3), and its gradients at L = 1024 must be bitwise
// identical for 1 and 2 threads; the run aborts otherwise.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "common.hpp" // heap counting, shape, inputs, logits, timed loop, registration

// ---- problem ---------------------------------------------------------------------------------

namespace {

using bench::B, bench::H, bench::D, bench::Dv;

enum class kind { softmax, ika };

// Q, K, V, dO ~ N(0, 1) in (B, H, L, D) layout; the forward's out and lse, the gradients.
struct problem {
  ika::index_t L;
  std::vector<float> q, k, v, d_out, out, lse, dq, dk, dv;
  explicit problem(ika::index_t L_)
      : L(L_), q(std::size_t(B * H * L * D)), k(q.size()), v(std::size_t(B * H * L * Dv)), d_out(v.size()),
        out(v.size()), lse(std::size_t(B * H * L)), dq(q.size()), dk(k.size()), dv(v.size()) {
    bench::fill_normal(4321 + std::uint64_t(L), {q, k, v, d_out});
  }
  ika::tensor_view<const float> Q() const { return bench::qk_view(q.data(), L); }
  ika::tensor_view<const float> K() const { return bench::qk_view(k.data(), L); }
  ika::tensor_view<const float> V() const { return bench::v_view(v.data(), L); }
  ika::tensor_view<const float> dO() const { return bench::v_view(d_out.data(), L); }
  ika::tensor_view<float> O() { return bench::v_view(out.data(), L); }
  ika::row_stat_view<float> lse_view() { return ika::bhl(lse.data(), B, H, L); }
  ika::row_stat_view<const float> lse_const() const { return {lse.data(), B, H, L, H * L, L, 1}; }
  ika::attention_grads<float> grads() {
    return {bench::qk_view(dq.data(), L), bench::qk_view(dk.data(), L), bench::v_view(dv.data(), L)};
  }
};

problem& problem_for(ika::index_t L) { return bench::problem_for<problem>(L); }

template <class F>
decltype(auto) with_logit(kind k, F&& f) {
  if (k == kind::softmax) return f(bench::softmax_logit());
  return f(bench::ika_logit());
}

void forward(problem& p, kind k, int threads) {
  with_logit(k, [&](const auto& logit) {
    ika::attention(p.Q(), p.K(), p.V(), p.O(), logit, {.lse = p.lse_view(), .threads = threads});
  });
}

void backward(problem& p, kind k, int threads) {
  with_logit(k, [&](const auto& logit) {
    ika::attention_backward(p.Q(), p.K(), p.V(), bench::v_view<const float>(p.out.data(), p.L), p.lse_const(), p.dO(),
                            logit, p.grads(), threads);
  });
}

// ---- flop convention ----------------------------------------------------------------------------

double forward_flops(ika::index_t L) { return bench::conventional_flops(L); }
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
  const bench::timing t =
      bench::time_calls(state, [&] { is_backward ? backward(p, k, threads) : forward(p, k, threads); });
  const double flops = is_backward ? backward_flops(L) : forward_flops(L);
  state.counters["GFLOP/s"] = bench::gflops(flops);
  const auto key = std::make_tuple(int(k), L, threads);
  if (!is_backward) {
    forward_seconds[key].push_back(t.seconds_per_call);
  } else if (auto it = forward_seconds.find(key); it != forward_seconds.end()) {
    state.counters["bwd/fwd"] = (backward_flops(L) / t.seconds_per_call) / (forward_flops(L) / median(it->second));
  }
  state.counters["peak_MiB"] = bench::mib(t.peak_bytes);
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
  const std::vector<int> thread_counts = bench::thread_counts();
  if (!check_reference() || !check_threads(1024)) {
    std::fprintf(stderr, "bench_backward: aborting, the startup checks failed\n");
    return 2;
  }
  bench::add_common_context();

  // {name, kernel, is the backward}
  bench::register_shape_major(lengths, thread_counts, run,
                              {{"forward_softmax", kind::softmax, false},
                               {"backward_softmax", kind::softmax, true},
                               {"forward_ika", kind::ika, false},
                               {"backward_ika", kind::ika, true}});

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
