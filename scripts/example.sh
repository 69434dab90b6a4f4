#!/usr/bin/env bash
# Builds and runs the example program (the README's first command). Until the pretrainer
# exists, this is custom_vit: two ViT sizes declared in one program, run on random images.
# Arguments go to the program.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"

build=${BUILD_DIR:-$root/build}
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" --parallel "$(nproc)" --target custom_vit
"$build/examples/custom_vit" "$@"
