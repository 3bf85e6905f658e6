#!/usr/bin/env bash
# Full local/CI check: install deps, then for each preset configure, build and
# run ctest. Default presets: release (tests+examples+bench) and asan
# (ASan+UBSan tests; the 8-D spectral-mixture GP fit, 4 minutes under ASan's -O1 and a few
# seconds in release, runs in release only: its code paths are in the other GP tests).
#
# Environment knobs:
#   IKA_PRESETS="release asan"   presets to run, in order
#   IKA_JOBS=<n>                 parallel build jobs (default: nproc)
#   IKA_SKIP_SETUP=1             do not run scripts/setup.sh
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

if [[ $failed -eq 0 ]]; then
  for p in "${PRESETS[@]}"; do
    stage "${p}: configure" cmake --preset "$p" || continue
    stage "${p}: build"     cmake --build --preset "$p" --parallel "$JOBS" || continue
    stage "${p}: ctest"     ctest --preset "$p" || true
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
