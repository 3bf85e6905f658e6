// SPDX-License-Identifier: MIT
// Two graph masks in one logit expression (the engine walks one set of neighbour lists).
// expect-error: ika::attention: at most one graph mask per logit expression
#include "common.hpp"

int main() {
  const std::vector<int> offsets{0, 1, 2, 3, 4, 5}, columns{0, 1, 2, 3, 4};
  const auto graph = ika::mask(ika::graph_csr{offsets, columns});
#ifdef IKA_COMPILE_FAIL_FIXED
  compile_fail::run(ika::log_kernel(ika::rbf{}) + graph + ika::mask(ika::causal{}));
#else
  compile_fail::run(ika::log_kernel(ika::rbf{}) + graph + graph);
#endif
}
