// SPDX-License-Identifier: MIT
// A bound kernel with prepare_query but no prepare_key.
// expect-error: ika kernel policy: bound kernel lacks hook 'prepare_key(head, row, features)'
#define IKA_USER_KERNEL_DEFECT_MISSING_PREPARE_KEY
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(compile_fail::user_kernel{})); }
