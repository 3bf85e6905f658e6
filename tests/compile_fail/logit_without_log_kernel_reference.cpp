// SPDX-License-Identifier: MIT
// A logit expression with no kernel term, through ika::reference::attention.
// expect-error: ika::reference::attention: the logit needs a log_kernel(...) term
#include "common.hpp"

int main() {
  compile_fail::tensors t;
  using compile_fail::B, compile_fail::H, compile_fail::L, compile_fail::D;
#ifdef IKA_COMPILE_FAIL_FIXED
  const auto logit = ika::log_kernel(ika::dot_product{}) + ika::magnitude(ika::lp{3.0});
#else
  const auto logit = ika::magnitude(ika::lp{3.0});
#endif
  ika::reference::attention(ika::bhld(t.q.data(), B, H, L, D), ika::bhld(t.k.data(), B, H, L, D),
                            ika::bhld(t.v.data(), B, H, L, D), ika::bhld(t.o.data(), B, H, L, D), logit);
}
