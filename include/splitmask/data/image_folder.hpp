// A folder of PNG / JPEG images, one sub-folder per class (or unlabeled images directly in it),
// decoded with stb_image and brought to S x S x C; link with Debian's libstb (-lstb).
//
// Legend: n images, C channels, S image size (height = width).
#pragma once

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "splitmask/core/error.hpp"
#include "splitmask/data/file_bytes.hpp"
#include "splitmask/data/image_set.hpp"

namespace splitmask {

namespace detail {

/// .png, .jpg or .jpeg, in any case.
inline bool has_image_extension(const std::filesystem::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

inline bool is_hidden(const std::filesystem::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

/// The image files under `folder` (recursively, skipping hidden entries), sorted by path.
inline std::vector<std::filesystem::path> image_files_under(const std::filesystem::path& folder) {
  namespace fs = std::filesystem;
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(folder); it != fs::recursive_directory_iterator();
       ++it) {
    if (is_hidden(it->path())) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file() && has_image_extension(it->path())) files.push_back(it->path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

/// Decodes the image file `path` to `channels` channels, crops its centre to a square, resizes
/// that to S x S and appends it to `pixels` as (C, S, S).
inline void append_image_file(const std::filesystem::path& path, std::size_t S,
                              std::size_t channels, std::vector<std::uint8_t>& pixels) {
  const std::vector<std::uint8_t> bytes = read_raw_file(path.string());
  if (bytes.size() > static_cast<std::size_t>(INT_MAX))
    throw file_error("splitmask: image " + path.string() + ": expected at most " +
                     std::to_string(INT_MAX) + " bytes (stb_image's limit), found " +
                     std::to_string(bytes.size()));
  int w = 0, h = 0, file_channels = 0;
  const int C = static_cast<int>(channels);
  const std::unique_ptr<stbi_uc, void (*)(void*)> decoded(
      stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &file_channels,
                            C),
      stbi_image_free);
  if (!decoded) {
    const char* reason = stbi_failure_reason();
    throw file_error(
        "splitmask: cannot decode image " + path.string() +
        ": expected a PNG or JPEG image, stb_image says: " + (reason ? reason : "unknown error"));
  }
  // The largest centred square, then S x S.
  const int side = std::min(w, h), x0 = (w - side) / 2, y0 = (h - side) / 2;
  const int Si = static_cast<int>(S);
  const stbi_uc* square =
      decoded.get() +
      (static_cast<std::size_t>(y0) * static_cast<std::size_t>(w) + static_cast<std::size_t>(x0)) *
          channels;
  std::vector<std::uint8_t> hwc(S * S * channels);  // (S, S, C)
  if (side == Si) {
    for (std::size_t y = 0; y < S; ++y)
      std::copy_n(square + y * static_cast<std::size_t>(w) * channels, S * channels,
                  hwc.data() + y * S * channels);
  } else if (!stbir_resize_uint8(square, side, side, w * C, hwc.data(), Si, Si, Si * C, C)) {
    throw file_error("splitmask: image " + path.string() + ": stb_image_resize failed to resize " +
                     std::to_string(side) + " x " + std::to_string(side) + " to " +
                     std::to_string(S) + " x " + std::to_string(S) + " (out of memory?)");
  }
  const std::size_t base = pixels.size();
  pixels.resize(base + channels * S * S);
  for (std::size_t c = 0; c < channels; ++c)
    for (std::size_t k = 0; k < S * S; ++k) pixels[base + c * S * S + k] = hwc[k * channels + c];
}

/// The names of the class sub-folders of `dir`, sorted (empty for an unlabeled folder).
inline std::vector<std::string> class_folder_names(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (!is_hidden(it->path()) && it->is_directory(ec)) names.push_back(it->path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

/// load_image_folder without turning std::filesystem errors into file_error.
inline image_set load_image_folder_unwrapped(const std::string& dir, std::size_t image_size,
                                             std::size_t channels,
                                             const std::vector<std::string>* class_names) {
  namespace fs = std::filesystem;
  if (channels < 1 || channels > 4)
    throw std::invalid_argument("splitmask::load_image_folder: channels must be 1 to 4, got " +
                                std::to_string(channels));
  if (image_size < 1 || image_size > (std::size_t{1} << 16))
    throw std::invalid_argument(
        "splitmask::load_image_folder: image_size must be 1 to 65536, got " +
        std::to_string(image_size));
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw file_error("splitmask: image folder " + dir + ": expected a folder, " +
                     (fs::exists(dir, ec) ? "found a file" : "found nothing there"));

  std::vector<fs::path> class_dirs, top_images;
  std::size_t other_files = 0;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    if (detail::is_hidden(e.path())) continue;
    if (e.is_directory()) {
      class_dirs.push_back(e.path());
    } else if (e.is_regular_file() && detail::has_image_extension(e.path())) {
      top_images.push_back(e.path());
    } else {
      ++other_files;
    }
  }
  std::sort(class_dirs.begin(), class_dirs.end());
  std::sort(top_images.begin(), top_images.end());
  if (!class_dirs.empty() && !top_images.empty())
    throw file_error("splitmask: image folder " + dir +
                     ": expected either class sub-folders or images, found both (" +
                     std::to_string(class_dirs.size()) + " sub-folders, e.g. " +
                     class_dirs.front().filename().string() + ", and " +
                     std::to_string(top_images.size()) + " images, e.g. " +
                     top_images.front().filename().string() + ")");
  if (class_dirs.empty() && top_images.empty())
    throw file_error("splitmask: image folder " + dir +
                     ": expected .png, .jpg or .jpeg images or class sub-folders holding them, "
                     "found " +
                     (other_files ? std::to_string(other_files) + " other files" : "it empty"));

  image_set set;
  set.channels = channels;
  set.height = set.width = image_size;
  set.source = dir;
  if (class_dirs.empty()) {
    for (const fs::path& f : top_images)
      detail::append_image_file(f, image_size, channels, set.pixels);
    return set;
  }
  if (class_names) set.classes = *class_names;
  for (std::size_t i = 0; i < class_dirs.size(); ++i) {
    const std::string name = class_dirs[i].filename().string();
    std::size_t label = i;
    if (class_names) {  // labels by name, as another split numbered them
      label = std::size_t(std::find(class_names->begin(), class_names->end(), name) -
                          class_names->begin());
      if (label == class_names->size())
        throw file_error("splitmask: image folder " + dir + ": class folder " + name +
                         " is not one of the training split's " +
                         std::to_string(class_names->size()) +
                         " classes; expected the same class names in both splits");
    } else {
      set.classes.push_back(name);
    }
    const std::vector<fs::path> files = detail::image_files_under(class_dirs[i]);
    if (files.empty())
      throw file_error("splitmask: image folder " + dir + ": class folder " + name +
                       " holds no .png, .jpg or .jpeg image; expected at least one");
    for (const fs::path& f : files) {
      detail::append_image_file(f, image_size, channels, set.pixels);
      set.labels.push_back(static_cast<std::int32_t>(label));
    }
  }
  return set;
}

}  // namespace detail

/// Loads the PNG / JPEG images under `dir` as `channels` x `image_size` x `image_size`.
///
/// Layout: when `dir` has sub-folders, each is a class (labels 0, 1, ... in the sorted order of
/// their names, which become `classes`) and its images are found recursively; otherwise the
/// images directly in `dir` form an unlabeled set (labels and classes empty). Files and folders
/// whose names start with '.' are skipped; files are taken in sorted path order.
/// Files: an image is a file ending in .png, .jpg or .jpeg (any case); other files are ignored
/// without being opened (a .bmp or .gif is not read).
/// Pixels: stb_image decodes to `channels` (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA), converting
/// as it does: grey is replicated to RGB; RGB becomes grey as (77 R + 150 G + 29 B) / 256; a
/// missing alpha is 255; 16-bit PNGs are scaled to 8 bits. The largest centred square is cut out
/// (the longer side loses (long - short) / 2 pixels at each end) and, unless it already is
/// S x S, resized to S x S with stb_image_resize's defaults (filtering the stored 8-bit values
/// directly, no gamma decoding: Mitchell on the way down, Catmull-Rom on the way up, edges
/// clamped). With `class_names` (another split's classes, e.g. the training split's), each class
/// folder is labelled by its name's position there, and a name not there is an error.
/// Throws std::invalid_argument unless 1 <= channels <= 4 and image_size >= 1; file_error when
/// `dir` is not a folder, holds no image (or a class folder holds none), mixes class sub-folders
/// with images at its top, an image file does not decode (naming it and stb's reason), or listing a
/// folder fails.
inline image_set load_image_folder(const std::string& dir, std::size_t image_size,
                                   std::size_t channels,
                                   const std::vector<std::string>* class_names = nullptr) {
  try {
    return detail::load_image_folder_unwrapped(dir, image_size, channels, class_names);
  } catch (const std::filesystem::filesystem_error& e) {
    throw file_error("splitmask: image folder " + dir + ": cannot list it: " + e.what());
  }
}

}  // namespace splitmask
