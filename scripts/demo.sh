#!/usr/bin/env bash
# Set up, build (Release, -march=native) and run the main example: a small vision Transformer
# trained on Fashion-MNIST with IKAN-direct attention (10 epochs, 8-14 minutes on 2 cores).
# Extra arguments go to the example (./scripts/demo.sh --help lists them); outputs land in
# results/fashion_mnist/ (log.csv, summary.json, learning_curve.svg, attention_map.svg).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/setup.sh
cmake --preset release
cmake --build --preset release --target fashion_mnist
exec ./build/release/examples/fashion_mnist "$@"
