// SPDX-License-Identifier: MIT
#pragma once

// The size of one core's L2 cache, for the CPU engines' tile choices.

#include <cstddef>

#if defined(__unix__)
#include <unistd.h>
#endif

namespace ika::detail {

// Bytes of one core's L2 cache as the C library reports it (glibc reads CPUID), read once; 1 MiB,
// a common size, where it reports nothing.
inline std::size_t l2_cache_bytes() {
  static const std::size_t bytes = [] {
#if defined(_SC_LEVEL2_CACHE_SIZE)
    const long reported = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (reported > 0) return std::size_t(reported);
#endif
    return std::size_t(1) << 20;
  }();
  return bytes;
}

} // namespace ika::detail
