// Whole-file reads for the dataset readers, with transparent gzip: a file whose bytes start with
// the gzip magic (1f 8b) is inflated with zlib, up to a cap on the inflated size.
#pragma once

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "splitmask/core/error.hpp"

namespace splitmask {

/// The largest inflated size read_file_bytes and gunzip accept by default: 4 GiB.
inline constexpr std::uint64_t default_max_inflated_bytes = std::uint64_t{4} << 30;

/// True when the bytes start with the gzip magic number 1f 8b.
inline bool is_gzip(const std::uint8_t* data, std::size_t size) {
  return size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

/// Inflates gzip data (one member or several concatenated, as `cat a.gz b.gz` gives). `source`
/// names the data in messages. Throws file_error when the data is corrupt, truncated, followed
/// by bytes that are not another gzip member, or inflates to more than `max_bytes`.
inline std::vector<std::uint8_t> gunzip(const std::uint8_t* data, std::size_t size,
                                        const std::string& source,
                                        std::uint64_t max_bytes = default_max_inflated_bytes) {
  const std::string where = "splitmask: gzip file " + source + ": ";
  z_stream s{};
  if (inflateInit2(&s, 16 + MAX_WBITS) != Z_OK)
    throw file_error(where + "zlib could not start inflating (out of memory?)");
  const std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&s, inflateEnd);

  constexpr std::size_t max_chunk = std::numeric_limits<uInt>::max();
  const std::uint64_t cap =
      std::min<std::uint64_t>(max_bytes, std::numeric_limits<std::size_t>::max());
  // First guess of the inflated size: the gzip trailer's ISIZE (the size mod 2^32 of the last
  // member), bounded by deflate's best ratio (about 1032:1) so that a forged trailer cannot make
  // a small input allocate much; the buffer doubles when the guess is short.
  std::uint64_t guess = std::uint64_t{1} << 16;
  if (size >= 18)
    guess = std::max<std::uint64_t>(
        guess, std::uint64_t{data[size - 4]} | std::uint64_t{data[size - 3]} << 8 |
                   std::uint64_t{data[size - 2]} << 16 | std::uint64_t{data[size - 1]} << 24);
  guess = std::min({guess, cap, std::uint64_t{size} * 1032 + (std::uint64_t{1} << 16)});
  std::vector<std::uint8_t> out(static_cast<std::size_t>(guess));
  std::size_t in_used = 0, out_used = 0;
  for (;;) {
    if (out_used == out.size()) {
      if (out.size() >= cap)
        throw file_error(where + "inflates to more than " + std::to_string(max_bytes) +
                         " bytes, the most accepted");
      out.resize(
          static_cast<std::size_t>(std::min<std::uint64_t>(cap, std::uint64_t{out.size()} * 2)));
    }
    // zlib counts in uInt: feed it at most 4 GiB - 1 at a time.
    s.next_in = const_cast<Bytef*>(data + in_used);  // zlib's API is not const-correct
    s.avail_in = static_cast<uInt>(std::min(size - in_used, max_chunk));
    s.next_out = out.data() + out_used;
    s.avail_out = static_cast<uInt>(std::min(out.size() - out_used, max_chunk));
    const uInt in_before = s.avail_in, out_before = s.avail_out;
    const int rc = inflate(&s, Z_NO_FLUSH);
    in_used += in_before - s.avail_in;
    out_used += out_before - s.avail_out;
    if (rc == Z_STREAM_END) {
      if (in_used == size) break;
      // Another member may follow; anything else is garbage.
      if (!is_gzip(data + in_used, size - in_used))
        throw file_error(where + "expected the end of the file or another gzip member after " +
                         std::to_string(in_used) + " bytes, found " +
                         std::to_string(size - in_used) + " other bytes");
      if (inflateReset(&s) != Z_OK) throw file_error(where + "zlib could not reset");
      continue;
    }
    if (rc == Z_OK) continue;
    if (rc == Z_BUF_ERROR && s.avail_out == 0) continue;  // output full: grow and go on
    if (rc == Z_BUF_ERROR && in_used == size)
      throw file_error(where + "truncated: the compressed stream ends after " +
                       std::to_string(size) + " bytes without its end marker (" +
                       std::to_string(out_used) + " bytes inflated so far)");
    if (rc == Z_DATA_ERROR)
      throw file_error(where + "corrupt compressed data (zlib: " +
                       (s.msg ? std::string(s.msg) : std::string("data error")) + ") after " +
                       std::to_string(in_used) + " of " + std::to_string(size) + " bytes");
    if (rc == Z_MEM_ERROR) throw file_error(where + "zlib ran out of memory");
    throw file_error(where + "zlib's inflate failed with code " + std::to_string(rc));
  }
  out.resize(out_used);
  out.shrink_to_fit();
  return out;
}

namespace detail {
/// The raw bytes of the file at `path`; throws file_error naming the file and the system's reason.
inline std::vector<std::uint8_t> read_raw_file(const std::string& path) {
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"),
                                                          std::fclose);
  if (!f) throw file_error("splitmask: cannot open " + path + ": " + std::strerror(errno));
  std::vector<std::uint8_t> bytes;
  constexpr std::size_t chunk = std::size_t{1} << 20;
  for (;;) {
    const std::size_t used = bytes.size();
    bytes.resize(used + chunk);
    const std::size_t got = std::fread(bytes.data() + used, 1, chunk, f.get());
    bytes.resize(used + got);
    if (got < chunk) break;
  }
  if (std::ferror(f.get()))
    throw file_error("splitmask: cannot read " + path + ": " + std::strerror(errno));
  bytes.shrink_to_fit();
  return bytes;
}
}  // namespace detail

/// The bytes of the file at `path`, inflated when they start with the gzip magic (see gunzip).
/// Throws file_error when the file cannot be opened or read, or its gzip content is bad.
inline std::vector<std::uint8_t> read_file_bytes(
    const std::string& path, std::uint64_t max_inflated_bytes = default_max_inflated_bytes) {
  std::vector<std::uint8_t> bytes = detail::read_raw_file(path);
  if (!is_gzip(bytes.data(), bytes.size())) return bytes;
  return gunzip(bytes.data(), bytes.size(), path, max_inflated_bytes);
}

}  // namespace splitmask
