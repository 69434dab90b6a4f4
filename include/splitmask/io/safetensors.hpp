// safetensors: the checkpoint format of Hugging Face (8-byte little-endian header length N, N bytes
// of JSON, the raw little-endian data), so that models trained here load in PyTorch and back.
// The reader validates a file entirely on construction and never reads out of bounds, whatever
// the input; the writer replaces its file atomically.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "splitmask/core/error.hpp"
#include "splitmask/io/atomic_file.hpp"

namespace splitmask {

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "splitmask/io/safetensors.hpp copies little-endian data as is: big-endian hosts are "
              "not supported");
#endif
static_assert(std::numeric_limits<float>::is_iec559 && sizeof(float) == 4, "F32 must be binary32");
static_assert(std::numeric_limits<double>::is_iec559 && sizeof(double) == 8, "F64: binary64");
static_assert(sizeof(std::size_t) == 8, "safetensors.hpp assumes 64-bit sizes");

/// The element types this library reads and writes, named in the header "F32", "F64", "I32",
/// "I64" and "U8". (Other safetensors dtypes, such as BF16, are rejected as unsupported.)
enum class scalar_type { f32, f64, i32, i64, u8 };

/// The header's name of `type` ("F32", ...).
constexpr const char* scalar_type_name(scalar_type type) noexcept {
  switch (type) {
    case scalar_type::f32:
      return "F32";
    case scalar_type::f64:
      return "F64";
    case scalar_type::i32:
      return "I32";
    case scalar_type::i64:
      return "I64";
    case scalar_type::u8:
      return "U8";
  }
  return "?";
}

/// The size in bytes of one element of `type`.
constexpr std::size_t scalar_type_size(scalar_type type) noexcept {
  switch (type) {
    case scalar_type::f32:
      return 4;
    case scalar_type::f64:
      return 8;
    case scalar_type::i32:
      return 4;
    case scalar_type::i64:
      return 8;
    case scalar_type::u8:
      return 1;
  }
  return 0;
}

namespace detail {
template <class T>
inline constexpr bool always_false_v = false;
}  // namespace detail

/// The scalar_type of T: float, double, std::int32_t, std::int64_t or std::uint8_t.
template <class T>
constexpr scalar_type scalar_type_of() {
  if constexpr (std::is_same_v<T, float>) {
    return scalar_type::f32;
  } else if constexpr (std::is_same_v<T, double>) {
    return scalar_type::f64;
  } else if constexpr (std::is_same_v<T, std::int32_t>) {
    return scalar_type::i32;
  } else if constexpr (std::is_same_v<T, std::int64_t>) {
    return scalar_type::i64;
  } else if constexpr (std::is_same_v<T, std::uint8_t>) {
    return scalar_type::u8;
  } else {
    static_assert(detail::always_false_v<T>,
                  "safetensors: T must be float, double, std::int32_t, std::int64_t or uint8_t");
    return scalar_type::u8;
  }
}

/// One tensor of a safetensors file: its dtype, its shape (empty for a 0-d scalar) and the bytes
/// [begin, end) it occupies in the data buffer (which starts after the header).
struct tensor_entry {
  std::string name;
  scalar_type type;
  std::vector<std::uint64_t> shape;
  std::uint64_t begin = 0, end = 0;
};

namespace detail {

/// Element count and byte size of `shape` with items of `item_size` bytes; false when either
/// overflows 64 bits. A shape with a zero extent holds 0 elements whatever its other extents.
inline bool tensor_size(const std::vector<std::uint64_t>& shape, std::uint64_t item_size,
                        std::uint64_t& elements, std::uint64_t& bytes) {
  constexpr std::uint64_t max = std::numeric_limits<std::uint64_t>::max();
  elements = 1;
  if (std::find(shape.begin(), shape.end(), std::uint64_t(0)) != shape.end()) {
    elements = 0;
  } else {
    for (std::uint64_t extent : shape) {
      if (elements > max / extent) return false;
      elements *= extent;
    }
  }
  if (item_size != 0 && elements > max / item_size) return false;
  bytes = elements * item_size;
  return true;
}

/// "[2, 3]".
inline std::string shape_string(const std::vector<std::uint64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

/// `text` in single quotes, cut to 80 characters (names and JSON in messages may be huge).
inline std::string quoted(const std::string& text) {
  if (text.size() <= 80) return "'" + text + "'";
  return "'" + text.substr(0, 80) + "...' (" + std::to_string(text.size()) + " characters)";
}

/// A JSON value for a message, cut to 80 characters.
inline std::string json_excerpt(const nlohmann::json& value) {
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > 80) text = text.substr(0, 80) + "...";
  return text;
}

inline void store_u64_le(std::uint64_t value, unsigned char* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
}

inline std::uint64_t load_u64_le(const std::uint8_t* in) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i) value |= std::uint64_t(in[i]) << (8 * i);
  return value;
}

