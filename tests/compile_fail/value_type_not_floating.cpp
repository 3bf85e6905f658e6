// SPDX-License-Identifier: MIT
// Tensors of int: the CPU engine computes in float or double only.
// expect-error: ika::attention (CPU): value type must be float or double
#include "common.hpp"

int main() {
  using compile_fail::B, compile_fail::H, compile_fail::L, compile_fail::D;
#ifdef IKA_COMPILE_FAIL_FIXED
  using value = float;
#else
  using value = int;
#endif
  std::vector<value> q(B * H * L * D), k = q, v = q, o = q;
  ika::attention(ika::bhld(q.data(), B, H, L, D), ika::bhld(k.data(), B, H, L, D), ika::bhld(v.data(), B, H, L, D),
                 ika::bhld(o.data(), B, H, L, D), ika::log_kernel(ika::rbf{}));
}
