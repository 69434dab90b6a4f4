// libFuzzer target for safetensors_reader: any bytes either fail with file_error or parse into a
// file whose every tensor reads with its own dtype, without reading out of bounds (ASan, UBSan).
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude \
//     tests/fuzz/fuzz_safetensors.cpp -o fuzz_safetensors
//   ./fuzz_safetensors -dict=tests/fuzz/safetensors.dict tests/fuzz/corpus/safetensors
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "splitmask/io/safetensors.hpp"

namespace {

template <class T>
void read_tensor(const splitmask::safetensors_reader& reader, const splitmask::tensor_entry& e) {
  const std::vector<T> values = reader.read<T>(e.name);
  if (values.size() * sizeof(T) != e.end - e.begin) __builtin_trap();
  std::vector<T> again(values.size());
  reader.read<T>(e.name, again.data(), e.shape);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  splitmask::safetensors_limits limits;
  limits.max_header_bytes = 1 << 20;
  try {
    const splitmask::safetensors_reader reader = splitmask::safetensors_reader::parse(
        std::vector<std::uint8_t>(data, data + size), "fuzz", limits);
    for (const std::string& name : reader.names()) {
      const splitmask::tensor_entry& e = reader.entry(name);
      switch (e.type) {
        case splitmask::scalar_type::f32:
          read_tensor<float>(reader, e);
          break;
        case splitmask::scalar_type::f64:
          read_tensor<double>(reader, e);
          break;
        case splitmask::scalar_type::i32:
          read_tensor<std::int32_t>(reader, e);
          break;
        case splitmask::scalar_type::i64:
          read_tensor<std::int64_t>(reader, e);
          break;
        case splitmask::scalar_type::u8:
          read_tensor<std::uint8_t>(reader, e);
          break;
      }
    }
  } catch (const splitmask::file_error&) {
  }
  return 0;
}
