// SPDX-License-Identifier: MIT
// kernel_value_form = true (exp-free weights) without a kernel_value(score) hook.
// expect-error: ika kernel policy: kernel_value_form is true but the bound kernel lacks hook 'kernel_value(score)'
#define IKA_USER_KERNEL_DEFECT_VALUE_FORM_WITHOUT_KERNEL_VALUE
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(compile_fail::user_kernel{})); }
