#!/usr/bin/env bash
# Copies what the GPU build needs from this Debian machine into a git-ignored prefix, .deps/, for
# a GPU machine that has nvcc, CMake and ninja but none of Debian's -dev packages; gpu-check.sh
# points CMake at it (CMAKE_PREFIX_PATH). Run it here, then name .deps in the device call's carry.
#   scripts/device-deps.sh [PREFIX]      (default: .deps in the repository; DEPS_DIR works too)
# What it holds, and for what:
#   Eigen 3 (headers, CMake config)        the library (CPU path; the tokenizer)
#   doctest (headers, a relocatable config)        the tests, cuda_tests among them
#   Google Benchmark (headers, the shared library, a relocatable config)
#                                                  bench_cuda_step
#   nlohmann-json (headers, CMake config), zlib (headers, libz.a), stb (headers, libstb.a)
#                                                  found at configure time: the build of the tests
#                                                  requires splitmask::data; nothing the GPU check
#                                                  builds links them
# Not copied: CLI11 (the examples, off in the GPU build) and OpenBLAS (optional; the GPU build's
# CPU products fall back to Eigen's). The benchmark library is Debian 12's (GCC 12, glibc 2.36):
# it runs where libstdc++ is at least GCC 12's and glibc at least 2.32.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
deps="${1:-${DEPS_DIR:-$root/.deps}}"
case "$deps" in
  "" | / | /usr | /usr/* | "$root") echo "device-deps.sh: refusing to replace '$deps'" >&2; exit 1 ;;
esac
need() {  # need PATH PACKAGE: fails with the Debian package to install when PATH is missing
  [ -e "$1" ] || { echo "device-deps.sh: $1 is missing; on Debian: apt-get install $2" >&2; exit 1; }
}
multiarch="$(gcc -print-multiarch 2>/dev/null || true)"
libdir="/usr/lib/${multiarch:-x86_64-linux-gnu}"
need /usr/include/eigen3/Eigen/Core libeigen3-dev
need /usr/share/eigen3/cmake/Eigen3Config.cmake libeigen3-dev
need /usr/include/doctest/doctest.h doctest-dev
need /usr/include/benchmark/benchmark.h libbenchmark-dev
need "$libdir/libbenchmark.so" libbenchmark-dev
command -v objdump >/dev/null || { echo "device-deps.sh: needs objdump (Debian: binutils)" >&2; exit 1; }
need /usr/include/nlohmann/json.hpp nlohmann-json3-dev
need /usr/share/cmake/nlohmann_json/nlohmann_jsonConfig.cmake nlohmann-json3-dev
need /usr/include/zlib.h zlib1g-dev
need "$libdir/libz.a" zlib1g-dev
need /usr/include/stb/stb_image.h libstb-dev
need "$libdir/libstb.a" libstb-dev

rm -rf "$deps"
mkdir -p "$deps/include" "$deps/lib/cmake/doctest" "$deps/lib/cmake/benchmark" \
  "$deps/share/eigen3" "$deps/share/cmake"
deps="$(cd "$deps" && pwd)"

# Eigen: its targets file is relocatable.
cp -r /usr/include/eigen3 "$deps/include/"
cp -r /usr/share/eigen3/cmake "$deps/share/eigen3/"

# doctest: Debian's config hard-codes /usr: a relocatable one-target replacement.
cp -r /usr/include/doctest "$deps/include/"
cat >"$deps/lib/cmake/doctest/doctestConfig.cmake" <<'CFG'
if(NOT TARGET doctest::doctest)
  add_library(doctest::doctest INTERFACE IMPORTED)
  set_target_properties(doctest::doctest PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${CMAKE_CURRENT_LIST_DIR}/../../../include")
endif()
CFG

# Google Benchmark: the shared library as one plain file named by its soname (what a program
# linked to it asks for at run time; no symbolic links, which a copy of the tree may not keep),
# and a relocatable config (Debian's resolves to /usr when it sits under /usr).
cp -r /usr/include/benchmark "$deps/include/"
real="$(readlink -f "$libdir/libbenchmark.so")"
soname="$(objdump -p "$real" | awk '$1 == "SONAME" { print $2 }')"
soname="${soname:-$(basename "$real")}"
cp "$real" "$deps/lib/$soname"
cat >"$deps/lib/cmake/benchmark/benchmarkConfig.cmake" <<CFG
# Written by scripts/device-deps.sh: Debian's Google Benchmark ($(basename "$real")), relocatable.
if(NOT TARGET benchmark::benchmark)
  get_filename_component(_splitmask_deps "\${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
  add_library(benchmark::benchmark SHARED IMPORTED)
  set_target_properties(benchmark::benchmark PROPERTIES
    IMPORTED_LOCATION "\${_splitmask_deps}/lib/$soname"
    IMPORTED_SONAME "$soname"
    INTERFACE_INCLUDE_DIRECTORIES "\${_splitmask_deps}/include")
  unset(_splitmask_deps)
endif()
CFG

# nlohmann-json: its targets file finds its prefix three folders up, wherever it is.
cp -r /usr/include/nlohmann "$deps/include/"
cp -r /usr/share/cmake/nlohmann_json "$deps/share/cmake/"

# zlib and stb: headers and static libraries, for CMake's find_path / find_library.
cp /usr/include/zlib.h /usr/include/zconf.h "$deps/include/"
cp "$libdir/libz.a" "$libdir/libstb.a" "$deps/lib/"
cp -r /usr/include/stb "$deps/include/"

echo "wrote $deps ($(du -sh "$deps" | cut -f1))"
