#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ika's fused softmax and torch's SDPA on one CPU, interleaved in rounds, for machines whose timing
# drifts (shared vCPUs): each round runs every bench_attention binary, then torch_compare.py, so a
# slow period hits both; bench/rounds_report.py takes the median over rounds.
#
#   bench/cpu_rounds.sh BIN_DIR OUT_DIR [ROUNDS] [THREAD COUNTS, default "1 2"]
#
# BIN_DIR holds bench_attention binaries named bench_attention_<variant> (variant "main" is the
# repository's code; others may be builds with changed constants, for tuning) and optionally lib/
# with the shared libraries they need (libbenchmark, libopenblas, ...). "main" runs fused_softmax
# and fused_softmax_causal, the other variants fused_softmax, at L = 1024 and 4096 with each thread
# count; torch_compare.py runs torch_sdpa and torch_sdpa_causal at the same shapes (needs
# PyTorch; its --check in the first round). Writes OUT_DIR/r<round>_<variant>.json,
# OUT_DIR/r<round>_torch.json and OUT_DIR/machine.txt.
set -uo pipefail
bin_dir="${1:?BIN_DIR}" out="${2:?OUT_DIR}" rounds="${3:-3}" threads="${4:-1 2}"
read -ra thread_list <<<"$threads"
export IKA_BENCH_THREADS="$(IFS=,; echo "${thread_list[*]}")"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export LD_LIBRARY_PATH="$bin_dir/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$out"
{ lscpu; echo; nproc; python3 -c "import torch; print(torch.__version__, torch.backends.cpu.get_cpu_capability(), torch.__config__.parallel_info())"; } >"$out/machine.txt" 2>&1
variants=()
for b in "$bin_dir"/bench_attention_*; do variants+=("${b##*/bench_attention_}"); done
for ((round = 1; round <= rounds; ++round)); do
  echo "=== round $round $(date +%T)"
  for v in "${variants[@]}"; do
    filter='fused_softmax/L:(1024|4096)/'
    [[ $v == main ]] && filter='fused_softmax(_causal)?/L:(1024|4096)/|fma_peak'
    timeout 200 "$bin_dir/bench_attention_$v" --benchmark_filter="$filter" \
      --benchmark_out="$out/r${round}_$v.json" --benchmark_out_format=json 2>&1 | grep -E "_median" | sed "s/^/$v /"
  done
  check=(); [[ $round == 1 ]] && check=(--check)
  PYTHONUNBUFFERED=1 timeout 200 python3 bench/torch_compare.py "${check[@]}" --threads "${thread_list[@]}" --lengths 1024 4096 \
    --repeats 5 --min-time 0.3 --methods torch_sdpa torch_sdpa_causal --json "$out/r${round}_torch.json" 2>&1 |
    grep -E "torch_sdpa|check"
done
