// One entry point for every dataset format: a format's name, its detection from the files
// present at a path, and load_image_set, which dispatches to the IDX, CIFAR and folder readers.
#pragma once

#include <cstddef>
#include <filesystem>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "splitmask/core/error.hpp"
#include "splitmask/data/cifar.hpp"
#include "splitmask/data/idx.hpp"
#include "splitmask/data/image_folder.hpp"
#include "splitmask/data/image_set.hpp"

namespace splitmask {

/// The on-disk layouts load_image_set reads.
enum class data_format {
  automatic,     // "auto": detect_data_format decides
  idx,           // "idx": MNIST / Fashion-MNIST IDX files, raw or .gz
  cifar10,       // "cifar10": CIFAR-10 binary batches
  cifar100,      // "cifar100": CIFAR-100 binary train.bin / test.bin
  image_folder,  // "folder": PNG / JPEG images, one sub-folder per class
};

/// The name of a format, as parse_data_format reads it.
inline std::string to_string(data_format f) {
  switch (f) {
    case data_format::automatic:
      return "auto";
    case data_format::idx:
      return "idx";
    case data_format::cifar10:
      return "cifar10";
    case data_format::cifar100:
      return "cifar100";
    case data_format::image_folder:
      return "folder";
  }
  return "unknown";
}

/// Every format's name: auto, idx, cifar10, cifar100, folder (for command lines and messages).
inline const std::vector<std::string>& data_format_names() {
  static const std::vector<std::string> names = {
      to_string(data_format::automatic), to_string(data_format::idx),
      to_string(data_format::cifar10), to_string(data_format::cifar100),
      to_string(data_format::image_folder)};
  return names;
}

/// The format named `name` (one of data_format_names()); throws std::invalid_argument listing the
/// valid names for anything else.
inline data_format parse_data_format(const std::string& name) {
  for (data_format f : {data_format::automatic, data_format::idx, data_format::cifar10,
                        data_format::cifar100, data_format::image_folder})
    if (name == to_string(f)) return f;
  std::string valid;
  for (const auto& n : data_format_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw std::invalid_argument("splitmask: unknown data format \"" + name +
                              "\"; expected one of " + valid);
}

namespace detail {
inline bool any_file_of(const std::filesystem::path& dir,
                        std::initializer_list<const char*> names) {
  std::error_code ec;
  for (const char* name : names)
    if (std::filesystem::is_regular_file(dir / name, ec)) return true;
  return false;
}

/// Whether an image file lies within `depth` folder levels below `dir` (hidden entries skipped).
inline bool has_image_within(const std::filesystem::path& dir, int depth) {
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (is_hidden(it->path())) continue;
    if (it->is_regular_file(ec) && has_image_extension(it->path())) return true;
    if (depth > 0 && it->is_directory(ec) && has_image_within(it->path(), depth - 1)) return true;
  }
  return false;
}
}  // namespace detail

/// The format of the dataset at `path` (a folder), from the files present, in this order:
/// idx when train- or t10k-images-idx3-ubyte[.gz] (or the dotted spelling) is there; cifar10 when
/// data_batch_1.bin or test_batch.bin is there or in cifar-10-batches-bin/; cifar100 when
/// train.bin or test.bin is there or in cifar-100-binary/; folder when a .png / .jpg / .jpeg file
/// lies at most three levels down (dir/x.png, dir/class/x.png, dir/train/class/x.png).
/// Throws file_error when `path` does not exist, is not a folder, or matches none of these
/// (saying what was looked for).
inline data_format detect_data_format(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw file_error("splitmask: dataset " + path + ": expected a folder, found nothing there");
  if (!fs::is_directory(path, ec))
    throw file_error("splitmask: dataset " + path +
                     ": expected a folder of dataset files, found a file (pass its folder)");
  const fs::path dir = path;
  for (const char* split : {"train", "t10k"}) {
    const std::string s = split;
    for (const std::string& name : {s + "-images-idx3-ubyte", s + "-images-idx3-ubyte.gz",
                                    s + "-images.idx3-ubyte", s + "-images.idx3-ubyte.gz"}) {
      if (fs::is_regular_file(dir / name, ec)) return data_format::idx;
    }
  }
  if (detail::any_file_of(dir, {"data_batch_1.bin", "test_batch.bin"}) ||
      detail::any_file_of(dir / "cifar-10-batches-bin", {"data_batch_1.bin", "test_batch.bin"}))
    return data_format::cifar10;
  if (detail::any_file_of(dir, {"train.bin", "test.bin"}) ||
      detail::any_file_of(dir / "cifar-100-binary", {"train.bin", "test.bin"}))
    return data_format::cifar100;
  if (detail::has_image_within(dir, 2)) return data_format::image_folder;
  throw file_error(
      "splitmask: cannot tell the format of the dataset in " + path +
      ": looked for train-images-idx3-ubyte[.gz] or t10k-images-idx3-ubyte[.gz] (idx), "
      "data_batch_1.bin or test_batch.bin here or in cifar-10-batches-bin/ (cifar10), train.bin "
      "or test.bin here or in cifar-100-binary/ (cifar100), and .png/.jpg/.jpeg images up to "
      "three levels down (folder); found none. Name the format to get the reader's own message");
}

/// Loads split "train" or "test" of the dataset at `path` in `format` (automatic: detected).
/// IDX and CIFAR read their split's files. A folder reads `path`/train and `path`/test when
/// `path`/train exists; otherwise `path` itself is the training split and there is no test split.
/// Folder images become `folder_channels` x `folder_image_size` x `folder_image_size` (see
/// load_image_folder); the other formats keep their native size.
/// Throws std::invalid_argument for another split; file_error from detection and the readers,
/// and for a folder's test split that does not exist.
inline image_set load_image_set(const std::string& path, const std::string& split,
                                data_format format, std::size_t folder_image_size,
                                std::size_t folder_channels) {
  namespace fs = std::filesystem;
  if (split != "train" && split != "test")
    throw std::invalid_argument(
        "splitmask::load_image_set: split must be \"train\" or \"test\", "
        "got \"" +
        split + "\"");
  if (format == data_format::automatic) format = detect_data_format(path);
  switch (format) {
    case data_format::idx:
      return load_idx(path, split);
    case data_format::cifar10:
      return load_cifar(path, split, 10);
    case data_format::cifar100:
      return load_cifar(path, split, 100);
    case data_format::image_folder: {
      std::error_code ec;
      const fs::path split_dir = fs::path(path) / split;
      if (fs::is_directory(fs::path(path) / "train", ec)) {
        if (!fs::is_directory(split_dir, ec))
          throw file_error("splitmask: image folder " + path + ": expected a " + split +
                           " folder beside train, found no " + split_dir.string());
        if (split == "train")
          return load_image_folder(split_dir.string(), folder_image_size, folder_channels);
        // The test split's labels are the training split's: classes are matched by name.
        const std::vector<std::string> train_classes =
            detail::class_folder_names((fs::path(path) / "train").string());
        return load_image_folder(split_dir.string(), folder_image_size, folder_channels,
                                 train_classes.empty() ? nullptr : &train_classes);
      }
      if (split == "test")
        throw file_error("splitmask: image folder " + path +
                         ": expected train and test sub-folders for a test split, found no " +
                         (fs::path(path) / "train").string() +
                         " (the folder itself is the "
                         "training split)");
      return load_image_folder(path, folder_image_size, folder_channels);
    }
    case data_format::automatic:
      break;
  }
  throw std::logic_error("splitmask::load_image_set: unhandled data format");
}

}  // namespace splitmask
