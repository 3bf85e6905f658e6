// SPDX-License-Identifier: MIT
// A kernel policy without 'pairwise' (how the tile product combines two prepared rows).
// expect-error: ika kernel policy: missing 'static constexpr pairwise_op pairwise'
#define IKA_USER_KERNEL_DEFECT_MISSING_PAIRWISE
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(compile_fail::user_kernel{})); }
