#!/usr/bin/env bash
# Compile times of the translation units that instantiate the model, at each given commit, on
# this machine: each unit alone (one compiler, nothing else running), then the pretrainer's host
# units together on 2 parallel jobs (wall time, as `cmake --build -j2` runs them). The flags are
# the Release build's: -O3 -DNDEBUG -march=native -fopenmp, oneDNN and OpenBLAS on.
#   scripts/compile-times.sh commit...
# Also times one user's unit: a ViT-Ti/4 SplitMask trainer's step (one size, one objective),
# written for each commit's API.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"; git -C "$root" worktree prune' EXIT
flags=(-std=c++17 -O3 -DNDEBUG -march=native -fopenmp -DSPLITMASK_HAS_ONEDNN=1
  -DSPLITMASK_HAS_OPENBLAS=1 -isystem /usr/include/eigen3
  -isystem /usr/include/x86_64-linux-gnu/openblas-openmp -Wno-init-self)
seconds() { local s; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || { echo "FAILED: $*" >&2; exit 1; }
  echo "$(date +%s.%N) - $s" | bc; }
for c in "$@"; do
  d=$work/$(printf '%s' "$c" | tr -c 'A-Za-z0-9._-' '_')
  git -C "$root" worktree add -q --detach "$d" "$c"
  inc=(-I"$d/include")
  if grep -q "class trainer" "$d/include/splitmask/train/trainer.hpp" 2>/dev/null; then
    printf '%s\n' '#include <splitmask/splitmask.hpp>' 'using namespace splitmask;' \
      'using t = trainer<splitmask_objective<512>, presets::vit_ti4_28>;' \
      'template splitmask::step_losses t::step(const tensor<float, t::image_extents>&);' > "$d/one.cpp"
  else
    printf '%s\n' '#include <splitmask/splitmask.hpp>' 'using namespace splitmask;' \
      'using t = splitmask_trainer<presets::vit_ti4_28>;' \
      'template splitmask::step_losses t::step(const tensor<float, t::image_extents>&);' > "$d/one.cpp"
  fi
  # The pretrainer's host units at that commit (once.cpp, the shared kernels, is newer).
  units=()
  for unit in examples/pretrain/instances_28.cpp examples/pretrain/instances_224.cpp \
      examples/pretrain/instances_32.cpp examples/pretrain/main.cpp examples/pretrain/once.cpp; do
    [[ -f $d/$unit ]] && units+=("$unit")
  done
  for unit in one.cpp examples/custom_vit.cpp "${units[@]}"; do
    echo "$c $unit $(seconds g++ "${flags[@]}" "${inc[@]}" -c "$d/$unit" -o "$work/unit.o") s"
  done
  start=$(date +%s.%N)
  printf '%s\n' "${units[@]}" | xargs -P 2 -I{} sh -c \
    "g++ ${flags[*]} -I$d/include -c $d/{} -o $work/\$(basename {}).o"
  echo "$c pretrainer host units on 2 jobs: $(echo "$(date +%s.%N) - $start" | bc) s wall"
done
