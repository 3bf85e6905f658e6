// SPDX-License-Identifier: MIT
// bench_cuda_attention: ika::cuda::attention against an unfused cuBLAS computation of the same math
// (S = QKᵀ/√D by a batched SGEMM, a row softmax kernel, O = P·V by a second SGEMM), fp32,
// B·H = 64 (B = 4, H = 16), D = Dv = 64 and 128, L = Lq = Lk = 1024 … 4096, timed with CUDA
// events (manual time), in the same run. The logit is rbf (σ² = √D) + the L2 magnitude, which is
// softmax(QKᵀ/√D): the point of the family both sides compute. Counters: TFLOP/s (4·B·H·L²·D
// flops) and, once per shape, the largest difference between the two outputs relative to the
// largest output (max_rel_diff), so a wrong GPU path cannot report a good time unnoticed.
//   cuda_fused/L:<L>/D:<D>       ika::cuda::attention, rbf + L2 (softmax)
//   cublas_unfused/L:<L>/D:<D>   the baseline (cuBLAS's default fp32 math mode, no TF32)
//   cuda_fused_ika/L:<L>/D:<D>   ika::cuda::attention, the IKA kernel (yaglom_rff M = 64, seed 42,
//                                + lp{3}); compare with bench/torch_compare.py --device cuda
//                                --batch 4 --heads 16 (torch_ika_paper, the paper's formulation)

#include <benchmark/benchmark.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <ika/cuda/attention.cuh>

