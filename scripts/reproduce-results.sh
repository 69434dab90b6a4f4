#!/usr/bin/env bash
# Reproduces docs/results.md: pre-trains a ViT on Fashion-MNIST's training images with SplitMask,
# BEiT and MAE, then measures k-NN, linear-probe and fine-tuning accuracy with 1%, 10% and 100%
# of the labels against raw pixels, a random encoder and training from scratch, and prints the
# tables. Every run writes its JSON under the output folder and is skipped when that JSON is
# already there (an interrupted pre-training resumes), so the script can be re-run after a crash.
#
#   scripts/reproduce-results.sh            # the full runs of docs/results.md (about 2 h, 2 cores)
#   scripts/reproduce-results.sh --short    # nano-28, a few steps, a subset: the CI check (minutes)
#   --fresh                                 # remove the output folder first: everything runs again
#
# Environment: BUILD_DIR (default build), OUT (default runs/results, or runs/results-short),
# DATA (default Debian's Fashion-MNIST), THREADS (default all cores), SKIP_BUILD=1 (use the
# programs already built in BUILD_DIR).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
mode=full
fresh=0
for arg in "$@"; do
  case $arg in
    --short) mode=short ;;
    --fresh) fresh=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "reproduce-results.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

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
