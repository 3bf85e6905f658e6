// SPDX-License-Identifier: MIT
// main() of every CUDA test: runs its doctest cases where there is a CUDA device, else prints
// "skipped: no CUDA device" and exits with 77 (the tests' SKIP_RETURN_CODE in CTest). Include
// once per test executable, before doctest.
#pragma once

#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cuda_runtime.h>

#include <cstdio>

int main(int argc, char** argv) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::puts("skipped: no CUDA device");
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