namespace {

constexpr ika::index_t B = 4, H = 16;

void check(cudaError_t status, const char* what) { ika::cuda::detail::check(status, what); }
void check(cublasStatus_t status, const char* what) {
  if (status != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string("cuBLAS: ") + what + " failed");
}

struct device_buffer {
  float* data = nullptr;
  explicit device_buffer(std::size_t n) { check(cudaMalloc(reinterpret_cast<void**>(&data), n * sizeof(float)), "cudaMalloc"); }
  ~device_buffer() { cudaFree(data); }
  device_buffer(const device_buffer&) = delete;
};

// One problem per (L, D): inputs ~ N(0, 1), outputs of both methods, the baseline's score matrix.
struct problem {
  ika::index_t L, D;
  device_buffer q, k, v, out_fused, out_unfused, lse, scores;
  problem(ika::index_t L_, ika::index_t D_)
      : L(L_), D(D_), q(std::size_t(B * H * L * D)), k(std::size_t(B * H * L * D)), v(std::size_t(B * H * L * D)),
        out_fused(std::size_t(B * H * L * D)), out_unfused(std::size_t(B * H * L * D)), lse(std::size_t(B * H * L)),
        scores(std::size_t(B * H * L * L)) {
    std::mt19937_64 gen(42);
    std::normal_distribution<float> normal;
    std::vector<float> host(std::size_t(B * H * L * D));
    for (float* dst : {q.data, k.data, v.data}) {
      for (auto& x : host) x = normal(gen);
      check(cudaMemcpy(dst, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy");
    }
  }
};

problem& problem_for(ika::index_t L, ika::index_t D) {
  static std::map<std::pair<ika::index_t, ika::index_t>, std::unique_ptr<problem>> problems;
  auto found = problems.find({L, D});
  if (found == problems.end()) {
    problems.clear(); // one problem in GPU memory at a time (the L = 4096 score matrix is 4 GiB)
    found = problems.emplace(std::pair{L, D}, std::make_unique<problem>(L, D)).first;
  }
  return *found->second;
}

// Row softmax in place, one block per row of n scores.
__global__ void softmax_rows(float* scores, ika::index_t n) {
  float* row = scores + ika::index_t(blockIdx.x) * n;
  __shared__ float reduce[32];
  float m = -INFINITY;
  for (ika::index_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, row[j]);
  for (int offset = 16; offset > 0; offset /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, offset));
  if (threadIdx.x % 32 == 0) reduce[threadIdx.x / 32] = m;
  __syncthreads();
  m = reduce[0];
  for (unsigned w = 1; w < blockDim.x / 32; ++w) m = fmaxf(m, reduce[w]);
  __syncthreads();
  float sum = 0;
  for (ika::index_t j = threadIdx.x; j < n; j += blockDim.x) {
    const float e = expf(row[j] - m);
    row[j] = e;
    sum += e;
  }
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  if (threadIdx.x % 32 == 0) reduce[threadIdx.x / 32] = sum;
  __syncthreads();
  sum = 0;
  for (unsigned w = 0; w < blockDim.x / 32; ++w) sum += reduce[w];
  const float inverse = 1.0f / sum;
  for (ika::index_t j = threadIdx.x; j < n; j += blockDim.x) row[j] *= inverse;
}

cublasHandle_t cublas() {
  static cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    check(cublasCreate(&h), "cublasCreate");
    return h;
  }();
  return handle;
}

// Row-major S (L×L) = Q Kᵀ/√D is column-major Sᵀ = K·Qᵀ; row-major O = P V is column-major
// Oᵀ = Vᵀ·Pᵀ.
void unfused(problem& p) {
  const int L = int(p.L), D = int(p.D), batch = int(B * H);
  const float scale = 1.0f / std::sqrt(float(p.D)), one = 1.0f, zero = 0.0f;
  check(cublasSgemmStridedBatched(cublas(), CUBLAS_OP_T, CUBLAS_OP_N, L, L, D, &scale, p.k.data, D, (long long)L * D,
                                  p.q.data, D, (long long)L * D, &zero, p.scores.data, L, (long long)L * L, batch),
        "QKᵀ");
  softmax_rows<<<unsigned(B * H * p.L), 256>>>(p.scores.data, p.L);
  check(cudaGetLastError(), "softmax_rows");
  check(cublasSgemmStridedBatched(cublas(), CUBLAS_OP_N, CUBLAS_OP_N, D, L, L, &one, p.v.data, D, (long long)L * D,
                                  p.scores.data, L, (long long)L * L, &zero, p.out_unfused.data, D, (long long)L * D,
                                  batch),
        "P·V");
}

enum class method { fused_softmax, fused_ika, unfused };

template <class Logit>
void fused(problem& p, const Logit& logit) {
  const auto view = [&](float* x) { return ika::bhld(x, B, H, p.L, p.D); };
  ika::cuda::attention(view(p.q.data), view(p.k.data), view(p.v.data), view(p.out_fused.data), logit,
                       {.lse = ika::bhl(p.lse.data, B, H, p.L)});
}

double max_relative_difference(const problem& p) {
  std::vector<float> a(std::size_t(B * H * p.L * p.D)), b(a.size());
  check(cudaMemcpy(a.data(), p.out_fused.data, a.size() * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
  check(cudaMemcpy(b.data(), p.out_unfused.data, b.size() * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy");
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    scale = std::max(scale, std::abs(double(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}

void run(benchmark::State& state, method m) {
  problem& p = problem_for(state.range(0), state.range(1));
  const auto softmax = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0});
  const auto ika_kernel = ika::log_kernel(ika::yaglom_rff<float>::from_seed(42, H, p.D, 64)) + ika::magnitude(ika::lp{3.0});
  const auto call = [&] {
    switch (m) {
    case method::fused_softmax: fused(p, softmax); break;
    case method::fused_ika: fused(p, ika_kernel); break;
    case method::unfused: unfused(p); break;
    }
  };
  call(); // warm-up (and the first call's cudaFuncSetAttribute)
  check(cudaDeviceSynchronize(), "warm-up");
  cudaEvent_t start, stop;
  check(cudaEventCreate(&start), "cudaEventCreate");
  check(cudaEventCreate(&stop), "cudaEventCreate");
  for (auto _ : state) {
    check(cudaEventRecord(start), "cudaEventRecord");
    call();
    check(cudaEventRecord(stop), "cudaEventRecord");
    check(cudaEventSynchronize(stop), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start, stop), "cudaEventElapsedTime");
    state.SetIterationTime(double(ms) * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  const double flops = 4.0 * double(B * H) * double(p.L) * double(p.L) * double(p.D);
  state.counters["TFLOP/s"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
  if (m == method::fused_softmax) {
    unfused(p);
    check(cudaDeviceSynchronize(), "baseline for the check");
    state.counters["max_rel_diff"] = max_relative_difference(p);
  }
}

} // namespace

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::puts("skipped: no CUDA device");
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  cudaDeviceProp properties{};
  check(cudaGetDeviceProperties(&properties, 0), "cudaGetDeviceProperties");
  benchmark::AddCustomContext("gpu", properties.name);
  for (const ika::index_t D : {64, 128})
    for (const ika::index_t L : {1024, 2048, 4096}) {
      for (const auto& [name, m] : {std::pair{"cuda_fused", method::fused_softmax},
                                    std::pair{"cublas_unfused", method::unfused},
                                    std::pair{"cuda_fused_ika", method::fused_ika}})
        benchmark::RegisterBenchmark(name, run, m)->Args({L, D})->ArgNames({"L", "D"})->UseManualTime()
            ->Unit(benchmark::kMillisecond)->MinTime(0.2);
    }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
