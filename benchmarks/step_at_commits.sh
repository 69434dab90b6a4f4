#!/usr/bin/env bash
# The SplitMask step benchmark (bench_train_step.cpp) as each given commit had it, built from that
# commit's headers, then run round-robin so that every commit sees the same machine noise:
# the median over rounds of each commit's step time. For before/after tables of performance work.
#   benchmarks/step_at_commits.sh [-c ti4-28|s4-32] [-r rounds] commit...
# Builds with g++ and the Debian packages of scripts/setup.sh (oneDNN, OpenBLAS's OpenMP build;
# each commit's own GEMM choice); runs with OMP_WAIT_POLICY=PASSIVE and OMP_NUM_THREADS (default 2).
set -euo pipefail
config=ti4-28 rounds=3
while getopts "c:r:" opt; do
  case $opt in c) config=$OPTARG ;; r) rounds=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-c ti4-28|s4-32] [-r rounds] commit..." >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"; git -C "$root" worktree prune' EXIT
name() { printf '%s' "$1" | tr -c 'A-Za-z0-9._-' '_'; }  # a commit as a file name
for c in "$@"; do
  d="$work/$(name "$c")"
  git -C "$root" worktree add -q --detach "$d" "$c"
  echo "building $c ..." >&2
  g++ -std=c++17 -O3 -DNDEBUG -march=native -fopenmp -DSPLITMASK_USE_OPENBLAS=1 \
    -DSPLITMASK_HAS_OPENBLAS=1 -DSPLITMASK_HAS_ONEDNN=1 -I"$d/include" -isystem /usr/include/eigen3 \
    -isystem /usr/include/x86_64-linux-gnu/openblas-openmp \
    "$d/benchmarks/bench_train_step.cpp" -o "$d.step" -lbenchmark -ldnnl -lopenblas -lpthread
done
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
for r in $(seq "$rounds"); do
  for c in "$@"; do
    ms=$("$work/$(name "$c").step" --benchmark_filter="splitmask_step/$config/" --benchmark_min_time=3 \
      --benchmark_format=json 2>/dev/null |
      /usr/bin/python3 -c "import json,sys; print(json.load(sys.stdin)['benchmarks'][0]['real_time'])")
    echo "$c $ms"
  done
done | /usr/bin/python3 -c "
import sys, statistics
times = {}
for line in sys.stdin:
    c, ms = line.split(); times.setdefault(c, []).append(float(ms))
print(f'{\"commit\":<12} {\"median ms\":>10}   rounds ($config, {sys.argv[1]} threads)')
for c, t in times.items():
    print(f'{c:<12} {statistics.median(t):10.0f}   ' + ' '.join(f'{x:.0f}' for x in t))
" "$OMP_NUM_THREADS"
