#!/usr/bin/env bash
# The GPU check, run on a machine with an NVIDIA GPU, in one call of under about 8 minutes:
#   configure and build (cuda_tests and bench_cuda_step, for the card's compute capability),
#   the CUDA tests, again under compute-sanitizer's memcheck, bench_cuda_step (cuBLAS peaks and
#   the SplitMask step on the GPU, fp32, TF32 and bf16 products), PyTorch's step on the same ViT-B/16 config
#   (benchmarks/pytorch_step.py: fp32, bf16 autocast, bf16 autocast + torch.compile), and
#   racecheck last; then a table of the steps, and last the figures.
# Every step runs under `timeout`, its own cap or what is left of GPU_CHECK_BUDGET (seconds,
# default 480), and the others go on when it fails; a step with no time left is SKIPPED.
# Needs nvcc, CMake and ninja; Eigen, doctest, Google Benchmark (and, for the configuration of
# the tests, nlohmann-json, zlib and stb) from the system or from .deps/: scripts/device-deps.sh
# makes it here, and the device call carries it (carry: [".deps"]).
# What comes back in $OUT (at most 8 files): summary.txt (the table and figures printed last),
# bench_cuda_step.json (Google Benchmark's JSON), logs.tar.gz (every step's log). Without $OUT
# they go to build/gpu/out.
#   PYTHON=...              the interpreter with PyTorch and CUDA (default: the first of python3,
#                           python, /usr/bin/python3 that has both)
#   BENCH_MIN_TIME=1        bench_cuda_step's --benchmark_min_time (seconds)
#   GPU_CHECK_BUDGET=480    seconds for the whole check
#   GPU_CHECK_CMAKE_ARGS    more arguments for CMake's configuration (split at spaces)
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD_DIR:-$root/build/gpu}"
out="${OUT:-$build/out}"
logs="$build/logs"
budget="${GPU_CHECK_BUDGET:-480}"
mkdir -p "$build" "$logs" "$out"
rm -f "$logs"/*.log
export PATH="/usr/local/cuda/bin:$PATH"
start=$SECONDS
arch="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')"
gpu="$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)"
[ -n "$gpu" ] || gpu="no GPU found by nvidia-smi"
{
  echo "== nvidia-smi"; nvidia-smi 2>&1
  echo "== nvcc"; nvcc --version 2>&1
  echo "== c++"; c++ --version 2>&1 | head -1
  echo "== cmake"; cmake --version 2>&1 | head -1
  echo "== compute-sanitizer"; compute-sanitizer --version 2>&1 | head -2
} >"$logs/environment.log" 2>&1

status=()
step() {  # step NAME CAP COMMAND...: under timeout, logged to $logs/NAME.log; records the result
  local name="$1" cap="$2"
  shift 2
  local left=$((budget - (SECONDS - start)))
  local limit=$((cap < left ? cap : left))
  if ((limit < 10)); then
    status+=("$name|SKIPPED (no time left)|0s")
    return 1
  fi
  local t0=$SECONDS rc=0
  timeout --kill-after=10 "$limit" "$@" >"$logs/$name.log" 2>&1 || rc=$?
  local took="$((SECONDS - t0))s"
  case $rc in
    0) status+=("$name|pass|$took") ;;
    77) status+=("$name|SKIPPED (no GPU)|$took") ;;
    124 | 137) status+=("$name|TIMEOUT (${limit}s)|$took") ;;
    *)
      status+=("$name|FAIL (rc $rc)|$took")
      echo "---- $name failed (rc $rc); the end of $logs/$name.log:"
      tail -25 "$logs/$name.log"
      ;;
  esac
  return $rc
}
skip() { status+=("$1|SKIPPED ($2)|0s"); }

# ---- Build -------------------------------------------------------------------------------------
read -ra cmake_extra <<<"${GPU_CHECK_CMAKE_ARGS:-}"
configure=(cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
  -DCMAKE_PREFIX_PATH="$root/.deps" -DCMAKE_CUDA_ARCHITECTURES="${arch:-90}"
  -DSPLITMASK_BUILD_TESTS=ON -DSPLITMASK_BUILD_BENCHMARKS=ON -DSPLITMASK_BUILD_EXAMPLES=OFF
  "${cmake_extra[@]}")
tests_bin="$build/tests/cuda_tests"
bench_bin="$build/benchmarks/bench_cuda_step"
gemm_bin="$build/bench_cuda_gemm"
rm -f "$tests_bin" "$bench_bin" "$gemm_bin"  # what exists after the build was built by it
if step configure 120 "${configure[@]}" -DSPLITMASK_WERROR=ON; then
  # Both targets in one ninja run (-k 0: one failing does not stop the other).
  step build 360 cmake --build "$build" --target cuda_tests bench_cuda_step -- -k 0
  [ -x "$bench_bin" ] && status+=("  bench_cuda_step|built|")
  [ -x "$tests_bin" ] && status+=("  cuda_tests|built|")
  # A warning turned error (a newer host compiler) should not cost the figures: once more without
  # -Werror, for the benchmark alone.
  if [ ! -x "$bench_bin" ] && grep -Eq '\[-Werror|error #[0-9]+-D' "$logs/build.log"; then
    step configure_nowerror 60 "${configure[@]}" -DSPLITMASK_WERROR=OFF &&
      step build_bench_nowerror 240 cmake --build "$build" --target bench_cuda_step
  fi
fi
if [ ! -x "$bench_bin" ]; then
  # The GEMM peaks alone, which need nothing of the library but its CUDA checks.
  benchlink=(-lbenchmark)
  for lib in "$root"/.deps/lib/libbenchmark.so*; do  # named by its soname: nvcc wants lib*.so
    [ -f "$lib" ] || continue
    mkdir -p "$build/gemm_only_lib" && cp "$lib" "$build/gemm_only_lib/libbenchmark.so" &&
      benchlink=(-L"$build/gemm_only_lib" -lbenchmark -Xlinker "-rpath=$root/.deps/lib")
  done
  step build_gemm_only 120 nvcc -std=c++17 -O3 -arch="sm_${arch:-90}" -DSPLITMASK_BENCH_GEMM_ONLY \
    -I "$root/include" -isystem "$root/.deps/include" "$root/benchmarks/bench_cuda_step.cu" \
    -o "$gemm_bin" -lcublas "${benchlink[@]}" -lpthread
  [ -x "$gemm_bin" ] && bench_bin="$gemm_bin"
fi

# ---- The CUDA tests, and memcheck --------------------------------------------------------------
sanitizer="$(command -v compute-sanitizer || true)"
if [ -x "$tests_bin" ]; then
  step cuda_tests 120 "$tests_bin" --no-version
  if [ -n "$sanitizer" ]; then
    step memcheck 200 "$sanitizer" --tool memcheck --leak-check full --error-exitcode 3 \
      "$tests_bin" --no-version
  else
    skip memcheck "no compute-sanitizer"
  fi
else
  skip cuda_tests "not built"
fi

# ---- Our step and the cuBLAS peaks -------------------------------------------------------------
rm -f "$out/bench_cuda_step.json"
if [ -x "$bench_bin" ]; then
  step bench_cuda_step 240 "$bench_bin" --benchmark_min_time="${BENCH_MIN_TIME:-1}" \
    --benchmark_out="$out/bench_cuda_step.json" --benchmark_out_format=json
else
  skip bench_cuda_step "not built"
fi

# ---- PyTorch's step on the same config ---------------------------------------------------------
py=""
for candidate in "${PYTHON:-}" python3 python /usr/bin/python3; do
  if [ -z "$candidate" ] || ! command -v "$candidate" >/dev/null; then continue; fi
  if timeout 60 "$candidate" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' \
    >/dev/null 2>&1; then
    py="$candidate"
    break
  fi
done
torch_step() {  # torch_step NAME CAP ARGS...
  local name="$1" cap="$2"
  shift 2
  step "$name" "$cap" "$py" "$root/benchmarks/pytorch_step.py" --config b16-224 --device cuda \
    --warmup 2 --steps 5 --repetitions 3 "$@"
}
if [ -n "$py" ]; then
  torch_step torch_fp32 120 --amp none
  torch_step torch_bf16 120 --amp bf16
  torch_step torch_bf16_compile 300 --amp bf16 --compile --warmup 3
else
  for name in torch_fp32 torch_bf16 torch_bf16_compile; do skip "$name" "no PyTorch with CUDA"; done
fi

# ---- racecheck, last: the most expendable --------------------------------------------------------
if [ -x "$tests_bin" ] && [ -n "$sanitizer" ]; then
  step racecheck 120 "$sanitizer" --tool racecheck --error-exitcode 3 "$tests_bin" --no-version
else
  skip racecheck "no cuda_tests or compute-sanitizer"
fi

# ---- The table, then the figures -----------------------------------------------------------------
summary="$out/summary.txt"
{
  echo "== GPU check on: $gpu (sm_${arch:-?}), $((SECONDS - start))s of a ${budget}s budget =="
  [ -d "$root/.deps" ] || echo "(no .deps here: run scripts/device-deps.sh and carry .deps)"
  [ "$bench_bin" = "$gemm_bin" ] && echo "(bench_cuda_step did not build: its GEMM part alone ran; see build.log)"
  grep -h "test cases\|assertions" "$logs/cuda_tests.log" 2>/dev/null | head -2
  grep -h "ERROR SUMMARY\|LEAK SUMMARY\|RACECHECK SUMMARY" "$logs/memcheck.log" \
    "$logs/racecheck.log" 2>/dev/null | sed 's/^/  /'
  printf '%-24s %-24s %s\n' step result time
  for s in "${status[@]}"; do
    IFS='|' read -r a b c <<<"$s"
    printf '%-24s %-24s %s\n' "$a" "$b" "$c"
  done
  summary_py="${py:-$(command -v python3 || command -v /usr/bin/python3 || true)}"
  if [ -n "$summary_py" ]; then
    "$summary_py" - "$out/bench_cuda_step.json" "$logs" "$gpu" <<'PY'
import json, os, sys

bench_path, logs, gpu = sys.argv[1], sys.argv[2], sys.argv[3]
cases, peaks = {}, {}
try:
    with open(bench_path) as f:
        for b in json.load(f)["benchmarks"]:
            if b.get("error_occurred"):
                cases[b["name"].split("/manual_time")[0]] = {"error": b.get("error_message", "?")}
                continue
            name = b["name"].split("/manual_time")[0]  # e.g. splitmask_step/b16-224/fp32/64
            cases[name] = b
            if name.startswith("gemm/"):
                peaks[name.split("/")[1]] = b.get("TFLOP/s")
except (OSError, ValueError, KeyError) as e:
    print(f"(no bench_cuda_step figures: {e})")


def torch_run(name):
    try:
        with open(os.path.join(logs, name + ".log")) as f:
            lines = [line for line in f if line.startswith('{"framework"')]
        return json.loads(lines[-1]) if lines else None
    except OSError:
        return None


def fmt(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "-"


print()
print(f"== Figures: SplitMask step, ViT-B/16 224 px (D 768, depth 12, decoder 2 x 768), K 8192, "
      f"mask 1/2, B 64; card: {gpu} ==")
print("cuBLAS 8192^3 GEMM: " + ", ".join(f"{k} {fmt(peaks.get(k), '.0f')} TFLOP/s"
                                         for k in ("bf16", "tf32", "fp32")))
rows = []
for mode, label in (("fp32", "ours fp32"), ("tf32", "ours fp32+TF32"), ("bf16", "ours bf16 (mixed)")):
    c = cases.get(f"splitmask_step/b16-224/{mode}/64")
    if c and "error" not in c:
        rows.append((label, c.get("ms/step"), c.get("TFLOP/s"), c.get("GFLOP/step")))
    else:
        rows.append((label + (f" ({c['error'][:60]})" if c else " (not run)"), None, None, None))
gflop = next((r[3] for r in rows if r[3]), None)
for name, label in (("torch_fp32", "torch fp32 eager"), ("torch_bf16", "torch bf16 eager"),
                    ("torch_bf16_compile", "torch bf16 compile")):
    t = torch_run(name)
    if t:
        ms = t["seconds_per_step"] * 1e3
        g = gflop or t.get("matrix_gflop_per_step")
        rows.append((label, ms, g / ms if g else None, g))
    else:
        rows.append((label + " (no result)", None, None, None))
ours = {r[0]: r[1] for r in rows if r[0] in ("ours fp32", "ours fp32+TF32", "ours bf16 (mixed)")}


def cell(v, spec, width, suffix=""):
    return (format(v, spec) + suffix if isinstance(v, (int, float)) else "-").rjust(width)


def ratio(a, b):
    return a / b if a and b else None


print(f"{'run':<34} {'ms/step':>8} {'img/s':>7} {'TFLOP/s':>8} {'MFU bf16':>9} {'MFU tf32':>9} "
      f"{'/ours fp32':>10} {'/ours bf16':>10}")
for label, ms, tflops, _ in rows:
    print(f"{label:<34} {cell(ms, '.1f', 8)} {cell(ratio(64e3, ms), '.0f', 7)} {cell(tflops, '.1f', 8)} "
          f"{cell(ratio(100 * tflops, peaks.get('bf16')) if tflops else None, '.1f', 9, '%')} "
          f"{cell(ratio(100 * tflops, peaks.get('tf32')) if tflops else None, '.1f', 9, '%')} "
          f"{cell(ratio(ms, ours.get('ours fp32')), '.2f', 10, 'x')} "
          f"{cell(ratio(ms, ours.get('ours bf16 (mixed)')), '.2f', 10, 'x')}")
small = [cases.get(f"splitmask_step/ti4-28/{m}/64") for m in ("fp32", "tf32", "bf16")]
if any(small):
    print("sanity, ti4-28 (28x28x1, D 192, K 512) B 64: " + ", ".join(
        f"ours {m} {fmt(c.get('ms/step'), '.2f')} ms (loss {fmt(c.get('loss'), '.3f')})"
        if c and "error" not in c else f"ours {m}: {c['error'][:60] if c else 'not run'}"
        for m, c in zip(("fp32", "tf32", "bf16"), small)))
for mode in ("fp32", "tf32", "bf16"):
    c = cases.get(f"splitmask_step/b16-224/{mode}/64")
    if c and "error" not in c:
        print(f"ours b16-224 {mode}: loss {fmt(c.get('loss'), '.3f')}, device memory "
              f"{fmt(c.get('device_GiB'), '.1f')} GiB, host clock {fmt(c.get('wall_ms/step'), '.1f')} ms/step")
print("TFLOP/s: matrix FLOPs of the step (the library's step_flops, "
      f"{fmt(gflop, '.0f')} GFLOP) per second; MFU: that over the card's cuBLAS rate above; "
      "/ours: that run's ms over ours (above 1: ours is faster).")
log = os.path.join(logs, "torch_bf16_compile.log")
if os.path.exists(log) and "Python.h" in open(log, errors="replace").read():
    print("torch.compile failed for want of Python.h (Triton builds a C launcher): see the log.")
PY
  fi
} >"$summary" 2>&1
tar -czf "$out/logs.tar.gz" -C "$build" logs 2>/dev/null
cat "$summary"
