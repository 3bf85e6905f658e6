// SPDX-License-Identifier: MIT
// What the call-timing drivers under this folder share: normally distributed inputs and the
// median / minimum time per call.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace call_timing {

inline std::vector<float> normal(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> x(n);
  for (float& e : x) e = d(rng);
  return x;
}

// the sorted times of `calls` calls after one warm-up call, in µs
inline std::vector<double> times_us(int calls, const std::function<void()>& call) {
  std::vector<double> t;
  call();
  for (int c = 0; c < calls; ++c) {
    const auto t0 = std::chrono::steady_clock::now();
    call();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t;
}

inline void time_calls(const std::string& name, int calls, const std::function<void()>& call) {
  const std::vector<double> t = times_us(calls, call);
  std::printf("%-40s median %9.2f us  min %9.2f us\n", name.c_str(), t[t.size() / 2], t.front());
  std::fflush(stdout);
}

} // namespace call_timing
