// SPDX-License-Identifier: MIT
// A logit expression with a magnitude and a mask but no kernel term, through ika::attention.
// expect-error: ika::attention: the logit needs a log_kernel(...) term
#include "common.hpp"

int main() {
#ifdef IKA_COMPILE_FAIL_FIXED
  compile_fail::run(ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}) + ika::mask(ika::causal{}));
#else
  compile_fail::run(ika::magnitude(ika::lp{2.0}) + ika::mask(ika::causal{}));
#endif
}
