#!/usr/bin/env bash
# One SplitMask training step, this library against PyTorch (Debian's python3-torch), on the same
# config, batch, threads and machine, back to back: the median of 3 repetitions each, and their
# ratio. Both run with OMP_WAIT_POLICY=PASSIVE (PyTorch is twice as slow on 2 cores without it).
#   benchmarks/compare_pytorch.sh [ti4-28|s4-32|all] [threads]     (default: all, 2)
#   BUILD_DIR: the build folder holding benchmarks/bench_train_step (default: build)
set -euo pipefail
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (Debian: apt-get install time)" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build}
which=${1:-all}
threads=${2:-2}
configs=(ti4-28 s4-32)
[ "$which" = all ] || configs=("$which")
cmake --build "$build" --target bench_train_step >/dev/null
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$threads

printf '%-8s %5s %7s %12s %12s %7s %10s %10s\n' config batch threads "ours (ms)" "torch (ms)" ratio \
  "ours MiB" "torch MiB"
for config in "${configs[@]}"; do
  ours=$(/usr/bin/time -f '%M' -o /tmp/splitmask_bench_rss.$$ "$build/benchmarks/bench_train_step" \
    --benchmark_filter="splitmask_step/$config/" --benchmark_repetitions=3 \
    --benchmark_min_time=2 --benchmark_format=json 2>/dev/null)
  ours_rss=$(cat /tmp/splitmask_bench_rss.$$)
  rm -f /tmp/splitmask_bench_rss.$$
  torch=$(/usr/bin/python3 "$root/benchmarks/pytorch_step.py" --config "$config" --threads "$threads")
  /usr/bin/python3 - "$ours" "$torch" "$ours_rss" "$threads" <<'PY'
import json, sys
ours, torch, rss, threads = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
median = next(b for b in ours["benchmarks"] if b.get("aggregate_name") == "median")
ours_ms = median["real_time"]  # milliseconds (the benchmark's unit)
torch_ms = torch["seconds_per_step"] * 1e3
print(f'{torch["config"]:<8} {torch["batch"]:5d} {threads:>7} {ours_ms:12.0f} {torch_ms:12.0f} '
      f'{torch_ms / ours_ms:6.2f}x {rss / 1024:10.0f} {torch["max_rss_mib"]:10.0f}')
PY
done
echo "ratio: PyTorch's median time over ours (above 1: we are faster); MiB: peak resident memory"
