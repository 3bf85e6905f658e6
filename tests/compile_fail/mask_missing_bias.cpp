// SPDX-License-Identifier: MIT
// A bound mask without bias(...).
// expect-error: ika mask policy: bound mask lacks hook 'bias(b, h, i, j) -> double'
#define IKA_USER_MASK_DEFECT_MISSING_BIAS
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(ika::rbf{}) + ika::mask(compile_fail::first_keys{3})); }
