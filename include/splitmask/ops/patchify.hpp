// Patches of an image as rows: (B, C, H, W) -> (B, N, C·P·P), token t = gy·(W/P) + gx, each row
// ordered (c, py, px). That order makes the patch embedding a linear map whose weight (D, C·P·P)
// is timm's convolution weight (D, C, P, P) read flat. unpatchify is the inverse; each is the
// other's backward (a permutation of elements). Tensors of other devices go to
// detail::device_ops.
//
//   images (B, C, S, S)   patches (B, N, C·P·P), N = (S/P)², S the image size
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>

#include "splitmask/core/error.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

namespace detail {
template <std::size_t P, class Images, class Patches>
struct patch_layout {
  using ie = typename Images::extents_type;
  using pe = typename Patches::extents_type;
  static_assert(ie::rank == 4 && pe::rank == 3,
                "splitmask::patchify: images are (B, C, H, W) and patches (B, N, C·P·P)");
  static constexpr std::size_t C = ie::static_extent(1), S = ie::static_extent(2);
  static_assert(ie::static_extent(3) == S, "splitmask::patchify: images must be square");
  static_assert(S % P == 0, "splitmask::patchify: the image size must be a multiple of P");
  static constexpr std::size_t grid = S / P;
  static_assert(pe::static_extent(1) == grid * grid && pe::last == C * P * P,
                "splitmask::patchify: patches must be (B, (S/P)², C·P·P) for images (B, C, S, S)");

  // Copies between one image and its patches: to the patches or back.
  template <bool ToPatches, class T, class U>
  static void move(T* image, U* patches) {
    for (std::size_t gy = 0; gy < grid; ++gy)
      for (std::size_t gx = 0; gx < grid; ++gx) {
        auto* row = patches + (gy * grid + gx) * (C * P * P);
        for (std::size_t c = 0; c < C; ++c)
          for (std::size_t py = 0; py < P; ++py) {
            auto* pixel = image + (c * S + gy * P + py) * S + gx * P;
            auto* value = row + (c * P + py) * P;
            for (std::size_t px = 0; px < P; ++px) {
              if constexpr (ToPatches) {
                value[px] = pixel[px];
              } else {
                pixel[px] = value[px];
              }
            }
          }
      }
  }
};

// Copies every image of `images` to its patches (ToPatches) or back.
template <std::size_t P, bool ToPatches, class Images, class Patches>
void move_patches(Images&& images, Patches&& patches, const char* op) {
  const auto views = views_on_one_device(images, patches);
  views([&](auto dev, auto vi, auto vp) {
    using Device = decltype(dev);
    using L = patch_layout<P, decltype(vi), decltype(vp)>;
    if (vp.batch() != vi.batch())
      throw shape_error(std::string("splitmask::") + op +
                        ": images and patches disagree on the batch");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      static_assert(
          std::is_same_v<typename decltype(vi)::value_type, typename decltype(vp)::value_type>,
          "splitmask::patchify: images and patches of one element type");
      device_ops<Device>::template move_patches<L::C, L::S, P, ToPatches>(vi.data(), vp.data(),
                                                                          vi.batch());
    } else {
      constexpr std::size_t image_size = L::C * L::S * L::S;  // = N · C·P·P
      parallel_for(vi.batch(), image_size, [&](std::size_t b) {
        L::template move<ToPatches>(vi.data() + b * image_size, vp.data() + b * image_size);
      });
    }
  });
}
}  // namespace detail

/// patches = the P x P patches of each image as rows.
template <std::size_t P, class Patches, class Images>
void patchify(Patches&& patches, const Images& images) {
  detail::move_patches<P, true>(images, patches, "patchify");
}

/// images = the image whose patches are `patches` (patchify's inverse and backward).
template <std::size_t P, class Images, class Patches>
void unpatchify(Images&& images, const Patches& patches) {
  detail::move_patches<P, false>(images, patches, "unpatchify");
}

}  // namespace splitmask
