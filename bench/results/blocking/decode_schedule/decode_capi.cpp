// SPDX-License-Identifier: MIT
// One decode call (Lq = 1, lower-right causal: the query sees every key) of ika's softmax
// expression, exported as a C function so that builds against different copies of the headers
// load side by side into pair_decode (built with -fvisibility=hidden).
#include <ika/ika.hpp>

#include <cstdlib>

extern "C" __attribute__((visibility("default"))) void ika_decode(const float* q, const float* k, const float* v,
                                                                 float* out, long long heads, long long keys,
                                                                 long long dim, int threads) {
  const auto view = [&](const float* x, long long length) {
    return ika::bhld(const_cast<float*>(x), 1, heads, length, dim);
  };
  const auto softmax = ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0});
  try {
    ika::attention(view(q, 1), view(k, keys), view(v, keys), view(out, 1),
                   softmax + ika::mask(ika::causal_lower_right{}), {.threads = threads});
  } catch (...) {
    std::abort();
  }
}
