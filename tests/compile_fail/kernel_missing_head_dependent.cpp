// SPDX-License-Identifier: MIT
// A kernel policy without 'head_dependent'.
// expect-error: ika kernel policy: missing 'static constexpr bool head_dependent'
#define IKA_USER_KERNEL_DEFECT_MISSING_HEAD_DEPENDENT
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(compile_fail::user_kernel{})); }
