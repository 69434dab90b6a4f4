// The IDX format of MNIST and Fashion-MNIST: a pure parser over bytes (the fuzz target's), a
// gzip-aware file reader, and load_idx, which pairs an images file with its labels file.
//
// Legend: n images, H height, W width.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "splitmask/core/error.hpp"
#include "splitmask/data/file_bytes.hpp"
#include "splitmask/data/image_set.hpp"

namespace splitmask {

/// An IDX array of unsigned bytes: its dimensions and its values in row-major order.
struct idx_array {
  std::vector<std::size_t> dims;     // (ndim)
  std::vector<std::uint8_t> values;  // (dims[0] * dims[1] * ...)
};

namespace detail {
inline std::string idx_type_name(std::uint8_t type) {
  switch (type) {
    case 0x08:
      return "unsigned byte";
    case 0x09:
      return "signed byte";
    case 0x0B:
      return "16-bit integer";
    case 0x0C:
      return "32-bit integer";
    case 0x0D:
      return "32-bit float";
    case 0x0E:
      return "64-bit float";
    default:
      return "unknown type";
  }
}

inline std::string hex_byte(std::uint8_t b) {
  const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

inline std::string join_dims(const std::vector<std::size_t>& dims) {
  std::string s;
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + std::to_string(dims[i]);
  return s;
}
}  // namespace detail

/// Parses IDX bytes (not gzip): the magic 00 00 08 ndim (unsigned bytes only, ndim >= 1), ndim
/// big-endian 32-bit dimensions, then exactly their product of bytes. `source` names the data in
/// messages. Throws file_error on a wrong magic number, another element type, a header or data
/// shorter than promised, or bytes after the data. Never reads outside [data, data + size).
inline idx_array parse_idx(const std::uint8_t* data, std::size_t size, const std::string& source) {
  const std::string where = "splitmask: IDX file " + source + ": ";
  if (size < 4)
    throw file_error(where + "truncated: expected a 4-byte magic number, found " +
                     std::to_string(size) + " bytes");
  if (data[0] != 0 || data[1] != 0)
    throw file_error(where + "wrong magic number: expected 00 00 08 <ndim>, found " +
                     detail::hex_byte(data[0]) + " " + detail::hex_byte(data[1]) + " " +
                     detail::hex_byte(data[2]) + " " + detail::hex_byte(data[3]) +
                     " (not an IDX file)");
  if (data[2] != 0x08)
    throw file_error(where + "expected elements of type 0x08 (unsigned byte), found " +
                     detail::hex_byte(data[2]) + " (" + detail::idx_type_name(data[2]) + ")");
  const std::size_t ndim = data[3];
  if (ndim == 0)
    throw file_error(where + "expected at least one dimension, found 0 in the magic number");
  const std::size_t header = 4 + 4 * ndim;
  if (size < header)
    throw file_error(where + "truncated: the header of " + std::to_string(ndim) +
                     " dimensions takes " + std::to_string(header) + " bytes, the file holds " +
                     std::to_string(size));
  idx_array a;
  std::size_t count = 1;
  bool overflow = false;
  for (std::size_t d = 0; d < ndim; ++d) {
    const std::uint8_t* p = data + 4 + 4 * d;
    const std::size_t dim = std::size_t{p[0]} << 24 | std::size_t{p[1]} << 16 |
                            std::size_t{p[2]} << 8 | std::size_t{p[3]};
    a.dims.push_back(dim);
    if (dim != 0 && count > std::numeric_limits<std::size_t>::max() / dim) overflow = true;
    if (!overflow) count *= dim;
  }
  if (overflow)
    throw file_error(where + "the dimensions " + detail::join_dims(a.dims) +
                     " hold more bytes than memory can address");
  const std::size_t body = size - header;
  if (body < count)
    throw file_error(where + "truncated: the header promises " + detail::join_dims(a.dims) + " = " +
                     std::to_string(count) + " bytes of data (" + std::to_string(header + count) +
                     " in all), the file holds " + std::to_string(body) + " (" +
                     std::to_string(size) + " in all)");
  if (body > count)
    throw file_error(where + "expected " + std::to_string(count) + " bytes of data after the " +
                     std::to_string(header) + "-byte header (dimensions " +
                     detail::join_dims(a.dims) + "), found " + std::to_string(body - count) +
                     " trailing bytes");
  a.values.assign(data + header, data + header + count);
  return a;
}

/// parse_idx after inflating the bytes when they are gzip (at most `max_inflated_bytes`).
inline idx_array decode_idx(const std::uint8_t* data, std::size_t size, const std::string& source,
                            std::uint64_t max_inflated_bytes = default_max_inflated_bytes) {
  if (!is_gzip(data, size)) return parse_idx(data, size, source);
  const std::vector<std::uint8_t> raw = gunzip(data, size, source, max_inflated_bytes);
  return parse_idx(raw.data(), raw.size(), source);
}

/// The IDX array in the file at `path`, raw or gzip.
inline idx_array read_idx(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return parse_idx(bytes.data(), bytes.size(), path);
}

namespace detail {
/// The first of `names` that exists in `dir`; throws file_error listing every name looked for.
inline std::string find_one_of(const std::string& dir, const std::vector<std::string>& names,
                               const std::string& what) {
  namespace fs = std::filesystem;
  std::string tried;
  for (const std::string& name : names) {
    const fs::path p = fs::path(dir) / name;
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
    tried += (tried.empty() ? "" : ", ") + name;
  }
  throw file_error("splitmask: no " + what + " in " + dir + ": looked for " + tried);
}
}  // namespace detail

/// Loads an IDX dataset split from `dir`: images `<p>-images-idx3-ubyte` and labels
/// `<p>-labels-idx1-ubyte`, each raw or `.gz`, also with the dotted spelling
/// `<p>-images.idx3-ubyte`, where p is "train" for split "train" and "t10k" for split "test" or
/// "t10k". Ensures: C = 1, H x W from the images file, one label per image, classes empty. Throws
/// std::invalid_argument for another split, and file_error when a file is missing, is not IDX of
/// the right shape (images n x H x W, labels n), or the counts differ.
inline image_set load_idx(const std::string& dir, const std::string& split) {
  std::string prefix;
  if (split == "train") {
    prefix = "train";
  } else if (split == "test" || split == "t10k") {
    prefix = "t10k";
  } else {
    throw std::invalid_argument(
        "splitmask::load_idx: split must be \"train\", \"test\" or "
        "\"t10k\", got \"" +
        split + "\"");
  }
  const auto names = [&](const std::string& kind, int rank) {
    const std::string r = std::to_string(rank);
    return std::vector<std::string>{prefix + "-" + kind + "-idx" + r + "-ubyte",
                                    prefix + "-" + kind + "-idx" + r + "-ubyte.gz",
                                    prefix + "-" + kind + ".idx" + r + "-ubyte",
                                    prefix + "-" + kind + ".idx" + r + "-ubyte.gz"};
  };
  const std::string images_path = detail::find_one_of(dir, names("images", 3), split + " images");
  const std::string labels_path = detail::find_one_of(dir, names("labels", 1), split + " labels");

  idx_array images = read_idx(images_path);
  if (images.dims.size() != 3)
    throw file_error("splitmask: IDX file " + images_path +
                     ": expected images of 3 dimensions (n x H x W), found " +
                     std::to_string(images.dims.size()) + " (" + detail::join_dims(images.dims) +
                     ")");
  if (images.dims[0] == 0 || images.dims[1] == 0 || images.dims[2] == 0)
    throw file_error("splitmask: IDX file " + images_path +
                     ": expected at least one image of at least 1 x 1 pixels, found " +
                     detail::join_dims(images.dims));
  const idx_array labels = read_idx(labels_path);
  if (labels.dims.size() != 1)
    throw file_error(
        "splitmask: IDX file " + labels_path + ": expected labels of 1 dimension (n), found " +
        std::to_string(labels.dims.size()) + " (" + detail::join_dims(labels.dims) + ")");
  if (labels.dims[0] != images.dims[0])
    throw file_error("splitmask: IDX files " + images_path + " and " + labels_path +
                     ": expected one label per image, found " + std::to_string(images.dims[0]) +
                     " images and " + std::to_string(labels.dims[0]) + " labels");
  image_set set;
  set.channels = 1;
  set.height = images.dims[1];
  set.width = images.dims[2];
  set.pixels = std::move(images.values);
  set.labels.assign(labels.values.begin(), labels.values.end());
  set.source = images_path;
  return set;
}

}  // namespace splitmask
