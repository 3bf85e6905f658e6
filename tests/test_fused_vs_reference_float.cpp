// SPDX-License-Identifier: MIT
#include "fused_vs_reference.hpp"

TEST_CASE("fused engine == reference for the kernel subset x norm x mask x heads x layout (float)") {
  ika_test::fused_matches_reference_everywhere<float>();
}
