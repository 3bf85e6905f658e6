// SPDX-License-Identifier: MIT
// The tape's attention node on the GPU (ika::cuda::attention_engine): the same loss and gradients
// as the CPU node, from host tensors. Exits with 77 (CTest: skipped) without a CUDA device.

#include "device_main.hpp"

#include <cuda_runtime.h>

#include <cstdio>

#include <ika/autodiff/autodiff.hpp>
#include <ika/cuda/autodiff.cuh>
#include <ika/ika.hpp>

#include "../ad_support.hpp"

namespace ad = ika::ad;
using ika::index_t;
using ika_test::random_variable;

namespace {

double largest(const std::vector<float>& x) {
  double m = 0;
  for (float e : x) m = std::max(m, double(std::abs(e)));
  return m;
}

// max |a − b| over max(1, max |b|)
double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = std::max(diff, double(std::abs(a[i] - b[i])));
  return diff / std::max(1.0, largest(b));
}

} // namespace

TEST_CASE("ad::attention on the GPU engine == on the CPU engine: value and gradients of q, k, v") {
  const index_t B = 2, Hq = 4, Hkv = 2, Lq = 9, Lk = 11, D = 5, Dv = 3;
  const auto logit = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{3.0}) + ika::mask(ika::causal_lower_right{});
  std::vector<float> values[2], grads[2][3];
  for (int engine = 0; engine < 2; ++engine) {
    auto q = random_variable<float>({B, Hq, Lq, D}, 1, 0.8), k = random_variable<float>({B, Hkv, Lk, D}, 2, 0.8),
         v = random_variable<float>({B, Hkv, Lk, Dv}, 3, 0.8);
    auto w = random_variable<float>({B, Hq, Lq, Dv}, 4, 0.8, false);
    ad::tape<float> tp;
    const auto y = engine == 0 ? ad::attention(tp, q, k, v, logit)
                               : ad::attention<ika::grouped_heads, ika::cuda::attention_engine>(tp, q, k, v, logit);
    const auto loss = ad::sum(tp, ad::mul(tp, ad::tanh(tp, y), w));
    tp.backward(loss);
    values[engine].assign(y.value().data(), y.value().data() + y.size());
    int i = 0;
    for (auto* x : {&q, &k, &v}) {
      grads[engine][i++].assign(x->grad().begin(), x->grad().end());
    }
  }
  CHECK(relative_difference(values[1], values[0]) <= 1e-5);
  const char* names[] = {"q", "k", "v"};
  for (int i = 0; i < 3; ++i) {
    INFO(names[i]);
    CHECK(largest(grads[0][i]) > 0);
    CHECK(relative_difference(grads[1][i], grads[0][i]) <= 1e-4);
  }
}

TEST_CASE("ad::attention on the GPU engine == on the CPU engine: learned spectral points (yaglom_rff)") {
  const index_t B = 2, H = 2, L = 7, D = 4, M = 5;
  std::vector<float> grads[2][3];
  for (int engine = 0; engine < 2; ++engine) {
    auto q = random_variable<float>({B, H, L, D}, 1, 0.8), k = random_variable<float>({B, H, L, D}, 2, 0.8),
         v = random_variable<float>({B, H, L, D}, 3, 0.8);
    auto w1 = random_variable<float>({H, D, M}, 5, 0.3), w2 = random_variable<float>({H, D, M}, 6, 0.3);
    ad::tape<float> tp;
    const auto logit =
        ika::log_kernel(ika::yaglom_rff{ika::spectral(static_cast<const float*>(w1.value().data()), H, D, M),
                                        ika::spectral(static_cast<const float*>(w2.value().data()), H, D, M)}) +
        ika::magnitude(ika::lp{3.0});
    const ad::attention_inputs<float> inputs{{w1, w2}};
    const auto y = engine == 0 ? ad::attention(tp, q, k, v, logit, inputs)
                               : ad::attention<ika::grouped_heads, ika::cuda::attention_engine>(tp, q, k, v, logit, inputs);
    tp.backward(ad::sum(tp, ad::tanh(tp, y)));
    int i = 0;
    for (auto* x : {&q, &w1, &w2}) grads[engine][i++].assign(x->grad().begin(), x->grad().end());
  }
  const char* names[] = {"q", "w1", "w2"};
  for (int i = 0; i < 3; ++i) {
    INFO(names[i]);
    CHECK(largest(grads[0][i]) > 0);
    CHECK(relative_difference(grads[1][i], grads[0][i]) <= 1e-4);
  }
}
