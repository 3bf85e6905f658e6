// SPDX-License-Identifier: MIT
// The key pass's panel writes alone: 8192 keys of F = 128 features (the IKA kernel's, M = 64) into
// panels [F][NR], per key with stride NR (the engine before this change) or per panel with
// ika::detail::pack_panel. Prints ms per 8192 keys, best of `rounds` rounds of 200 passes each.
//   panel_pack [rounds]
#include <ika/ika.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

using T = float;
constexpr ika::index_t F = 128, KEYS = 8192, NR = ika::detail::engine_blocking<T>::NR;

[[gnu::noinline]] void per_key(const T* rows, T* panels) {
  for (ika::index_t j = 0; j < KEYS; ++j) {
    T* panel = panels + (j / NR) * F * NR + j % NR;
    for (ika::index_t f = 0; f < F; ++f) panel[f * NR] = rows[j * F + f];
  }
}

[[gnu::noinline]] void per_panel(const T* rows, T* panels) {
  for (ika::index_t p = 0; p < KEYS; p += NR) ika::detail::pack_panel(rows + p * F, F, F, panels + p * F);
}

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 5;
  std::vector<T> rows(KEYS * F), expected(rows.size()), panels(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = T(i % 1009) * T(0.5);
  per_key(rows.data(), expected.data());
  const auto time = [&](const char* name, auto write) {
    double best = 1e30;
    for (int r = 0; r < rounds; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 200; ++i) write(rows.data(), panels.data());
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 200);
    }
    const bool same = std::memcmp(panels.data(), expected.data(), panels.size() * sizeof(T)) == 0;
    std::printf("%-10s %.3f ms per %ld keys (%s)\n", name, best, long(KEYS), same ? "same panels" : "DIFFERENT panels");
  };
  time("per_key", per_key);
  time("per_panel", per_panel);
}
