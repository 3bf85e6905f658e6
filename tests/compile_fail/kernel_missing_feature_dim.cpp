// SPDX-License-Identifier: MIT
// A bound kernel without feature_dim().
// expect-error: ika kernel policy: bound kernel lacks hook 'feature_dim()'
#define IKA_USER_KERNEL_DEFECT_MISSING_FEATURE_DIM
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(compile_fail::user_kernel{})); }
