#!/usr/bin/env bash
# Installs the Debian packages that splitmask's build, tests, benchmarks and examples need.
# Idempotent and quick when everything is present; needs root only when something is missing.
set -euo pipefail

packages=(
  g++ cmake ninja-build          # the build
  libeigen3-dev                  # CPU matrix products
  doctest-dev                    # tests
  libbenchmark-dev               # benchmarks
  libdnnl-dev                    # CPU matrix products: oneDNN, JIT for the CPU it finds (fp32, bf16)
  libopenblas-openmp-dev         # CPU matrix products where oneDNN is not chosen (OpenMP build)
  libstb-dev                     # image decoding and resizing (image folders)
  zlib1g-dev                     # gzipped IDX files (MNIST, Fashion-MNIST)
  nlohmann-json3-dev             # safetensors checkpoint headers, metrics
  libcli11-dev                   # command lines of the examples
  libopenmpi-dev openmpi-bin     # data-parallel training between processes (splitmask::mpi)
  dataset-fashion-mnist          # the example pretrainer's default data
)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "splitmask setup: dpkg-query not found; this script expects Debian 12. Install the" \
       "equivalents of: ${packages[*]}" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "splitmask setup: all ${#packages[@]} Debian packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "splitmask setup: missing Debian packages: ${missing[*]}" >&2
  echo "Install them as root, then run this again:" >&2
  echo "  sudo $(cd "$(dirname "$0")" && pwd)/setup.sh" >&2
  exit 1
fi

echo "splitmask setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "splitmask setup: done"
