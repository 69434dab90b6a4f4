// libFuzzer target of the IDX reader: arbitrary bytes, raw or gzip, through decode_idx. A
// file_error is the expected answer to bad input; any other exception or a sanitizer report is a bug.
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//     tests/fuzz/fuzz_idx.cpp -lz -o fuzz_idx && ./fuzz_idx tests/fuzz/corpus/idx
#include <cstddef>
#include <cstdint>

#include "splitmask/core/error.hpp"
#include "splitmask/data/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    // A 64 MiB cap keeps gzip bombs inside the fuzzer's memory limit.
    const splitmask::idx_array a =
        splitmask::decode_idx(data, size, "fuzz input", std::uint64_t{64} << 20);
    std::size_t count = 1;
    for (std::size_t d : a.dims) count *= d;
    if (count != a.values.size()) __builtin_trap();  // parse_idx's promise
  } catch (const splitmask::file_error&) {
  }
  return 0;
}
