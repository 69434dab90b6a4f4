#!/usr/bin/env bash
# The GPU check, run on a machine with an NVIDIA GPU: builds the CUDA suite for the card it finds,
# runs it, runs it again under compute-sanitizer (memcheck), and prints a short table last.
# Needs nvcc and CMake; Eigen's and doctest's headers from the system or from .deps/
# (scripts/device-deps.sh makes it). Logs go to $OUT (or build/gpu) when set.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build/gpu}"
logs="${OUT:-$build}"
mkdir -p "$build" "$logs"
arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)"
gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
export PATH="/usr/local/cuda/bin:$PATH"
status=()
step() {  # step NAME COMMAND...: runs, logs to $logs/NAME.log, records pass/fail and seconds
  local name="$1"; shift
  local t0=$SECONDS
  if "$@" >"$logs/$name.log" 2>&1; then status+=("$name|pass|$((SECONDS - t0))s");
  else status+=("$name|FAIL (rc $?)|$((SECONDS - t0))s"); tail -40 "$logs/$name.log"; fi
}
step configure cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$root/.deps" -DCMAKE_CUDA_ARCHITECTURES="${arch:-90}" \
  -DSPLITMASK_BUILD_BENCHMARKS=OFF -DSPLITMASK_BUILD_EXAMPLES=OFF -DSPLITMASK_WERROR=ON
step build cmake --build "$build" --target cuda_tests ${GPU_CHECK_TARGETS:-}
step cuda_tests "$build/tests/cuda_tests" --no-version
step memcheck compute-sanitizer --tool memcheck --leak-check full --error-exitcode 3 \
  "$build/tests/cuda_tests" --no-version
step racecheck compute-sanitizer --tool racecheck --error-exitcode 3 \
  "$build/tests/cuda_tests" --no-version
grep -h "test cases\|assertions" "$logs/cuda_tests.log" | head -2
echo "== GPU check on: $gpu (sm_$arch) =="
printf '%-12s %-14s %s\n' step result time
for s in "${status[@]}"; do IFS='|' read -r a b c <<<"$s"; printf '%-12s %-14s %s\n' "$a" "$b" "$c"; done
