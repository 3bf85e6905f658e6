// SPDX-License-Identifier: MIT
// Two log_kernel terms in one logit expression (the expression holds one kernel).
// expect-error: ika: a logit expression takes one log_kernel(...) term
#include "common.hpp"

int main() {
#ifdef IKA_COMPILE_FAIL_FIXED
  compile_fail::run(ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}));
#else
  compile_fail::run(ika::log_kernel(ika::rbf{}) + ika::magnitude(ika::lp{2.0}) + ika::log_kernel(ika::laplacian{}));
#endif
}
