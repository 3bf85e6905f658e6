// SPDX-License-Identifier: MIT
// key_features_are_rows = true (keys scored in place, terms in blocks) without a key_terms hook.
// expect-error: ika kernel policy: key_features_are_rows is true but the bound kernel lacks hook 'key_terms(head, rows, n, terms)'
#define IKA_USER_KERNEL_DEFECT_KEY_ROWS_WITHOUT_KEY_TERMS
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(compile_fail::user_kernel{})); }
