// CIFAR-10 and CIFAR-100 in their binary versions: fixed-size records of label bytes followed by
// a 3 x 32 x 32 image (channel-major), read into an image_set.
//
// Legend: n images, C = 3 channels, H = W = 32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "splitmask/core/error.hpp"
#include "splitmask/data/file_bytes.hpp"
#include "splitmask/data/image_set.hpp"

namespace splitmask {

namespace detail {

inline constexpr std::size_t cifar_image_bytes = 3 * 32 * 32;

/// The folder names and files of one CIFAR version.
struct cifar_layout {
  std::size_t classes;             // 10 or 100
  std::size_t label_bytes;         // 1 (label) or 2 (coarse, fine)
  const char* subfolder;           // what the archive unpacks to
  const char* names_file;          // one class name a line
  std::vector<std::string> train;  // the training files
  std::vector<std::string> test;   // the test files
};

inline cifar_layout cifar_layout_of(int version) {
  if (version == 10)
    return {10,
            1,
            "cifar-10-batches-bin",
            "batches.meta.txt",
            {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
             "data_batch_5.bin"},
            {"test_batch.bin"}};
  if (version == 100)
    return {100, 2, "cifar-100-binary", "fine_label_names.txt", {"train.bin"}, {"test.bin"}};
  throw std::invalid_argument("splitmask::load_cifar: version must be 10 or 100, got " +
                              std::to_string(version));
}

/// The class names in `path` (one a line, blank lines skipped) when it holds exactly `count`;
/// otherwise none.
inline std::vector<std::string> read_class_names(const std::filesystem::path& path,
                                                 std::size_t count) {
  std::ifstream in(path);
  std::vector<std::string> names;
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos) continue;
    const auto last = line.find_last_not_of(" \t\r");
    names.push_back(line.substr(first, last - first + 1));
  }
  if (names.size() != count) names.clear();
  return names;
}

/// Appends the records of one CIFAR file to `set`; throws file_error on a size that is not a
/// whole number of records or a label out of range.
inline void append_cifar_file(const std::string& path, const cifar_layout& layout, image_set& set) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  const std::size_t record = layout.label_bytes + cifar_image_bytes;
  const std::string where =
      "splitmask: CIFAR-" + std::to_string(layout.classes) + " file " + path + ": ";
  if (bytes.empty())
    throw file_error(where + "expected records of " + std::to_string(record) +
                     " bytes, found an empty file");
  if (bytes.size() % record != 0)
    throw file_error(where + "truncated: " + std::to_string(bytes.size()) +
                     " bytes is not a whole number of " + std::to_string(record) +
                     "-byte records (" + std::to_string(bytes.size() / record) + " records and " +
                     std::to_string(bytes.size() % record) + " bytes over)");
  const std::size_t n = bytes.size() / record;
  set.pixels.reserve(set.pixels.size() + n * cifar_image_bytes);
  set.labels.reserve(set.labels.size() + n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint8_t* r = bytes.data() + i * record;
    if (layout.label_bytes == 2 && r[0] >= 20)
      throw file_error(where + "record " + std::to_string(i) +
                       ": expected a coarse label in 0..19, found " + std::to_string(r[0]));
    const std::uint8_t label = r[layout.label_bytes - 1];  // CIFAR-100: the fine label
    if (label >= layout.classes)
      throw file_error(where + "record " + std::to_string(i) + ": expected a label in 0.." +
                       std::to_string(layout.classes - 1) + ", found " + std::to_string(label));
    set.labels.push_back(label);
    set.pixels.insert(set.pixels.end(), r + layout.label_bytes, r + record);
  }
}

}  // namespace detail

/// Loads split "train" or "test" of CIFAR-`version` (10 or 100, binary version). `dir` is the
/// folder holding the .bin files or its parent holding `cifar-10-batches-bin` /
/// `cifar-100-binary`. CIFAR-10 reads data_batch_1..5.bin or test_batch.bin (record: 1 label
/// byte, 3072 image bytes); CIFAR-100 reads train.bin or test.bin (record: coarse and fine label
/// bytes, 3072 image bytes) and keeps the fine label. The class names come from
/// batches.meta.txt / fine_label_names.txt when present, else classes is empty.
/// Ensures: C = 3, H = W = 32, one label per image in [0, version). Throws std::invalid_argument
/// for another version or split; file_error when a file is missing (naming all looked for), is
/// empty or not a whole number of records, or holds a label out of range.
inline image_set load_cifar(const std::string& dir, const std::string& split, int version) {
  namespace fs = std::filesystem;
  const detail::cifar_layout layout = detail::cifar_layout_of(version);
  if (split != "train" && split != "test")
    throw std::invalid_argument(
        "splitmask::load_cifar: split must be \"train\" or \"test\", got \"" + split + "\"");
  const std::vector<std::string>& files = split == "train" ? layout.train : layout.test;

  // The folder: `dir` when it holds any of this version's files, else its known sub-folder.
  const auto holds_any = [&](const fs::path& folder) {
    std::error_code ec;
    for (const auto* list : {&layout.train, &layout.test})
      for (const std::string& f : *list)
        if (fs::is_regular_file(folder / f, ec)) return true;
    return false;
  };
  std::error_code ec;
  fs::path folder = dir;
  if (!holds_any(folder) && fs::is_directory(folder / layout.subfolder, ec))
    folder /= layout.subfolder;

  std::string missing;
  for (const std::string& f : files) {
    if (!fs::is_regular_file(folder / f, ec)) missing += (missing.empty() ? "" : ", ") + f;
  }
  if (!missing.empty()) {
    std::string all;
    for (const std::string& f : files) all += (all.empty() ? "" : ", ") + f;
    throw file_error(
        "splitmask: CIFAR-" + std::to_string(version) + " " + split + " split not found in " + dir +
        ": looked for " + all + " there and in " + (fs::path(dir) / layout.subfolder).string() +
        (missing == all ? std::string() : "; " + folder.string() + " lacks " + missing));
  }

  image_set set;
  set.channels = 3;
  set.height = 32;
  set.width = 32;
  for (const std::string& f : files) detail::append_cifar_file((folder / f).string(), layout, set);
  set.classes = detail::read_class_names(folder / layout.names_file, layout.classes);
  set.source =
      (folder / files.front()).string() + (files.size() > 1 ? " (and the other batches)" : "");
  return set;
}

}  // namespace splitmask