/// False when the brackets of the JSON text `text` nest deeper than `max_depth` (checked before
/// parsing, so that a hostile header cannot make the parser build millions of nested values).
/// For valid JSON the count is exact; invalid JSON is rejected by the parser anyway.
inline bool json_depth_within(const char* text, std::size_t size, std::size_t max_depth) {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < size; ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;
    }
  }
  return true;
}

/// A JSON number that is a non-negative integer, as uint64; false for anything else.
inline bool json_to_u64(const nlohmann::json& value, std::uint64_t& out) {
  if (value.is_number_unsigned()) {
    out = value.get<std::uint64_t>();
    return true;
  }
  if (value.is_number_integer() && value.get<std::int64_t>() >= 0) {  // "-0"
    out = static_cast<std::uint64_t>(value.get<std::int64_t>());
    return true;
  }
  return false;
}

inline bool scalar_type_from_name(const std::string& name, scalar_type& type) {
  for (scalar_type t :
       {scalar_type::f32, scalar_type::f64, scalar_type::i32, scalar_type::i64, scalar_type::u8}) {
    if (name == scalar_type_name(t)) {
      type = t;
      return true;
    }
  }
  return false;
}

/// The deepest nesting a header may have (a valid one has 3: file, tensor, shape).
inline constexpr std::size_t max_header_depth = 64;

}  // namespace detail

/// Collects tensors and metadata, then writes them as one safetensors file.
class safetensors_writer {
 public:
  /// Adds tensor `name` of `shape` (empty: a 0-d scalar) whose elements, row-major, start at
  /// `data`. Only the pointer is kept: the caller keeps the data alive and unchanged until
  /// write() returns. Requires: `name` is new and not "__metadata__", and `data` is non-null
  /// unless the tensor is empty; else file_error.
  template <class T>
  void add(std::string name, const T* data, std::vector<std::uint64_t> shape) {
    constexpr scalar_type type = scalar_type_of<T>();
    if (name == "__metadata__")
      throw file_error(
          "splitmask::safetensors_writer::add: '__metadata__' is reserved, not a "
          "tensor name");
    if (!names_.insert(name).second)
      throw file_error("splitmask::safetensors_writer::add: tensor " + detail::quoted(name) +
                       " was already added");
    std::uint64_t elements = 0, bytes = 0;
    if (!detail::tensor_size(shape, sizeof(T), elements, bytes))
      throw file_error("splitmask::safetensors_writer::add: tensor " + detail::quoted(name) +
                       " of shape " + detail::shape_string(shape) + " overflows 64 bits");
    if (bytes > 0 && data == nullptr)
      throw file_error("splitmask::safetensors_writer::add: tensor " + detail::quoted(name) +
                       " of shape " + detail::shape_string(shape) + " has no data (null)");
    tensors_.push_back({std::move(name), type, std::move(shape), data, bytes});
  }

  /// Sets the metadata string `key` (written in "__metadata__"), replacing an earlier value.
  void set_metadata(std::string key, std::string value) {
    metadata_[std::move(key)] = std::move(value);
  }

  /// Writes the file atomically (see atomic_file): "__metadata__" first, then the tensors in the
  /// order they were added, their data contiguous in that order; the header is padded with
  /// spaces to a multiple of 8 bytes. Throws file_error when the file cannot be written, or when
  /// a name or metadata string is not valid UTF-8.
  void write(const std::string& path) const {
    const std::string header = header_text(path);
    atomic_file file(path);
    unsigned char length[8];
    detail::store_u64_le(header.size(), length);
    file.write(length, sizeof length);
    file.write(header.data(), header.size());
    for (const pending& t : tensors_)
      if (t.bytes > 0) file.write(t.data, static_cast<std::size_t>(t.bytes));
    file.commit();
  }

 private:
  struct pending {
    std::string name;
    scalar_type type;
    std::vector<std::uint64_t> shape;
    const void* data;
    std::uint64_t bytes;
  };

