// token_targets: what the objectives that predict token ids (SplitMask, BEiT) hold besides their
// model: the tokenizer, its copy on the device, the batch's ids, and each image's split of its
// patches (N_A and N - N_A), drawn or given. Such an objective's model derives from it, and so
// has prepare, set_targets and the tokenizer's accessors.
//
//   patches (B, N, C·P·P)   ids (B, N) int32   split (B, N_A), (B, N - N_A) int32, on Device
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "splitmask/comm/communicator.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/tensor.hpp"
#include "splitmask/tokenizer/device_tokenizer.hpp"
#include "splitmask/tokenizer/patch_tokenizer.hpp"
#include "splitmask/train/objective.hpp"

namespace splitmask {

template <class Encoder, std::size_t K, std::size_t N_A, class Device>
class token_targets {
  static constexpr bool on_host = std::is_same_v<Device, device::cpu>;
  // The host assigns tokens with the tokenizer itself.
  using device_tokenizer_type =
      std::conditional_t<on_host, no_device_tokenizer, device_tokenizer<Encoder, K, Device>>;

 public:
  static constexpr std::size_t N = Encoder::patches;
  using tokenizer_type = patch_tokenizer<Encoder, K>;
  using ids_type = tensor<std::int32_t, extents<dynamic, N>, Device>;  // (B, N)

  token_targets(std::size_t batch, std::uint64_t seed, tokenizer_type tokenizer)
      : tokenizer_(std::move(tokenizer)),
        device_tokenizer_(tokenizer_),
        ids_(batch),
        split_(batch, seed) {}

  /// The ids of the batch's patches, and the splits of its images, numbered from first_image.
  template <class Patches>
  void prepare(const Patches& patches, std::uint64_t first_image) {
    if constexpr (on_host) {
      tokenizer_.assign(ids_, patches);
    } else {
      device_tokenizer_.assign(ids_, patches);
    }
    split_.draw(first_image);
  }
  /// Given ids (B, N) and split (B, N_A), (B, N - N_A), host or device, instead of prepare's
  /// (tests); throws shape_error for a split that is not one.
  template <class Ids, class IA, class IB>
  void set_targets(const Ids& ids, const IA& a, const IB& b) {
    split_.set(a, b);
    copy(ids_, ids);
  }

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
  /// One of comm's data-parallel ranks: takes rank 0's tokenizer (trainer::distribute).
  void distribute(communicator& comm) {
    typename tokenizer_type::vocabulary_type vocabulary;
    copy(vocabulary, tokenizer_.vocabulary());
    auto mean = tokenizer_.mean();
    auto std_dev = tokenizer_.std_dev();
    comm.host_broadcast(vocabulary.data(), vocabulary.size() * sizeof(float));
    comm.host_broadcast(mean.data(), sizeof mean);
    comm.host_broadcast(std_dev.data(), sizeof std_dev);
    tokenizer_type tokenizer(mean, std_dev);
    tokenizer.restore_vocabulary(vocabulary);
    set_tokenizer(tokenizer);
  }
  /// The state that is neither a parameter nor AdamW's: the tokenizer, from another device's.
  template <class Other>
  void copy_state_from(const Other& other) {
    set_tokenizer(other.tokenizer());
  }

  /// The last prepare's (or set_targets') token ids (B, N) and split.
  const ids_type& ids() const { return ids_; }
  const patch_split_state<N, N_A, Device>& split() const { return split_; }

 private:
  tokenizer_type tokenizer_;
  device_tokenizer_type device_tokenizer_;
  ids_type ids_;
  patch_split_state<N, N_A, Device> split_;
};

}  // namespace splitmask
