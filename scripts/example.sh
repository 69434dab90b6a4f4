#!/usr/bin/env bash
# Builds and runs the example pretrainer (the README's first command): SplitMask pre-training of
# the mini-28 ViT on Fashion-MNIST (Debian's dataset-fashion-mnist) for 300 steps, a few minutes
# on 2 cores, writing runs/pretrain/{checkpoint.safetensors, metrics.jsonl, loss.svg}.
# Arguments go to the program (splitmask-pretrain --help lists them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"

build=${BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --parallel "$(nproc)" --target splitmask_pretrain
# OpenMP threads that spin while waiting fight the data loader's thread for 2 cores: passive
# waiting measured 1.7x faster here (docs/performance.md).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
"$build/examples/splitmask-pretrain" "$@"
