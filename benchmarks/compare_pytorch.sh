#!/usr/bin/env bash
# One SplitMask training step, this library against PyTorch (Debian's python3-torch), on the same
# config, batch, threads and machine, back to back: the median of 3 repetitions each, and their
# ratio. PyTorch runs twice: with OpenBLAS as it detects this CPU, and at its best, with
# OPENBLAS_CORETYPE set to the CPU's real family (SkylakeX with AVX-512, Zen on AMD, else
# Haswell), which is what it needs on CPU models Debian's OpenBLAS 0.3.21 does not know; the
# ratio is against the faster of the two. Ours runs with the GEMM it chooses at run time (fp32)
# and, where the CPU has bf16, with bf16 products. Everything runs with OMP_WAIT_POLICY=PASSIVE
# (PyTorch is twice as slow on 2 cores without it).
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
if grep -q -w avx512f /proc/cpuinfo; then best_core=SkylakeX
elif grep -q AuthenticAMD /proc/cpuinfo; then best_core=Zen
else best_core=Haswell; fi

# Our step: the median milliseconds of a benchmark ("" where it did not run), and its peak RSS.
ours() {
  /usr/bin/time -f '%M' -o /tmp/splitmask_bench_rss.$$ "$build/benchmarks/bench_train_step" \
    --benchmark_filter="^$1/$2/" --benchmark_repetitions=3 --benchmark_min_time=2 \
    --benchmark_format=json 2>/dev/null
}

printf '%-8s %5s %3s | %-38s %9s %9s | %-22s %9s | %-22s %9s | %7s %7s | %8s %8s\n' config batch thr \
  "ours: GEMM" "fp32 ms" "bf16 ms" "torch as detected" "ms" "torch at its best" "ms" \
  "fp32 x" "bf16 x" "ours MiB" "torch MiB"
for config in "${configs[@]}"; do
  fp32=$(ours splitmask_step "$config"); fp32_rss=$(cat /tmp/splitmask_bench_rss.$$)
  bf16=$(ours splitmask_step_bf16 "$config"); rm -f /tmp/splitmask_bench_rss.$$
  detected=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 \
    "$root/benchmarks/pytorch_step.py" --config "$config" --threads "$threads")
  best=$(env -u OPENBLAS_L2_SIZE OPENBLAS_CORETYPE=$best_core /usr/bin/python3 \
    "$root/benchmarks/pytorch_step.py" --config "$config" --threads "$threads")
  /usr/bin/python3 - "$fp32" "$bf16" "$detected" "$best" "$fp32_rss" "$threads" <<'PY'
import json, sys
fp32, bf16, detected, best = (json.loads(a) if a.strip() else None for a in sys.argv[1:5])
rss, threads = int(sys.argv[5]), sys.argv[6]
def median_ms(run):
    if run is None or not run.get("benchmarks"):
        return None
    return next(b for b in run["benchmarks"] if b.get("aggregate_name") == "median")["real_time"]
ours_ms, bf16_ms = median_ms(fp32), median_ms(bf16)
gemm = fp32["context"].get("cpu_gemm", "?")
t_det, t_best = detected["seconds_per_step"] * 1e3, best["seconds_per_step"] * 1e3
torch_ms = min(t_det, t_best)
torch_rss = detected["max_rss_mib"] if t_det <= t_best else best["max_rss_mib"]
fmt = lambda v, f: "-" if v is None else format(v, f)
print(f'{detected["config"]:<8} {detected["batch"]:5d} {threads:>3} | {gemm:<38} '
      f'{ours_ms:9.0f} {fmt(bf16_ms, "9.0f"):>9} | {detected["blas"]:<22} {t_det:9.0f} | '
      f'{best["blas"]:<22} {t_best:9.0f} | {torch_ms / ours_ms:6.2f}x '
      f'{fmt(bf16_ms and torch_ms / bf16_ms, "6.2f") + "x":>7} | {rss / 1024:8.0f} {torch_rss:8.0f}')
PY
done
echo "x: PyTorch's faster median time over ours (above 1: we are faster); MiB: peak resident memory"
