// SPDX-License-Identifier: MIT
// An output view of const values.
// expect-error: ika::attention: out must be a view of non-const values
#include "common.hpp"

int main() {
  using compile_fail::B, compile_fail::H, compile_fail::L, compile_fail::D;
  compile_fail::tensors t;
#ifdef IKA_COMPILE_FAIL_FIXED
  float* out = t.o.data();
#else
  const float* out = t.o.data();
#endif
  ika::attention(ika::bhld(t.q.data(), B, H, L, D), ika::bhld(t.k.data(), B, H, L, D), ika::bhld(t.v.data(), B, H, L, D),
                 ika::bhld(out, B, H, L, D), ika::log_kernel(ika::rbf{}));
}
