// SPDX-License-Identifier: MIT
// Time of binding the Yaglom kernel (packing its spectral points for the engine), H = 8, D = 64,
// M = 64, from float and from double points: the fixed cost of every call with that kernel.
#include <ika/ika.hpp>
#include <chrono>
#include <cstdio>
int main() {
  const auto k = ika::yaglom_rff<float>::from_seed(42, 8, 64, 64);
  const auto k64 = ika::yaglom_rff<double>::from_seed(42, 8, 64, 64);
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    float sink = 0;
    for (int i = 0; i < 1000; ++i) { auto b = k.bind<float>(8, 64); sink += b.w1.data[i]; }
    auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) { auto b = k64.bind<float>(8, 64); sink += b.w1.data[i]; }
    auto t2 = std::chrono::steady_clock::now();
    std::printf("bind yaglom<float> H=8 D=64 M=64: %.2f us, from double points %.2f us (%g)\n",
                std::chrono::duration<double, std::micro>(t1 - t0).count() / 1000,
                std::chrono::duration<double, std::micro>(t2 - t1).count() / 1000, sink);
  }
}
