#!/usr/bin/env bash
# splitmask-pretrain under mpirun (ctest pretrain.mpi): 2 processes on this machine.
#  1. A run stopped after 4 of 8 steps and resumed with 2 processes, and with 1, ends as the
#     uninterrupted 2-process run (loss and gradient norm of the last step within 1e-6).
#  2. A rank killed mid-run makes mpirun exit non-zero within 30 s, and the last checkpoint
#     resumes.
#  3. Without --threads, a process that mpirun bound to fewer CPUs than its share says so.
#   tests/pretrain/mpi.sh PRETRAIN MPIRUN DATA WORK_DIR
set -euo pipefail
pretrain=$1 mpirun=$2 data=$3 work=$4
rm -rf "$work" && mkdir -p "$work"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi() { "$mpirun" --oversubscribe --mca btl self,tcp -np "$@"; }
run=(--preset nano-28 --data "$data" --batch 16 --vocabulary-images 300 --threads 1)

mpi 2 "$pretrain" "${run[@]}" --steps 8 --out "$work/whole" >/dev/null 2>&1
mpi 2 "$pretrain" "${run[@]}" --steps 8 --stop-after 4 --out "$work/two" >/dev/null 2>&1
cp -r "$work/two" "$work/one"
mpi 2 "$pretrain" --resume "$work/two/checkpoint.safetensors" >/dev/null 2>&1
"$pretrain" --resume "$work/one/checkpoint.safetensors" --threads 1 >/dev/null 2>&1
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
last = lambda d: json.loads(open(f"{work}/{d}/metrics.jsonl").read().splitlines()[-1])
whole = last("whole")
for d, name in (("two", "2 processes"), ("one", "1 process")):
    r = last(d)
    for key in ("total", "grad_norm"):
        diff = abs(r[key] - whole[key]) / abs(whole[key])
        print(f"resumed with {name}: step {r['step']} {key} {r[key]:.9f} "
              f"against {whole[key]:.9f} (relative {diff:.1e})")
        if r["step"] != whole["step"] or diff > 1e-6:
            sys.exit("FAIL: the resumed run differs from the uninterrupted one")
PY

# A rank killed mid-run (40 steps in, or later): mpirun must stop every rank, exit non-zero.
mpi 2 "$pretrain" "${run[@]}" --steps 100000 --save-every 10 --out "$work/fault" \
  >"$work/fault.log" 2>&1 &
launcher=$!
for _ in $(seq 600); do
  [ -f "$work/fault/metrics.jsonl" ] && [ "$(wc -l <"$work/fault/metrics.jsonl")" -ge 40 ] && break
  sleep 0.1
done
victim=$(pgrep -P "$launcher" -f splitmask-pretrain | tail -1)
[ -n "$victim" ] || { echo "FAIL: no rank found to kill"; kill "$launcher"; exit 1; }
kill -9 "$victim"
killed=$(date +%s)
status=0
for _ in $(seq 300); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$launcher" 2>/dev/null; then
  echo "FAIL: mpirun still runs 30 s after a rank was killed"; kill -9 "$launcher"; exit 1
fi
wait "$launcher" || status=$?
echo "a rank killed: mpirun exited with status $status after $(($(date +%s) - killed)) s"
[ "$status" -ne 0 ] || { echo "FAIL: mpirun exited 0 after a rank was killed"; exit 1; }
"$pretrain" --resume "$work/fault/checkpoint.safetensors" --stop-after 1 --threads 1 \
  >"$work/resume.log" 2>&1 || { cat "$work/resume.log"; echo "FAIL: the last checkpoint does not resume"; exit 1; }
grep "resuming from" "$work/resume.log"

# mpirun binds a lone process to one core: without --threads, the pretrainer says so (when that
# is fewer CPUs than the machine's) rather than leave the others idle unannounced.
bound=$(mpi 1 nproc)
mpi 1 "$pretrain" --preset nano-28 --data "$data" --batch 16 --vocabulary-images 300 \
  --steps 1 --out "$work/bound" >"$work/bound.log" 2>&1
if [ "$bound" -lt "$(nproc --all)" ]; then
  grep "note: this process may run on $bound of the machine's $(nproc --all) CPUs" "$work/bound.log" ||
    { cat "$work/bound.log"; echo "FAIL: no note about mpirun's binding"; exit 1; }
elif grep -q "note: this process may run on" "$work/bound.log"; then
  cat "$work/bound.log"; echo "FAIL: a note about a binding that leaves no CPU idle"; exit 1
fi
