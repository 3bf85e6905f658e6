// SPDX-License-Identifier: MIT
// Linear-time attention against the quadratic fused engine, same kernel (Yaglom random features,
// M per head, L3 magnitude), fp32, B = 1, H = 8, D = Dv = 64, in the same run:
//   exact/L:<L>/M:<M>/causal:<0|1>    ika::attention (log(k̂² + ε) weights, O(L²))
//   linear/L:<L>/M:<M>/causal:<0|1>   ika::linear_attention, raw features (k̂ weights, O(L))
// bench/linear_report.py turns the JSON into bench/results/linear.md and linear.svg.

#include "common.hpp"

namespace {

struct inputs {
  std::vector<float> q, k, v, out;
  explicit inputs(ika::index_t L)
      : q(std::size_t(bench::B * bench::H * L * bench::D)), k(q.size()), v(std::size_t(bench::B * bench::H * L * bench::Dv)),
        out(v.size()) {
    bench::fill_normal(7, {q, k, v});
  }
};

const ika::yaglom_rff<float>& kernel_with(ika::index_t M) {
  static std::map<ika::index_t, ika::yaglom_rff<float>> kernels;
  auto it = kernels.find(M);
  if (it == kernels.end())
    it = kernels.emplace(M, ika::yaglom_rff<float>::from_seed(bench::kernel_seed, bench::H, bench::D, M)).first;
  return it->second;
}

template <bool Linear>
void run(benchmark::State& state) {
  const ika::index_t L = state.range(0), M = state.range(1);
  const bool causal = state.range(2) != 0;
  inputs& x = bench::problem_for<inputs>(L);
  const auto q = bench::qk_view(x.q.data(), L), k = bench::qk_view(x.k.data(), L);
  const auto v = bench::v_view(x.v.data(), L), out = bench::v_view(x.out.data(), L);
  const auto logit = ika::log_kernel(kernel_with(M)) + ika::magnitude(ika::lp{3.0});
  const auto call = [&] {
    if constexpr (Linear) {
      const ika::linear_options options{.features = ika::linear_features::raw};
      if (causal) ika::linear_attention(q, k, v, out, logit + ika::mask(ika::causal{}), options);
      else ika::linear_attention(q, k, v, out, logit, options);
    } else {
      if (causal) ika::attention(q, k, v, out, logit + ika::mask(ika::causal{}));
      else ika::attention(q, k, v, out, logit);
    }
    benchmark::DoNotOptimize(x.out.data());
  };
  const bench::timing t = bench::time_calls(state, call);
  state.counters["peak_MiB"] = bench::mib(t.peak_bytes);
}

} // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  bench::add_common_context();
  for (const ika::index_t M : {64, 256})
    for (const int causal : {0, 1}) {
      if (M == 256 && causal) continue;
      for (const ika::index_t L : {256, 512, 1024, 2048, 4096, 8192})
        for (const bool linear : {false, true})
          bench::configure(benchmark::RegisterBenchmark(linear ? "linear" : "exact", linear ? run<true> : run<false>)
                               ->Args({L, M, causal})
                               ->ArgNames({"L", "M", "causal"}),
                           0.3, 3, benchmark::kMillisecond);
    }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
