#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Alternating A/B rounds of two builds of the benchmarks (IKA forward, backward, decode):
#   ab.sh DIR   with DIR/old/ and DIR/new/ holding bench_attention, bench_backward and bench_decode
#               (built by hand, see feature_rows.md); Google Benchmark JSON goes to DIR/runs/,
#               ab_report.py DIR makes the table.
#   ATTENTION, BACKWARD, DECODE, LINEAR: --benchmark_filter of each binary (the defaults below; LINEAR
#   empty: bench_linear not run). DIR/old/ and DIR/new/ then also hold bench_linear.
set -e
: "${ATTENTION:=fused_ika.*/L:(256|1024)/}" "${BACKWARD:=backward_ika/L:1024/}" "${DECODE:=^ika/Lk:(4096|16384)/}"
: "${LINEAR:=}"
cd "$1"
mkdir -p runs
for r in 1 2 3; do
  order="old new"; [ $((r % 2)) = 0 ] && order="new old"
  for b in $order; do
    ./$b/bench_attention --benchmark_filter="$ATTENTION" --benchmark_format=json --benchmark_out=runs/attention_${b}_$r.json >/dev/null 2>&1
    ./$b/bench_backward --benchmark_filter="$BACKWARD" --benchmark_format=json --benchmark_out=runs/backward_${b}_$r.json >/dev/null 2>&1
    ./$b/bench_decode --benchmark_filter="$DECODE" --benchmark_format=json --benchmark_out=runs/decode_${b}_$r.json >/dev/null 2>&1
    [ -z "$LINEAR" ] || ./$b/bench_linear --benchmark_filter="$LINEAR" --benchmark_format=json --benchmark_out=runs/linear_${b}_$r.json >/dev/null 2>&1
  done
done
