// The pre-training objective concept: what trainer<Objective, Encoder, T, Device> asks of an
// objective, and the pieces objectives share (the split of each image's patches, checked).
//
// An objective is a config type (its compile-time sizes: vocabulary, mask ratio, decoder) with
//   name                          "splitmask", "beit", "mae": the checkpoint's and CLI's name
//   options                       its run-time options (default-constructible)
//   for_each_option(o, f)         f(name, field) for each option of o (static; checkpoints)
//   for_each_size<Encoder>(f)     f(name, value) for each of its sizes with this encoder
//   model<Encoder, T, Device>     its state: parameters beyond the encoder, targets, workspace
// and a model has
//   model(batch, seed, options, args...)        args: what it needs besides (SplitMask's and
//                                               BEiT's tokenizer); validates its options
//   for_each_store(f)             f(store) for each parameter_store it owns, in a fixed order
//                                 (the order AdamW registers them and checkpoints name them)
//   prepare(patches, first_image) draws the batch's targets and masks, seeded by the number in
//                                 the run of its first image: patches (B, N, C·P·P) on Device
//   forward_backward(encoder, patches) -> step_losses
//                                 the loss terms and their weighted sum, with the gradients of
//                                 the total accumulated into the encoder's and its own stores
//                                 (the trainer zeroes them first)
//   step_flops(batch)             matrix-product FLOPs of a step, the encoder's included
//   copy_state_from(other)        what is neither a parameter nor AdamW's (the tokenizer), from
//                                 the model of another device
//   distribute(comm)              one of comm's data-parallel ranks: take rank 0's state beyond
//                                 the parameters (the tokenizer); a term that couples images
//                                 across ranks (InfoNCE) gathers them and scales its share of
//                                 the gradient by comm.size(), since the trainer averages
// Adding an objective: its header(s) in train/objectives/, its tests, and one line in the
// pretrainer's list (examples/pretrain/objectives.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "splitmask/core/device.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/tensor.hpp"
#include "splitmask/train/pretrain_step.hpp"
#include "splitmask/train/split_sampler.hpp"

namespace splitmask {

/// A std::ratio as text, "3/4" (a mask ratio in a checkpoint).
template <class Ratio>
std::string ratio_text() {
  return std::to_string(Ratio::num) + "/" + std::to_string(Ratio::den);
}

/// Each image's split of its N patch positions into subset A (N_A) and B (the rest), on Device,
/// drawn by split_sampler or given; given splits are checked on the host (a device's kernels
/// cannot see an overlap, which would silently drop gradient in a scatter).
template <std::size_t N, std::size_t N_A, class Device>
class patch_split_state {
 public:
  static constexpr std::size_t N_B = N - N_A;
  using a_extents = extents<dynamic, N_A>;  // (B, N_A)
  using b_extents = extents<dynamic, N_B>;  // (B, N_B)

  patch_split_state(std::size_t batch, std::uint64_t seed) : sampler_(seed), a_(batch), b_(batch) {}

  /// The splits of the images numbered first_image, first_image + 1, ... in the run.
  void draw(std::uint64_t first_image) { sampler_.sample(a_, b_, first_image); }

  /// Uses given subsets (host or device tensors); throws shape_error, keeping the split it had,
  /// unless they split each image's N positions: disjoint and covering.
  template <class IA, class IB>
  void set(const IA& a, const IB& b) {
    tensor<std::int32_t, a_extents> host_a(a.view().batch());
    tensor<std::int32_t, b_extents> host_b(b.view().batch());
    copy(host_a, a);
    copy(host_b, b);
    detail::check_split<N>(host_a, host_b);
    copy(a_, host_a);
    copy(b_, host_b);
  }

  const tensor<std::int32_t, a_extents, Device>& a() const { return a_; }
  const tensor<std::int32_t, b_extents, Device>& b() const { return b_; }

 private:
  split_sampler<N, N_A> sampler_;
  tensor<std::int32_t, a_extents, Device> a_;
  tensor<std::int32_t, b_extents, Device> b_;
};

}  // namespace splitmask