  std::string header_text(const std::string& path) const {
    using json = nlohmann::ordered_json;
    json header = json::object();
    if (!metadata_.empty()) {
      json metadata = json::object();
      for (const auto& [key, value] : metadata_) metadata[key] = value;
      header["__metadata__"] = std::move(metadata);
    }
    std::uint64_t offset = 0;
    for (const pending& t : tensors_) {
      if (t.bytes > std::numeric_limits<std::uint64_t>::max() - offset)
        throw file_error("splitmask::safetensors_writer::write: '" + path +
                         "': the tensors' total size overflows 64 bits");
      json entry = json::object();
      entry["dtype"] = scalar_type_name(t.type);
      entry["shape"] = t.shape;
      entry["data_offsets"] = json::array({offset, offset + t.bytes});
      header[t.name] = std::move(entry);
      offset += t.bytes;
    }
    std::string text;
    try {
      text = header.dump();
    } catch (const nlohmann::json::exception& e) {
      throw file_error("splitmask::safetensors_writer::write: '" + path +
                       "': a tensor name or metadata string is not valid UTF-8 (" + e.what() + ")");
    }
    text.append((8 - text.size() % 8) % 8, ' ');
    return text;
  }

  std::vector<pending> tensors_;
  std::set<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

/// Bounds on what safetensors_reader accepts, checked before anything is allocated for it.
struct safetensors_limits {
  std::uint64_t max_header_bytes = std::uint64_t(100) << 20;  // the JSON header
  std::uint64_t max_file_bytes = std::uint64_t(64) << 30;     // the whole file, read to memory
};

/// A safetensors file held in memory, validated entirely on construction: the header is a JSON
/// object of tensor entries (known dtype, shape, data_offsets matching the shape) and an
/// optional "__metadata__" object of strings, and the tensors tile the data buffer exactly (no
/// overlap, no hole). Any violation is a file_error naming the file (`source`).
class safetensors_reader {
 public:
  /// Reads and validates the file at `path`.
  static safetensors_reader open(const std::string& path, safetensors_limits limits = {}) {
    int fd;
    do fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) throw os_error("cannot open", path);
    struct closer {
      int fd;
      ~closer() { ::close(fd); }
    } close_on_exit{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw os_error("cannot stat", path);
    if (!S_ISREG(st.st_mode))
      throw file_error("splitmask::safetensors_reader: '" + path + "' is not a regular file");
    const std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
    if (size > limits.max_file_bytes)
      throw file_error("splitmask::safetensors_reader: '" + path + "': the file is " +
                       std::to_string(size) + " bytes, more than the limit of " +
                       std::to_string(limits.max_file_bytes));
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw os_error("cannot read", path);
      }
      if (n == 0)
        throw file_error("splitmask::safetensors_reader: '" + path + "': the file shrank to " +
                         std::to_string(done) + " bytes while being read (truncated)");
      done += static_cast<std::size_t>(n);
    }
    return parse(std::move(bytes), path, limits);
  }

  /// Validates `bytes`, a whole safetensors file; `source` names it in messages.
  static safetensors_reader parse(std::vector<std::uint8_t> bytes, std::string source,
                                  safetensors_limits limits = {}) {
    safetensors_reader reader;
    reader.bytes_ = std::move(bytes);
    reader.source_ = std::move(source);
    reader.validate(limits);
    return reader;
  }

  /// The name of the file (or what parse() was given).
  const std::string& source() const noexcept { return source_; }

  /// The "__metadata__" strings (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  bool contains(const std::string& name) const { return entries_.count(name) != 0; }

  /// The entry of tensor `name`; file_error when the file has none.
  const tensor_entry& entry(const std::string& name) const {
    const auto it = entries_.find(name);
    if (it == entries_.end())
      throw error("there is no tensor " + detail::quoted(name) + " (the file holds " +
                  std::to_string(entries_.size()) + " tensors)");
    return it->second;
  }

  /// The tensors' names in file order (by data offset).
  std::vector<std::string> names() const { return order_; }

  /// Copies tensor `name` to `out`, which has room for the elements of `expected_shape`.
  /// Requires: the tensor's dtype is T's and its shape is `expected_shape`, else file_error
  /// naming the tensor, what was expected and what was found.
  template <class T>
  void read(const std::string& name, T* out,
            const std::vector<std::uint64_t>& expected_shape) const {
    const tensor_entry& e = typed_entry<T>(name);
    if (e.shape != expected_shape)
      throw error("tensor " + detail::quoted(name) + " has shape " + detail::shape_string(e.shape) +
                  ", expected " + detail::shape_string(expected_shape));
    copy_data(e, out);
  }

  /// The elements of tensor `name`, row-major, whatever its shape. Requires: the tensor's dtype
  /// is T's, else file_error.
  template <class T>
  std::vector<T> read(const std::string& name) const {
    const tensor_entry& e = typed_entry<T>(name);
    std::vector<T> values(static_cast<std::size_t>((e.end - e.begin) / sizeof(T)));
    copy_data(e, values.data());
    return values;
  }

 private:
  safetensors_reader() = default;

  static file_error os_error(const std::string& what, const std::string& path) {
    const int code = errno;
    return file_error("splitmask::safetensors_reader: " + what + " '" + path +
                      "': " + std::strerror(code));
  }

  file_error error(const std::string& what) const {
    return file_error("splitmask::safetensors_reader: '" + source_ + "': " + what);
  }

  template <class T>
  const tensor_entry& typed_entry(const std::string& name) const {
    const tensor_entry& e = entry(name);
    if (e.type != scalar_type_of<T>())
      throw error("tensor " + detail::quoted(name) + " has dtype " + scalar_type_name(e.type) +
                  ", expected " + scalar_type_name(scalar_type_of<T>()));
    return e;
  }

  // The data may sit at any alignment: memcpy. validate() ensured it lies within bytes_.
  void copy_data(const tensor_entry& e, void* out) const {
    const std::uint64_t size = e.end - e.begin;
    if (size > 0)
      std::memcpy(out, bytes_.data() + data_start_ + e.begin, static_cast<std::size_t>(size));
  }

  void validate(const safetensors_limits& limits) {
    const std::uint64_t size = bytes_.size();
    if (size > limits.max_file_bytes)
      throw error("the file is " + std::to_string(size) + " bytes, more than the limit of " +
                  std::to_string(limits.max_file_bytes));
    if (size < 8)
      throw error("the file is truncated: " + std::to_string(size) +
                  " bytes, expected at least 8 (the header length)");
    const std::uint64_t header_bytes = detail::load_u64_le(bytes_.data());
    if (header_bytes > limits.max_header_bytes)
      throw error("the header length " + std::to_string(header_bytes) + " exceeds the limit of " +
                  std::to_string(limits.max_header_bytes) + " bytes");
    if (header_bytes > size - 8)
      throw error("the header length " + std::to_string(header_bytes) + " exceeds the file: only " +
                  std::to_string(size - 8) + " bytes follow (truncated)");
    data_start_ = 8 + header_bytes;
    const std::uint64_t buffer = size - data_start_;

    const char* text = reinterpret_cast<const char*>(bytes_.data() + 8);
    const std::size_t text_size = static_cast<std::size_t>(header_bytes);
    // (The parser stops at a NUL byte as at the end of a C string: it would ignore what follows.)
    if (text_size > 0 && std::memchr(text, 0, text_size) != nullptr)
      throw error("the header is not valid JSON (it contains a NUL byte)");
    if (!detail::json_depth_within(text, text_size, detail::max_header_depth))
      throw error("the header is not valid JSON (it nests deeper than " +
                  std::to_string(detail::max_header_depth) + " levels)");
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(text, text + text_size, nullptr, /*allow_exceptions=*/false);
    } catch (const nlohmann::json::exception& e) {  // not expected with exceptions off
      throw error(std::string("the header is not valid JSON (") + e.what() + ")");
    }
    if (header.is_discarded()) throw error("the header is not valid JSON");
    if (!header.is_object())
      throw error(std::string("the header is a JSON ") + header.type_name() +
                  ", expected an object");

    for (const auto& item : header.items()) {
      if (item.key() == "__metadata__") {
        read_metadata(item.value());
      } else {
        tensor_entry e = read_entry(item.key(), item.value(), buffer);
        entries_.emplace(item.key(), std::move(e));
      }
    }

    // The spec demands that the tensors tile the buffer: sorted by offset, each starts where the
    // previous ended, the first at 0 and the last at the buffer's end.
    std::vector<const tensor_entry*> sorted;
    sorted.reserve(entries_.size());
    for (const auto& [name, e] : entries_) sorted.push_back(&e);
    std::sort(sorted.begin(), sorted.end(), [](const tensor_entry* a, const tensor_entry* b) {
      return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    std::uint64_t position = 0;
    const tensor_entry* previous = nullptr;
    for (const tensor_entry* e : sorted) {
      if (e->begin < position)
        throw error("tensors " + detail::quoted(previous->name) + " and " +
                    detail::quoted(e->name) + " overlap: bytes [" + std::to_string(e->begin) +
                    ", " + std::to_string(position) + ") of the data buffer belong to both");
      if (e->begin > position)
        throw error("hole in the data buffer: bytes [" + std::to_string(position) + ", " +
                    std::to_string(e->begin) + ") belong to no tensor");
      position = e->end;
      previous = e;
      order_.push_back(e->name);
    }
    if (position != buffer)
      throw error("hole in the data buffer: bytes [" + std::to_string(position) + ", " +
                  std::to_string(buffer) + ") at its end belong to no tensor");
  }

  void read_metadata(const nlohmann::json& value) {
    if (!value.is_object())
      throw error(std::string("__metadata__ is a JSON ") + value.type_name() +
                  ", expected an object of strings");
    for (const auto& item : value.items()) {
      if (!item.value().is_string())
        throw error("__metadata__ must be an object of strings, but key " +
                    detail::quoted(item.key()) + " holds a JSON " + item.value().type_name());
      metadata_.emplace(item.key(), item.value().get<std::string>());
    }
  }

  tensor_entry read_entry(const std::string& name, const nlohmann::json& value,
                          std::uint64_t buffer) const {
    const std::string tensor = "tensor " + detail::quoted(name);
    if (!value.is_object())
      throw error(tensor + ": the entry is a JSON " + value.type_name() +
                  ", expected an object with dtype, shape and data_offsets");
    tensor_entry e;
    e.name = name;

    const auto dtype = value.find("dtype");
    if (dtype == value.end() || !dtype->is_string())
      throw error(tensor + ": dtype is missing or not a string");
    if (!detail::scalar_type_from_name(dtype->get_ref<const std::string&>(), e.type))
      throw error(tensor + ": unsupported dtype " +
                  detail::quoted(dtype->get_ref<const std::string&>()) +
                  ", expected one of F32, F64, I32, I64, U8");

    const auto shape = value.find("shape");
    if (shape == value.end()) throw error(tensor + ": shape is missing");
    const std::string bad_shape =
        tensor + ": shape must be an array of non-negative integers, found ";
    if (!shape->is_array()) throw error(bad_shape + detail::json_excerpt(*shape));
    e.shape.reserve(shape->size());
    for (const nlohmann::json& extent : *shape) {
      std::uint64_t n = 0;
      if (!detail::json_to_u64(extent, n)) throw error(bad_shape + detail::json_excerpt(*shape));
      e.shape.push_back(n);
    }
    std::uint64_t elements = 0, bytes = 0;
    if (!detail::tensor_size(e.shape, scalar_type_size(e.type), elements, bytes))
      throw error(tensor + ": shape " + detail::shape_string(e.shape) +
                  " overflows: its element count or byte size exceeds 64 bits");

    const auto offsets = value.find("data_offsets");
    if (offsets == value.end()) throw error(tensor + ": data_offsets is missing");
    if (!offsets->is_array() || offsets->size() != 2 ||
        !detail::json_to_u64((*offsets)[0], e.begin) || !detail::json_to_u64((*offsets)[1], e.end))
      throw error(tensor + ": data_offsets must be two non-negative integers [begin, end], found " +
                  detail::json_excerpt(*offsets));
    const std::string range = "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "]";
    if (e.begin > e.end) throw error(tensor + ": data_offsets " + range + " has begin > end");
    if (e.end > buffer)
      throw error(tensor + ": data_offsets " + range + " end beyond the data buffer of " +
                  std::to_string(buffer) + " bytes (out of range)");
    if (e.end - e.begin != bytes)
      throw error(tensor + ": data_offsets " + range + " span " + std::to_string(e.end - e.begin) +
                  " bytes, but dtype " + scalar_type_name(e.type) + " and shape " +
                  detail::shape_string(e.shape) + " need " + std::to_string(bytes));
    return e;
  }

  std::string source_;
  std::vector<std::uint8_t> bytes_;  // the whole file
  std::uint64_t data_start_ = 0;     // 8 + the header length
  std::map<std::string, tensor_entry> entries_;
  std::vector<std::string> order_;  // names by offset
  std::map<std::string, std::string> metadata_;
};

}  // namespace splitmask
