// token_targets: the targets of the objectives that predict token ids (SplitMask, BEiT): the
// tokenizer, its copy on the device, and the batch's ids, assigned there or given.
//
//   patches (B, N, C·P·P)   ids (B, N) int32, on Device
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "splitmask/core/device.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/tensor.hpp"
#include "splitmask/tokenizer/device_tokenizer.hpp"
#include "splitmask/tokenizer/patch_tokenizer.hpp"

namespace splitmask {

template <class Encoder, std::size_t K, class Device>
class token_targets {
  static constexpr bool on_host = std::is_same_v<Device, device::cpu>;
  // The host assigns tokens with the tokenizer itself.
  using device_tokenizer_type =
      std::conditional_t<on_host, no_device_tokenizer, device_tokenizer<Encoder, K, Device>>;

 public:
  static constexpr std::size_t N = Encoder::patches;
  using tokenizer_type = patch_tokenizer<Encoder, K>;
  using ids_type = tensor<std::int32_t, extents<dynamic, N>, Device>;  // (B, N)

  token_targets(std::size_t batch, tokenizer_type tokenizer)
      : tokenizer_(std::move(tokenizer)), device_tokenizer_(tokenizer_), ids_(batch) {}

  /// The ids of the batch's patches.
  template <class Patches>
  void assign(const Patches& patches) {
    if constexpr (on_host) {
      tokenizer_.assign(ids_, patches);
    } else {
      device_tokenizer_.assign(ids_, patches);
    }
  }
  /// Uses given ids (B, N), host or device.
  template <class Ids>
  void set(const Ids& ids) {
    copy(ids_, ids);
  }

  const ids_type& ids() const { return ids_; }
  const tokenizer_type& tokenizer() const { return tokenizer_; }
  /// The tokenizer to change in place, on the host only: a device's copy changes through
  /// set_tokenizer.
  template <bool Host = on_host, std::enable_if_t<Host, int> = 0>
  tokenizer_type& tokenizer() {
    return tokenizer_;
  }
  void set_tokenizer(const tokenizer_type& tokenizer) {
    tokenizer_ = tokenizer_type(tokenizer);
    device_tokenizer_ = device_tokenizer_type(tokenizer_);
  }

 private:
  tokenizer_type tokenizer_;
  device_tokenizer_type device_tokenizer_;
  ids_type ids_;
};

}  // namespace splitmask
