// SPDX-License-Identifier: MIT
// q in double, k, v and out in float.
// expect-error: ika::attention: q, k, v and out must have the same value type
#include "common.hpp"

int main() {
  using compile_fail::B, compile_fail::H, compile_fail::L, compile_fail::D;
  compile_fail::tensors t;
#ifdef IKA_COMPILE_FAIL_FIXED
  std::vector<float> q(t.q.begin(), t.q.end());
#else
  std::vector<double> q(t.q.begin(), t.q.end());
#endif
  ika::attention(ika::bhld(q.data(), B, H, L, D), ika::bhld(t.k.data(), B, H, L, D), ika::bhld(t.v.data(), B, H, L, D),
                 ika::bhld(t.o.data(), B, H, L, D), ika::log_kernel(ika::rbf{}));
}
