#!/usr/bin/env bash
# Builds and runs the example pretrainer (the README's first command): SplitMask pre-training of
# the mini-28 ViT on Fashion-MNIST (Debian's dataset-fashion-mnist) for 300 steps, under a minute
# on 2 AVX-512 cores, writing runs/pretrain/{checkpoint.safetensors, metrics.jsonl, loss.svg}.
# Arguments go to the program (splitmask-pretrain --help lists them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"

build=${BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --parallel "$(nproc)" --target splitmask_pretrain
# The program chooses its GEMM and OpenMP's passive wait by itself (docs/performance.md).
"$build/examples/splitmask-pretrain" "$@"
