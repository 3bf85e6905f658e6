// SPDX-License-Identifier: MIT
// bench/flash_blas.hpp: a flash-attention baseline on OpenBLAS, the algorithm of PyTorch's CPU
// flash attention (blocked, online softmax, two SGEMMs per block pair) written here from its
// description, so that bench_attention can time the fused engine against the way a competent
// BLAS-based library computes softmax(QKᵀ/√D)·V without materialising the L × L matrix.
//
// Per (batch·head, query block of up to 256 rows) task, one thread:
//   m = −∞, l = 0 per row
//   for each key block of up to 512 keys (in order):
//     S = (1/√D) · Q_blk · K_blkᵀ                      cblas_sgemm, (rows × n), alpha = 1/√D
//     per row: m_new = max(m, max_j S_ij)   (causal: keys j > i set to −∞ first)
//              P_ij  = exp(S_ij − m_new), in place   (xsimd exp, 16 lanes with AVX-512)
//              α     = exp(m − m_new);  l = α·l + Σ_j P_ij;  O_blk row *= α;  m = m_new
//     O_blk = P · V_blk + β·O_blk                        cblas_sgemm, β = 0 for the first block
//   out rows = O_blk rows / l
// The tasks are split over an OpenMP team of `threads` (schedule(static)); each thread owns an
// S/P buffer (256 × 512 floats), an output accumulator O_blk (256 × Dv) and m, l (256 each), taken
// from operator new once per call. OpenBLAS's own threading is set to 1 once, so both the fused
// engine and this baseline run one thread per task with the same team size.
//
// Layout: q, k (BH, L, D), v, out (BH, L, Dv), contiguous and row-major; fp32.
#pragma once

#include <cblas.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <string>

#include <omp.h>
#include <unistd.h>

#include <ika/simd/simd.hpp>

// OpenBLAS extensions (also declared by OpenBLAS's cblas.h, with the same signatures).
extern "C" void openblas_set_num_threads(int);
extern "C" char* openblas_get_config(void);
extern "C" char* openblas_get_corename(void);

namespace bench {

inline constexpr std::ptrdiff_t flash_q_block = 256;
inline constexpr std::ptrdiff_t flash_k_block = 512;

// OpenBLAS single-threaded, once per process.
inline void openblas_single_thread() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

// "OpenBLAS 0.3.21 ... (core: SkylakeX)", and whether bench set the kernels (below): what the JSON
// context records.
inline std::string openblas_description() {
  std::string text = std::string(openblas_get_config()) + " (core: " + openblas_get_corename() + ")";
  if (const char* was = std::getenv("IKA_BENCH_OPENBLAS_CORETYPE_WAS"))
    text += std::string("; OPENBLAS_CORETYPE=SkylakeX set by the benchmark (was ") + was + ")";
  return text;
}

// A DYNAMIC_ARCH OpenBLAS picks its kernels by CPU model, and an OpenBLAS older than the CPU (or an
// OPENBLAS_CORETYPE=Haswell in the environment) gives an AVX-512 CPU its AVX2 kernels: Debian 12's
// 0.3.21 takes an AVX-512 AMD EPYC for "Haswell", ~1.6× slower on this benchmark than its AVX-512
// SkylakeX kernels. The baseline is meant to be the best this OpenBLAS can do on the machine, so
// (as with its thread count) the benchmark chooses the kernels: when the CPU has every AVX-512
// subset the SkylakeX kernels use (F, CD, BW, DQ, VL), the library is DYNAMIC_ARCH and its core is
// not an AVX-512 one, this sets OPENBLAS_CORETYPE=SkylakeX and re-executes the program once
// (OpenBLAS reads the variable only when it is loaded). IKA_BENCH_OPENBLAS_CORETYPE=keep leaves
// OpenBLAS's choice alone. Returns when nothing needed doing or the re-exec failed (with a warning).
inline void prefer_avx512_openblas_kernels(char** argv) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (const char* knob = std::getenv("IKA_BENCH_OPENBLAS_CORETYPE"); knob && std::string(knob) == "keep") return;
  if (std::getenv("IKA_BENCH_OPENBLAS_CORETYPE_WAS") != nullptr) return; // already re-executed once
  if (std::string(openblas_get_config()).find("DYNAMIC_ARCH") == std::string::npos) return;
  if (!(__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl")))
    return;
  std::string core = openblas_get_corename();
  for (char& c : core) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (core == "skylakex" || core == "cooperlake" || core == "sapphirerapids") return;
  const char* before = std::getenv("OPENBLAS_CORETYPE");
  const std::string was = before ? before : "unset";
  std::fprintf(stderr,
               "bench: OpenBLAS chose its %s kernels on an AVX-512 CPU (OPENBLAS_CORETYPE %s); re-running with "
               "OPENBLAS_CORETYPE=SkylakeX (IKA_BENCH_OPENBLAS_CORETYPE=keep to keep them)\n",
               openblas_get_corename(), was.c_str());
  std::fflush(stderr);
  setenv("IKA_BENCH_OPENBLAS_CORETYPE_WAS", was.c_str(), 1);
  setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
  execv("/proc/self/exe", argv);
  std::fprintf(stderr, "bench: re-executing failed; OpenBLAS keeps its %s kernels\n", openblas_get_corename());
  unsetenv("IKA_BENCH_OPENBLAS_CORETYPE_WAS");
#else
  (void)argv;
#endif
}

namespace detail {

// Uninitialised, 64-byte aligned floats from operator new (so bench's peak_MiB counts them).
struct aligned_floats {
  struct deleter {
    void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); }
  };
  std::unique_ptr<float[], deleter> p;
  explicit aligned_floats(std::size_t n)
      : p(static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t(64)))) {}
  float* get() const { return p.get(); }
};

