// SPDX-License-Identifier: MIT
// A bound kernel without the log_kernel(score) epilogue.
// expect-error: ika kernel policy: bound kernel lacks hook 'log_kernel(score)'
#define IKA_USER_KERNEL_DEFECT_MISSING_LOG_KERNEL
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(compile_fail::user_kernel{})); }
