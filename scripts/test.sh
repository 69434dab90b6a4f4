#!/usr/bin/env bash
# Builds splitmask and runs every test (the README's test command).
#   BUILD_DIR   build folder (default: build)     BUILD_TYPE   CMake build type (default: Release)
#   CTEST_ARGS  extra ctest arguments (e.g. "-LE long" leaves out the minutes-long learning checks)
# Extra arguments go to CMake's configure step, e.g. -DSPLITMASK_WERROR=ON.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"

build=${BUILD_DIR:-$root/build}
jobs=$(nproc)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-Release}" "$@"
cmake --build "$build" --parallel "$jobs"
ctest --test-dir "$build" --output-on-failure --parallel "$jobs" ${CTEST_ARGS:-}