// Row i of a score block (n entries, already scaled): replaces it by exp(s − m_new) and updates
// the running max m and sum l; returns α = exp(m_old − m_new), by which the output row is rescaled.
inline float online_softmax_row(float* s, std::ptrdiff_t n, float& m, float& l) {
  using batch = ika::simd::batch<float>;
  constexpr std::ptrdiff_t W = std::ptrdiff_t(ika::simd::width<float>);
  constexpr float neg_inf = -std::numeric_limits<float>::infinity();
  batch vmax(neg_inf);
  std::ptrdiff_t j = 0;
  for (; j + W <= n; j += W) vmax = xsimd::max(vmax, ika::simd::load(s + j));
  float block_max = ika::simd::reduce_max(vmax);
  for (; j < n; ++j) block_max = std::max(block_max, s[j]);

  const float m_new = std::max(m, block_max);
  if (m_new == neg_inf) { // every key so far masked (causal only): nothing to add yet
    std::fill(s, s + n, 0.f);
    return 1.f;
  }
  const batch vm(m_new);
  batch vsum(0.f);
  j = 0;
  for (; j + W <= n; j += W) {
    const batch p = xsimd::exp(ika::simd::load(s + j) - vm);
    ika::simd::store(s + j, p);
    vsum += p;
  }
  float block_sum = ika::simd::reduce_add(vsum);
  for (; j < n; ++j) {
    s[j] = std::exp(s[j] - m_new);
    block_sum += s[j];
  }
  const float alpha = std::exp(m - m_new); // m = −∞ on the first block: α = 0
  l = alpha * l + block_sum;
  m = m_new;
  return alpha;
}

} // namespace detail

// out = softmax(q kᵀ / √D) v per (batch·head), optionally causal (upper-left: query i sees keys
// j ≤ i; requires Lq == Lk), with `threads` OpenMP threads.
inline void flash_blas_attention(const float* q, const float* k, const float* v, float* out, std::ptrdiff_t BH,
                                 std::ptrdiff_t L, std::ptrdiff_t D, std::ptrdiff_t Dv, int threads,
                                 bool causal = false) {
  openblas_single_thread();
  constexpr std::ptrdiff_t QB = flash_q_block, KB = flash_k_block;
  const std::ptrdiff_t q_blocks = (L + QB - 1) / QB;
  const std::ptrdiff_t tasks = BH * q_blocks;
  const float scale = 1.f / std::sqrt(float(D));
  // Per-thread strides, multiples of 16 floats, so every thread's buffers start 64-byte aligned.
  const std::size_t s_size = std::size_t(QB * KB), o_size = std::size_t(QB * Dv), row_size = std::size_t(QB);
  const std::size_t per_thread = s_size + o_size + 2 * row_size;
  detail::aligned_floats buffer{per_thread * std::size_t(std::max(threads, 1))};

#pragma omp parallel for num_threads(threads) schedule(static)
  for (std::ptrdiff_t task = 0; task < tasks; ++task) {
    float* const S = buffer.get() + per_thread * std::size_t(omp_get_thread_num());
    float* const O = S + s_size;
    float* const m = O + o_size;
    float* const l = m + row_size;
    const std::ptrdiff_t bh = task / q_blocks, i0 = (task % q_blocks) * QB;
    const std::ptrdiff_t rows = std::min(QB, L - i0);
    const float* const qb = q + (bh * L + i0) * D;
    const float* const kh = k + bh * L * D;
    const float* const vh = v + bh * L * Dv;
    std::fill(m, m + rows, -std::numeric_limits<float>::infinity());
    std::fill(l, l + rows, 0.f);

    // causal: keys past the block's last query are hidden from every row of the block
    const std::ptrdiff_t key_end = causal ? std::min(L, i0 + rows) : L;
    for (std::ptrdiff_t j0 = 0; j0 < key_end; j0 += KB) {
      const std::ptrdiff_t n = std::min(KB, key_end - j0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(rows), int(n), int(D), scale, qb, int(D), kh + j0 * D,
                  int(D), 0.f, S, int(n));
      const bool first = j0 == 0;
      for (std::ptrdiff_t r = 0; r < rows; ++r) {
        float* const s = S + r * n;
        if (causal) { // query i0 + r sees keys j ≤ i0 + r
          const std::ptrdiff_t visible = std::clamp<std::ptrdiff_t>(i0 + r + 1 - j0, 0, n);
          std::fill(s + visible, s + n, -std::numeric_limits<float>::infinity());
        }
        const float alpha = detail::online_softmax_row(s, n, m[r], l[r]);
        if (!first && alpha != 1.f) {
          float* const o = O + r * Dv;
          for (std::ptrdiff_t d = 0; d < Dv; ++d) o[d] *= alpha;
        }
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(Dv), int(n), 1.f, S, int(n),
                  vh + j0 * Dv, int(Dv), first ? 0.f : 1.f, O, int(Dv));
    }

    float* const ob = out + (bh * L + i0) * Dv;
    for (std::ptrdiff_t r = 0; r < rows; ++r) {
      const float inv = 1.f / l[r];
      for (std::ptrdiff_t d = 0; d < Dv; ++d) ob[r * Dv + d] = O[r * Dv + d] * inv;
    }
  }
}

} // namespace bench
