// SPDX-License-Identifier: MIT
// A mask policy without bind(shape).
// expect-error: ika mask policy: missing hook 'bind(const attention_shape&) const'
#define IKA_USER_MASK_DEFECT_MISSING_BIND
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(ika::rbf{}) + ika::mask(compile_fail::first_keys{3})); }
