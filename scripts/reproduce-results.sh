#!/usr/bin/env bash
# Reproduces docs/results.md. By default, the current protocol (scripts/protocol.py): fine-tuning
# hyperparameters chosen on held-out training images, then 3 seeds on the test split, for the
# experiments compare, ablation, tokenizers, samples and schedule; then its tables and charts
# (into docs/results/protocol/). The tokenizer experiment's target measurements need Debian's
# python3-torch and python3-numpy (the short mode leaves them out without). Finished runs are
# skipped, so it continues where it stopped; the whole list takes days of 2 cores, and each
# experiment can be run on its own (--only).
#
#   scripts/reproduce-results.sh                    # everything not done yet, then the tables
#   scripts/reproduce-results.sh --only samples     # one experiment (compare, ablation,
#                                                   #   tokenizers, samples, schedule; several
#                                                   #   may follow --only)
#   scripts/reproduce-results.sh --jobs 2           # 2 runs at once, the cores shared (on 2
#                                                   #   cores about a third more work an hour)
#   scripts/reproduce-results.sh --short            # nano-28, a few steps: the CI check (a minute)
#   scripts/reproduce-results.sh --first-protocol [--short] [--fresh]
#       # the first protocol's runs, kept as history in docs/results.md (about 2 h): SplitMask,
#       # BEiT and MAE pre-trained 5 epochs, k-NN, linear probe and 1000-step fine-tuning at 1%,
#       # 10% and 100% of the labels against raw pixels, a random encoder and from scratch
#
# Environment: BUILD_DIR (default build), DATA (default Debian's Fashion-MNIST), THREADS
# (each run's; default all cores, divided among --jobs), SKIP_BUILD=1 (use the programs already
# built in BUILD_DIR); for the first protocol OUT (default runs/results, or runs/results-short);
# for the current one WORK_DIR (scripts/protocol.py --help).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=full
fresh=0
first=0
jobs=1
only=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --short) mode=short ;;
    --fresh) fresh=1 ;;
    --first-protocol) first=1 ;;
    --only)
      shift
      while [[ $# -gt 0 && $1 != --* ]]; do only+=("$1"); shift; done
      continue ;;
    --jobs) shift; jobs=${1:?reproduce-results.sh: --jobs needs a number} ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "reproduce-results.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ $first == 1 && $jobs != 1 ]]; then
  echo "reproduce-results.sh: --jobs is for the current protocol, not --first-protocol" >&2
  exit 2
fi
data=${DATA:-/usr/share/datasets/fashion-mnist}
threads=${THREADS:-0}
build=${BUILD_DIR:-$root/build}
python=/usr/bin/python3
if [[ ! -x $python ]]; then
  echo "reproduce-results.sh: needs $python for the tables (apt-get install python3)" >&2
  exit 1
fi

if [[ $mode == full ]]; then
  out=${OUT:-$root/runs/results}
  preset=mini-28
  pretrain=(--epochs 5)
  subset=()
  finetune=(--steps 1000)
  fractions=(0.01 0.1 1)
else
  out=${OUT:-$root/runs/results-short}
  preset=nano-28
  pretrain=(--steps 30 --batch 32 --vocabulary-images 500 --kmeans-iterations 2)
  subset=(--train-limit 3000 --test-limit 500)
  finetune=(--steps 20 --batch 32)
  fractions=(0.1 1)
fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  "$root/scripts/setup.sh"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --parallel "$(nproc)" --target splitmask_pretrain splitmask_eval
fi
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

if [[ $first == 0 ]]; then
  protocol=("$python" "$root/scripts/protocol.py")
  flags=()
  [[ $mode == short ]] && flags+=(--short)
  [[ ${#only[@]} -gt 0 ]] && run_only=(--only "${only[@]}") || run_only=()
  charts=$root/docs/results/protocol
  [[ $mode == short ]] && charts=${WORK_DIR:-$root/runs/protocol-short}/charts
  BUILD_DIR=$build THREADS=$threads DATA=$data "${protocol[@]}" run "${flags[@]}" "${run_only[@]}" \
    --jobs "$jobs"
  "${protocol[@]}" table "${flags[@]}" --svg "$charts"
  exit 0
fi
[[ $fresh == 1 ]] && rm -rf "$out"
mkdir -p "$out"
common=(--data "$data" --threads "$threads")

# Pre-training, resumed when a checkpoint is there (a finished run resumes to nothing).
for objective in splitmask beit mae; do
  run=$out/pretrain-$objective
  args=(--preset "$preset" --objective "$objective" "${pretrain[@]}" "${common[@]}" --seed 0
    --out "$run")
  [[ -f $run/checkpoint.safetensors ]] && args+=(--resume "$run/checkpoint.safetensors")
  echo "== pre-training: $objective" >&2
  "$build/examples/splitmask-pretrain" "${args[@]}" 2>&1 | tee -a "$out/pretrain-$objective.log"
done

# One evaluation, skipped when its JSON exists: name, seed, then splitmask-eval's arguments.
evaluate() {
  local name=$1 seed=$2
  shift 2
  if [[ -f $out/$name.json ]]; then
    echo "== $name: done before ($out/$name.json)" >&2
    return
  fi
  echo "== $name" >&2
  "$build/examples/splitmask-eval" "$@" "${common[@]}" --seed "$seed" "${subset[@]}" \
    --json "$out/$name.json" 2>&1 | tee "$out/$name.log"
}

for fraction in "${fractions[@]}"; do
  evaluate "pixels-$fraction" 0 --pixels --mode all --label-fraction "$fraction"
  evaluate "random-$fraction" 0 --preset "$preset" --mode all --label-fraction "$fraction" \
    "${finetune[@]}"
  for objective in splitmask beit mae; do
    evaluate "$objective-$fraction" 0 --checkpoint "$out/pretrain-$objective/checkpoint.safetensors" \
      --mode all --label-fraction "$fraction" "${finetune[@]}"
  done
done

# The smallest label budget again with other seeds (another label draw, head, order and crops;
# from scratch also another encoder), to see how far fine-tuning moves with the seed alone.
fraction=${fractions[0]}
for seed in 1 2; do
  evaluate "random-$fraction-seed$seed" "$seed" --preset "$preset" --mode finetune \
    --label-fraction "$fraction" "${finetune[@]}"
  for objective in splitmask beit mae; do
    evaluate "$objective-$fraction-seed$seed" "$seed" --mode finetune \
      --label-fraction "$fraction" --checkpoint "$out/pretrain-$objective/checkpoint.safetensors" \
      "${finetune[@]}"
  done
done

"$python" "$root/scripts/results_table.py" "$out" --svg "$out"
