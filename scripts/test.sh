#!/usr/bin/env bash
# Full local/CI check: install deps, then for each preset configure, build and
# run ctest (IKA_JOBS tests at a time). Default presets: release (tests+examples+bench) and asan
# (ASan+UBSan tests; what only compiles - the header check and the compile-fail cases - and the two
# spectral-mixture GP fits, minutes under ASan and seconds in release, run in release only:
# the GP code paths are in the other GP tests; docs/decisions.md, "Test builds").
#
# Environment knobs:
#   IKA_PRESETS="release asan"   presets to run, in order
#   IKA_JOBS=<n>                 parallel build jobs (default: nproc)
#   IKA_SKIP_SETUP=1             do not run scripts/setup.sh
#   IKA_CUDA_TESTS=0             do not compile and run the CUDA tests even where nvcc exists
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PRESETS=(${IKA_PRESETS:-release asan})
JOBS="${IKA_JOBS:-$(nproc 2>/dev/null || echo 2)}"

summary=()
failed=0
t_all=$SECONDS

stage() { # stage <label> <command...>
  local label="$1"; shift
  local t0=$SECONDS
  echo
  echo "==> [$label] $*"
  if "$@"; then
    summary+=("PASS  ${label} ($((SECONDS - t0))s)")
    return 0
  else
    local rc=$?
    summary+=("FAIL  ${label} ($((SECONDS - t0))s, exit ${rc})")
    failed=1
    return 1
  fi
}

if [[ "${IKA_SKIP_SETUP:-0}" != "1" ]]; then
  stage "setup" ./scripts/setup.sh || true
fi

# CUDA first: wherever nvcc is installed, compile every CUDA translation unit (tests/cuda/, sm_90)
# and run them; on a machine without a GPU each reports "skipped: no CUDA device" (CTest:
# skipped), which the summary shows as SKIP. It runs before the CPU presets so that the log
# closes on the CPU test runs, which always execute.
setup_failed=$failed
nvcc_path="$(command -v nvcc || true)"
if [[ -z "$nvcc_path" && -x /usr/local/cuda/bin/nvcc ]]; then nvcc_path=/usr/local/cuda/bin/nvcc; fi
if [[ $setup_failed -eq 0 && -n "$nvcc_path" && "${IKA_CUDA_TESTS:-1}" != "0" ]]; then
  cuda_log="$(mktemp)"
  if stage "cuda: configure" cmake --preset cuda -DCMAKE_CUDA_COMPILER="$nvcc_path" &&
     stage "cuda: build" cmake --build --preset cuda --parallel "$JOBS" &&
     stage "cuda: ctest" bash -o pipefail -c 'ctest --preset cuda | tee "$0"' "$cuda_log"; then
    skipped=$(grep -c '\*\*\*Skipped' "$cuda_log" || true)
    if [[ "$skipped" -gt 0 ]]; then
      summary+=("SKIP  cuda: ${skipped} CUDA test(s) compiled but not run (no CUDA device)")
    fi
  fi
  rm -f "$cuda_log"
elif [[ -z "$nvcc_path" ]]; then
  summary+=("SKIP  cuda (nvcc not found: CUDA translation units not compiled)")
fi

if [[ $setup_failed -eq 0 ]]; then
  for p in "${PRESETS[@]}"; do
    stage "${p}: configure" cmake --preset "$p" || continue
    stage "${p}: build"     cmake --build --preset "$p" --parallel "$JOBS" || continue
    stage "${p}: ctest"     ctest --preset "$p" --parallel "$JOBS" || true
  done
fi

echo
echo "================ ika test summary ================"
for line in "${summary[@]}"; do
  echo "  $line"
done
echo "  total: $((SECONDS - t_all))s"
if [[ $failed -ne 0 ]]; then
  echo "RESULT: FAILED"
  exit 1
fi
echo "RESULT: OK"
