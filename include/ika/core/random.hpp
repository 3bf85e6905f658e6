// SPDX-License-Identifier: MIT
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "ika/core/config.hpp"

namespace ika {

// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): the
// n-th random word is a pure function of (seed, stream, n). Draws therefore do not depend on
// which thread asks, or in which order, which is what keeps results identical for any thread count.
class counter_rng {
public:
  IKA_HOST_DEVICE explicit counter_rng(std::uint64_t seed) : key_{std::uint32_t(seed), std::uint32_t(seed >> 32)} {}

  // Four independent 32-bit words for the counter (stream, index).
  IKA_HOST_DEVICE std::array<std::uint32_t, 4> words(std::uint64_t stream, std::uint64_t index) const {
    std::uint32_t c0 = std::uint32_t(index), c1 = std::uint32_t(index >> 32);
    std::uint32_t c2 = std::uint32_t(stream), c3 = std::uint32_t(stream >> 32);
    std::uint32_t k0 = key_[0], k1 = key_[1];
    for (int round = 0; round < 10; ++round) {
      const std::uint64_t p0 = std::uint64_t(0xD2511F53u) * c0;
      const std::uint64_t p1 = std::uint64_t(0xCD9E8D57u) * c2;
      const std::uint32_t n0 = std::uint32_t(p1 >> 32) ^ c1 ^ k0;
      const std::uint32_t n2 = std::uint32_t(p0 >> 32) ^ c3 ^ k1;
      c1 = std::uint32_t(p1);
      c3 = std::uint32_t(p0);
      c0 = n0;
      c2 = n2;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    return {c0, c1, c2, c3};
  }

  // Uniform in the open interval (0, 1), 53 random bits.
  IKA_HOST_DEVICE double uniform(std::uint64_t stream, std::uint64_t index) const {
    const auto w = words(stream, index);
    return open_unit(w[0], w[1]);
  }

  // Standard normal by Box-Muller on two uniforms of the same counter.
  IKA_HOST_DEVICE double normal(std::uint64_t stream, std::uint64_t index) const {
    const auto w = words(stream, index);
    const double u1 = open_unit(w[0], w[1]), u2 = open_unit(w[2], w[3]);
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586476925 * u2);
  }

private:
  // 32 + 21 bits → (0, 1), never 0 (log-safe) and never 1.
  IKA_HOST_DEVICE static double open_unit(std::uint32_t high, std::uint32_t low) {
    const std::uint64_t bits = (static_cast<std::uint64_t>(high) << 21) ^ (low >> 11);
    return (static_cast<double>(bits) + 0.5) * 0x1.0p-53;
  }

  std::uint32_t key_[2];
};

} // namespace ika
