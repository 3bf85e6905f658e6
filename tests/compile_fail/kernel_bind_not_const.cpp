// SPDX-License-Identifier: MIT
// A kernel policy whose bind is not const (the engine binds a const policy).
// expect-error: ika kernel policy: missing hook 'template <class T> bind(index_t heads, index_t dim) const'
#define IKA_USER_KERNEL_DEFECT_BIND_NOT_CONST
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(compile_fail::user_kernel{})); }
