#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs the CUDA tests and the GPU benchmark on a machine with a GPU, from binaries built elsewhere
# (`cmake --preset cuda && cmake --build --preset cuda` on a Debian 12 machine with nvcc; the GPU
# machine then needs only the CUDA 13 runtime libraries). Results go to $OUT (default
# bench/results/cuda): gpu.txt, test_cuda_attention.txt (with its exit status),
# cuda_attention.json (Google Benchmark), bench_cuda_attention.txt.
#
#   bench/cuda/device_run.sh [build dir, default build/cuda] [extra library dir, e.g. for libbenchmark]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
build="${1:-build/cuda}"
libs="${2:-}"
out="${OUT:-bench/results/cuda}"
mkdir -p "$out"
export LD_LIBRARY_PATH="${libs:+$libs:}/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"

nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$out/gpu.txt" 2>&1
"$build/tests/cuda/test_cuda_attention" > "$out/test_cuda_attention.txt" 2>&1
echo "exit status: $?" >> "$out/test_cuda_attention.txt"
tail -4 "$out/test_cuda_attention.txt"
"$build/bench/bench_cuda_attention" --benchmark_out="$out/cuda_attention.json" --benchmark_out_format=json \
  > "$out/bench_cuda_attention.txt" 2>&1
echo "bench exit status: $?" >> "$out/bench_cuda_attention.txt"
cat "$out/bench_cuda_attention.txt"
