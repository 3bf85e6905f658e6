// SPDX-License-Identifier: MIT
// A bound mask without apply(...).
// expect-error: ika mask policy: bound mask lacks hook 'apply(b, h, i, j0, n, logits)' for float and double
#define IKA_USER_MASK_DEFECT_MISSING_APPLY
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(ika::rbf{}) + ika::mask(compile_fail::first_keys{3})); }
