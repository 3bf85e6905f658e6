// SPDX-License-Identifier: MIT
// A bound kernel without prepare_query.
// expect-error: ika kernel policy: bound kernel lacks hook 'prepare_query(head, row, features)'
#define IKA_USER_KERNEL_DEFECT_MISSING_PREPARE_QUERY
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(compile_fail::user_kernel{})); }
