// SPDX-License-Identifier: MIT
// The CUDA forward's launch plan: host-side logic, tested without a GPU (include/ika/cuda/
// launch_plan.hpp needs no CUDA headers).

#include <doctest/doctest.h>

#include <ika/cuda/launch_plan.hpp>

#include "support.hpp"

using ika::cuda::detail::plan_forward;

TEST_CASE("cuda forward plan: the largest query tile whose shared memory fits") {
  // shared memory of a block, by the layout forward.cuh documents: query features and outputs of
  // the block's rows, one key tile's features, values and key terms
  const auto bytes = [](std::size_t rows, std::size_t keys, std::size_t F, std::size_t Dv) {
    return 4 * (rows * F + rows * Dv + keys * F + keys * Dv + keys);
  };
  const std::size_t hopper = 227 * 1024, default_limit = 48 * 1024;

  auto plan = plan_forward(64, 64, hopper, 4);
  CHECK(plan.query_tile == 128);
  CHECK(plan.key_tile == 32);
  CHECK(plan.shared_bytes == bytes(128, 32, 64, 64));

  // D = Dv = 128 with the 48 KiB default: 128 rows need 160 KiB, 64 rows 96 KiB, 32 rows 64 KiB
  CHECK(bytes(32, 32, 128, 128) > default_limit);
  ika_test::check_throws_argument([&] { (void)plan_forward(128, 128, default_limit, 4); }, "q");
  plan = plan_forward(128, 128, hopper, 4);
  CHECK(plan.query_tile == 128);
  CHECK(plan.shared_bytes <= hopper);

  // a limit between the 64- and the 128-row footprints picks 64 rows
  plan = plan_forward(64, 64, bytes(64, 32, 64, 64), 4);
  CHECK(plan.query_tile == 64);
  CHECK(plan.shared_bytes == bytes(64, 32, 64, 64));

  // random-feature sizes (F = 2M = 512) still fit on Hopper with 64 rows
  plan = plan_forward(512, 64, hopper, 4);
  CHECK(plan.query_tile == 64);
  CHECK(plan.shared_bytes <= hopper);
}
