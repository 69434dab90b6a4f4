#!/usr/bin/env bash
# Copies the headers the CUDA build needs (Eigen, doctest) from this Debian machine into a
# git-ignored prefix, .deps/, for a GPU machine that has nvcc and CMake but none of Debian's -dev
# packages. gpu-check.sh points CMake at it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="$root/.deps"
rm -rf "$deps"
mkdir -p "$deps/include" "$deps/share/eigen3" "$deps/lib/cmake/doctest"
cp -r /usr/include/eigen3 "$deps/include/"
cp -r /usr/share/eigen3/cmake "$deps/share/eigen3/"     # its targets file is relocatable
cp -r /usr/include/doctest "$deps/include/"
# Debian's doctest config hard-codes /usr: a relocatable one-target replacement.
cat >"$deps/lib/cmake/doctest/doctestConfig.cmake" <<'CFG'
if(NOT TARGET doctest::doctest)
  add_library(doctest::doctest INTERFACE IMPORTED)
  set_target_properties(doctest::doctest PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${CMAKE_CURRENT_LIST_DIR}/../../../include")
endif()
CFG
echo "wrote $deps ($(du -sh "$deps" | cut -f1))"
