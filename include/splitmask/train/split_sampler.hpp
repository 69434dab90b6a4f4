// split_sampler: SplitMask's random split of each image's N patch positions into two disjoint
// subsets, A of N_A positions and B of N_B = N - N_A, covering all N. Each image's split is a
// Fisher-Yates shuffle driven by the counter-based RNG keyed by the seed and the image's number
// in the run (its own stream, apart from the ones initialisation draws from), so a seed gives
// every image the same split on any machine, thread count or cutting of the run into batches.
// Each subset is returned in ascending order. On a device, detail::device_ops draws the same
// splits, bit for bit, one thread per image.
//
//   index_a (B, N_A) int32   index_b (B, N_B) int32
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <ratio>
#include <type_traits>

#include "splitmask/core/error.hpp"
#include "splitmask/core/rng.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

/// The sizes of a split of N positions at a mask ratio r (a std::ratio): N_A = N·(1 - r) rounded
/// down, as MAE counts the kept patches (N = 49 at r = 1/2 gives N_A = 24, N_B = 25).
template <std::size_t N, class MaskRatio>
struct patch_split {
  static_assert(MaskRatio::num > 0 && MaskRatio::num < MaskRatio::den,
                "splitmask: the mask ratio must lie strictly between 0 and 1, e.g. "
                "std::ratio<1, 2>");
  static constexpr std::size_t patches = N;
  static constexpr std::size_t kept = N * (MaskRatio::den - MaskRatio::num) / MaskRatio::den;
  static constexpr std::size_t masked = N - kept;
  static_assert(kept > 0 && masked > 0,
                "splitmask: both subsets must hold at least one patch (0 < N_A < N); move the "
                "mask ratio away from 0 and 1 or use more patches");
};

/// Splits of N positions into N_A and N - N_A.
template <std::size_t Patches, std::size_t SubsetA>
class split_sampler {
  static_assert(SubsetA > 0 && SubsetA < Patches, "splitmask::split_sampler: 0 < N_A < N");

 public:
  static constexpr std::size_t N = Patches;
  static constexpr std::size_t N_A = SubsetA, N_B = Patches - SubsetA;
  using index_a_extents = extents<dynamic, N_A>;  // (B, N_A)
  using index_b_extents = extents<dynamic, N_B>;  // (B, N_B)

  explicit split_sampler(std::uint64_t seed) : seed_(seed) {}

  /// The RNG stream of the splits (initialisation and the tokenizer use others).
  static constexpr std::uint64_t stream = std::uint64_t{3} << 34;

  /// Fills index_a and index_b with the splits of the images numbered first_image,
  /// first_image + 1, ... in the run (a trainer numbers them step·B + b).
  template <class IA, class IB>
  void sample(IA&& index_a, IB&& index_b, std::uint64_t first_image) const {
    const auto va = index_a.view();
    const auto vb = index_b.view();
    using Device = detail::device_of_t<decltype(va), decltype(vb)>;
    static_assert(std::is_same_v<typename decltype(va)::extents_type, index_a_extents> &&
                      std::is_same_v<typename decltype(vb)::extents_type, index_b_extents> &&
                      std::is_same_v<typename decltype(va)::value_type, std::int32_t> &&
                      std::is_same_v<typename decltype(vb)::value_type, std::int32_t>,
                  "splitmask::split_sampler: the subsets are int32 (B, N_A) and (B, N_B)");
    if (va.batch() != vb.batch())
      throw shape_error("splitmask::split_sampler: the two subsets disagree on the batch");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template sample_split<N, N_A>(va.data(), vb.data(), va.batch(),
                                                                seed_, stream, first_image);
    } else {
      const counter_rng rng(seed_, stream);
      detail::parallel_for(va.batch(), N * 8, [&](std::size_t b) {
        std::int32_t order[N];
        for (std::size_t i = 0; i < N; ++i) order[i] = static_cast<std::int32_t>(i);
        const std::uint64_t base = (first_image + b) * N;
        for (std::size_t i = N - 1; i > 0; --i) {  // Fisher-Yates: order[i] <-> order[j], j <= i
          const std::uint64_t r = rng.bits(base + i).v[0];
          const std::size_t j = static_cast<std::size_t>((r * (i + 1)) >> 32);  // uniform in [0, i]
          std::swap(order[i], order[j]);
        }
        std::sort(order, order + N_A);
        std::sort(order + N_A, order + N);
        std::copy(order, order + N_A, va.data() + b * N_A);
        std::copy(order + N_A, order + N, vb.data() + b * N_B);
      });
    }
  }

  std::uint64_t seed() const { return seed_; }

 private:
  std::uint64_t seed_;
};

}  // namespace splitmask
