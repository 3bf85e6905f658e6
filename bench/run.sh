#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build the benchmarks (release preset), run them with JSON output and turn the JSON into tables
# and plots:
#   attention  bench_attention -> bench/results/attention.json, table.md, gflops_vs_L.svg
#   backward   bench_backward  -> bench/results/backward.json, backward.md, backward.svg
#
#   bench/run.sh [attention|backward|all] [extra Google Benchmark flags, e.g. --benchmark_repetitions=3]
#
# The first argument picks the benchmark (default: all); the other arguments go to each binary.
# Environment:
#   IKA_BENCH_WAIT=seconds        how long to wait for an idle machine (default 120)
#   IKA_BENCH_BUILD_DIR=dir       an existing build directory to build and run in, instead of the
#                                 release preset's build/release
#   IKA_BENCH_BACKWARD_BEFORE=exe another bench_backward binary (e.g. built from the previous
#                                 implementation): run right before the current one, written to
#                                 bench/results/backward_before.json and compared in backward.md
# Takes a few minutes per benchmark. Run it on an otherwise idle machine: the 2-thread rows in
# particular are meaningless when another process holds a core (OpenMP barriers then wait for a
# descheduled thread).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
results="$root/bench/results"
mkdir -p "$results"
cd "$root"

which=all
case "${1:-}" in
  attention|backward|all) which="$1"; shift ;;
esac
targets=()
[[ "$which" != backward ]] && targets+=(bench_attention)
[[ "$which" != attention ]] && targets+=(bench_backward)

if [[ -n "${IKA_BENCH_BUILD_DIR:-}" ]]; then
  build="$(cd "$IKA_BENCH_BUILD_DIR" && pwd)"
  cmake --build "$build" --target "${targets[@]}"
else
  build="$root/build/release"
  cmake --preset release >/dev/null
  cmake --build --preset release --target "${targets[@]}"
fi

model="$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n1)"
cpus="$(lscpu | sed -n 's/^CPU(s):[[:space:]]*//p' | head -n1)"
cores_per_socket="$(lscpu | sed -n 's/^Core(s) per socket:[[:space:]]*//p' | head -n1)"
sockets="$(lscpu | sed -n 's/^Socket(s):[[:space:]]*//p' | head -n1)"
cores="$(( ${cores_per_socket:-0} * ${sockets:-1} ))"
machine="- machine: ${model:-unknown CPU}, ${cores} cores (${cpus:-?} logical CPUs); $(uname -sr); $(g++ --version | head -n1)"
echo "$machine"

# Idle share of all CPUs over one second, from /proc/stat.
idle_percent() {
  local a b
  read -r -a a < <(head -n1 /proc/stat)
  sleep 1
  read -r -a b < <(head -n1 /proc/stat)
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  echo $(( total > 0 ? 100 * idle / total : 100 ))
}
# Wait up to IKA_BENCH_WAIT seconds (default 120) for the machine to go idle; run anyway after.
waited=0 idle="$(idle_percent)"
while (( idle < 90 && waited < ${IKA_BENCH_WAIT:-120} )); do
  echo "machine busy (${idle}% idle), waiting..."
  sleep 4
  waited=$(( waited + 5 ))
  idle="$(idle_percent)"
done
busy_note=""
if (( idle < 90 )); then
  busy_note=$'\n'"- WARNING: the machine was busy when the run started (${idle}% idle); 2-thread rows are unreliable"
  echo "warning: running on a busy machine (${idle}% idle)"
fi
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg), ${idle}% idle"

if [[ "$which" != backward ]]; then
  "$build/bench/bench_attention" \
    --benchmark_out="$results/attention.json" --benchmark_out_format=json "$@"
  python3 "$root/bench/plot.py" "$results/attention.json" --out-dir "$results" --machine "$machine$busy_note"
fi
if [[ "$which" != attention ]]; then
  before=()
  if [[ -n "${IKA_BENCH_BACKWARD_BEFORE:-}" ]]; then
    "$IKA_BENCH_BACKWARD_BEFORE" --benchmark_out="$results/backward_before.json" --benchmark_out_format=json "$@"
    before=(--before "$results/backward_before.json")
  fi
  "$build/bench/bench_backward" \
    --benchmark_out="$results/backward.json" --benchmark_out_format=json "$@"
  command="bench/run.sh backward${*:+ $*}"
  [[ -n "${IKA_BENCH_BUILD_DIR:-}" ]] && command="IKA_BENCH_BUILD_DIR=$IKA_BENCH_BUILD_DIR $command"
  [[ -n "${IKA_BENCH_BACKWARD_BEFORE:-}" ]] && command="IKA_BENCH_BACKWARD_BEFORE=$IKA_BENCH_BACKWARD_BEFORE $command"
  python3 "$root/bench/plot.py" "$results/backward.json" --out-dir "$results" --machine "$machine$busy_note" \
    --command "$command" "${before[@]}"
fi

