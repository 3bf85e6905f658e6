// SPDX-License-Identifier: MIT
// A C entry point to ika's fused softmax attention, built as a shared library (ika_bench_capi) for
// bench/torch_paired.py: that script calls it through ctypes on PyTorch's own tensors, one call of
// ika then one of torch's SDPA and so on, so that both see the same moments of a machine whose speed
// drifts (shared vCPUs) and the same inputs (their outputs are compared element by element).
//
// Only the C function is exported (the target builds with hidden visibility), so that several
// builds of this file against different copies of the headers (tuning variants) can be loaded into
// one process side by side without binding to each other's template instances.
#include <ika/ika.hpp>

#include <exception>
#include <string>

#define IKA_CAPI_EXPORT extern "C" __attribute__((visibility("default")))

namespace {
thread_local std::string last_error;

// softmax(QKᵀ/√D)·V as ika writes it, bench::softmax_logit's expression: the RBF log-kernel plus
// the L² magnitude differ from q·k/√D only by a term constant along each row. Written out because
// bench/common.hpp replaces the global operator new, which a library loaded into Python must not.
auto softmax_logit() { return ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}); }
} // namespace

// q, k, out: (batch, heads, length, dim) and v: (batch, heads, length, dim), contiguous fp32.
// causal != 0: query i sees keys j ≤ i. Returns 0, or -1 with the reason in ika_bench_last_error().
IKA_CAPI_EXPORT int ika_bench_softmax_attention(const float* q, const float* k, const float* v, float* out,
                                                long long batch, long long heads, long long length, long long dim,
                                                int causal, int threads) {
  try {
    // ika's views take non-const pointers for every operand; q, k and v are only read.
    const auto view = [&](const float* x) { return ika::bhld(const_cast<float*>(x), batch, heads, length, dim); };
    const ika::attention_options<float> options{.threads = threads};
    if (causal != 0)
      ika::attention(view(q), view(k), view(v), view(out), softmax_logit() + ika::mask(ika::causal_upper_left{}),
                     options);
    else
      ika::attention(view(q), view(k), view(v), view(out), softmax_logit(), options);
    return 0;
  } catch (const std::exception& e) {
    last_error = e.what();
    return -1;
  }
}

IKA_CAPI_EXPORT const char* ika_bench_last_error() { return last_error.c_str(); }
