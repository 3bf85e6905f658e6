#!/usr/bin/env bash
# Build and run the attention demo (Release, -march=native).
# Extra arguments are passed to the demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/setup.sh
cmake --preset release
cmake --build --preset release --target attention_demo
exec ./build/release/examples/attention_demo "$@"
