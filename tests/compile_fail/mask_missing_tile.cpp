// SPDX-License-Identifier: MIT
// A bound mask without tile(...): the engine cannot classify tiles.
// expect-error: ika mask policy: bound mask lacks hook 'tile(b, h, i0, i1, j0, j1) -> tile_state'
#define IKA_USER_MASK_DEFECT_MISSING_TILE
#include "user_policies.hpp"

int main() { compile_fail::run(ika::log_kernel(ika::rbf{}) + ika::mask(compile_fail::first_keys{3})); }
