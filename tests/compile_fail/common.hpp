// SPDX-License-Identifier: MIT
// Shared by the compile-fail cases: small float tensors and one call of the fused engine.
// Every case compiles twice: as written (must fail with the message named on its
// "// expect-error:" line) and with -DIKA_COMPILE_FAIL_FIXED (the misuse corrected; must compile),
// so a case cannot pass by failing for an unrelated reason.
#pragma once

#include <ika/ika.hpp>

#include <vector>

namespace compile_fail {

constexpr ika::index_t B = 1, H = 2, L = 5, D = 4;

struct tensors {
  std::vector<float> q = std::vector<float>(B * H * L * D, 0.5f), k = q, v = q, o = q;
};

template <class Logit>
void run(const Logit& logit) {
  tensors t;
  ika::attention(ika::bhld(t.q.data(), B, H, L, D), ika::bhld(t.k.data(), B, H, L, D),
                 ika::bhld(t.v.data(), B, H, L, D), ika::bhld(t.o.data(), B, H, L, D), logit);
}

} // namespace compile_fail
