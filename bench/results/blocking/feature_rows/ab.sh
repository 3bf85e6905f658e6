#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Alternating A/B rounds: old (a831ec1) vs new (its successor's working tree) benchmark binaries.
set -e
cd "$(dirname "$0")" # binaries in old/ and new/ (built by hand, see ../feature_rows.md), JSON into runs/
mkdir -p runs
for r in 1 2 3; do
  order="old new"; [ $((r % 2)) = 0 ] && order="new old"
  for b in $order; do
    ./$b/bench_attention --benchmark_filter='fused_ika.*/L:(256|1024)/' --benchmark_format=json --benchmark_out=runs/attention_${b}_$r.json >/dev/null 2>&1
    ./$b/bench_backward --benchmark_filter='backward_ika/L:1024/' --benchmark_format=json --benchmark_out=runs/backward_${b}_$r.json >/dev/null 2>&1
    ./$b/bench_decode --benchmark_filter='^ika/Lk:(4096|16384)/' --benchmark_format=json --benchmark_out=runs/decode_${b}_$r.json >/dev/null 2>&1
  done
done
