// SPDX-License-Identifier: MIT
// A kernel policy without bind: the hook is spelled make.
// expect-error: ika kernel policy: missing hook 'template <class T> bind(index_t heads, index_t dim) const'
#define IKA_USER_KERNEL_DEFECT_MISSING_BIND
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(compile_fail::user_kernel{})); }
