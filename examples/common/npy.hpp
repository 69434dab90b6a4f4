// write_npy: a C-ordered array as a NumPy .npy file (format 1.0), written atomically, so that
// features and inputs open with numpy.load or torch.from_numpy(numpy.load(...)).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include <splitmask/io/atomic_file.hpp>

namespace splitmask::examples {

template <class T>
void write_npy(const std::string& path, const T* data, const std::vector<std::size_t>& shape) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::int32_t>,
                "write_npy: float32 or int32");
  std::string dims;  // "(n, d)", or "(n,)" for one axis
  std::size_t count = 1;
  for (const auto d : shape) {
    dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    count *= d;
  }
  if (shape.size() == 1) dims += ",";
  std::string header = std::string("{'descr': '") + (std::is_same_v<T, float> ? "<f4" : "<i4") +
                       "', 'fortran_order': False, 'shape': (" + dims + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ');  // magic + len + header + \n: 64-aligned
  header += '\n';
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes += char(header.size() & 0xff);
  bytes += char(header.size() >> 8);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(data), count * sizeof(T));
  write_file_atomically(path, bytes);
}

}  // namespace splitmask::examples
