// trainer: pre-training of a ViT encoder with any objective (train/objective.hpp's concept),
// everything preallocated for a batch size. A step: images -> patches, the objective's targets
// and masks, its forward and backward; then what every objective shares: the check for a
// non-finite loss or gradient (naming the term and the step), clipping by global norm, the
// warm-up and cosine schedule, and AdamW with per-tensor weight decay. On a device (Device other
// than cpu) all of it runs there: a batch of host images is copied in once, and the host reads
// back only the losses and the gradient norm.
//
// Data-parallel: distribute(comm) makes the trainer one of comm.size() ranks. Each rank steps on
// its share of a global batch (batch() images each, the ranks' shares in rank order); images
// keep their numbers in the global batch, so targets and masks are those of one process with
// the whole batch. Gradients and losses are averaged over ranks before the non-finite check,
// clipping and AdamW, so every rank makes the same update.
//
//   splitmask::trainer<splitmask::splitmask_objective<512>, splitmask::presets::vit_ti4_28>
//       t(batch, options, splitmask_options{}, tokenizer);
//   auto losses = t.step(images);  // (B, C, S, S), normalised
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "splitmask/comm/communicator.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/model/vit_encoder.hpp"
#include "splitmask/ops/patchify.hpp"
#include "splitmask/tensor/copy.hpp"
#include "splitmask/tensor/tensor.hpp"
#include "splitmask/train/adamw.hpp"
#include "splitmask/train/pretrain_step.hpp"

namespace splitmask {

namespace detail {
// Σ x_i · (1 + i mod 1024) in double, on the host (a device's parameters are copied there):
// equal on two ranks exactly when they hold the same bits, as far as a checksum can tell, and
// sensitive to values that trade places.
template <class View>
double parameter_checksum(const View& flat) {
  using T = std::remove_const_t<typename View::element_type>;
  const auto sum_of = [](const T* x, std::size_t n) {
    double sum = 0;
    for (std::size_t i = 0; i < n; ++i) sum += double(x[i]) * double(1 + i % 1024);
    return sum;
  };
  if constexpr (std::is_same_v<typename View::device_type, device::cpu>) {
    return sum_of(flat.data(), flat.size());
  } else {
    tensor<T, extents<dynamic>> host(flat.size());
    copy(host, flat);
    return sum_of(host.data(), host.size());
  }
}
}  // namespace detail

template <class Objective, class Encoder, class T = float, class Device = device::cpu>
class trainer {
  static constexpr bool on_host = std::is_same_v<Device, device::cpu>;

 public:
  using objective_type = Objective;
  using config_type = Encoder;  // the encoder's vit_config
  using value_type = T;
  using device_type = Device;
  using encoder_type = vit_encoder<Encoder, T, Device>;
  using model_type = typename Objective::template model<Encoder, T, Device>;
  using image_extents = typename encoder_type::image_extents;  // (B, C, S, S)
  using patch_extents = typename encoder_type::patch_extents;  // (B, N, L)

  /// A trainer for batches of `batch` images. `objective_args` are what the objective needs
  /// besides its options (SplitMask's and BEiT's tokenizer). Throws std::invalid_argument for
  /// options no step could use.
  template <class... ObjectiveArgs>
  trainer(std::size_t batch, pretrain_options options,
          typename Objective::options objective_options = {}, ObjectiveArgs&&... objective_args)
      : options_((detail::check_options(options), options)),
        batch_(batch),
        encoder_(options.seed),
        model_(batch, options.seed, objective_options,
               std::forward<ObjectiveArgs>(objective_args)...),
        objective_options_(objective_options),
        optimizer_(options.adamw),
        patches_(batch),
        images_(on_host ? 0 : batch) {
    detail::register_parameters(optimizer_, encoder_);
    model_.for_each_store([&](auto& store) { detail::register_parameters(optimizer_, store); });
  }
  trainer(const trainer&) = delete;
  trainer& operator=(const trainer&) = delete;

  /// One training step on `images` (B, C, S, S), on the host or on the trainer's device: the
  /// objective's targets and masks for this step's images, forward, backward, clipping, AdamW.
  /// Throws non_finite_loss (before updating anything) when the loss is not finite.
  template <class Images>
  step_losses step(const Images& images) {
    const auto vi = images.view();
    check_batch(vi.batch(), "step");
    if constexpr (!on_host && std::is_same_v<typename decltype(vi)::device_type, device::cpu>) {
      copy(images_, vi);  // the batch's one copy to the device
      patchify<Encoder::patch_size>(patches_, images_);
    } else {
      patchify<Encoder::patch_size>(patches_, vi);
    }
    model_.prepare(patches_, optimizer_.steps() * global_batch() + rank() * batch_);
    return step_with(patches_);
  }

  /// One step on given patches (B, N, L) with the targets and masks the objective holds (from
  /// the last step, or set through objective()).
  template <class Patches>
  step_losses step_with(const Patches& patches) {
    step_losses losses = compute_gradients(patches);
    detail::apply_update(optimizer_, options_, losses);
    if (comm_->size() > 1 && check_every_ > 0 && optimizer_.steps() % check_every_ == 0)
      check_ranks_agree();
    return losses;
  }

  /// Forward and backward only: the losses, and the gradient of the total loss in the encoder's
  /// and the objective's gradients (zeroed first). No update.
  template <class Patches>
  step_losses compute_gradients(const Patches& patches) {
    check_batch(patches.view().batch(), "compute_gradients");
    encoder_.zero_grads();
    model_.for_each_store([](auto& store) { store.zero_grads(); });
    step_losses losses = model_.forward_backward(encoder_, patches);
    if (comm_->size() > 1) average_over_ranks(losses);
    losses.grad_norm = optimizer_.gradient_norm();
    return losses;
  }

  /// Makes this trainer rank comm.rank() of comm.size() data-parallel ranks (every rank calls
  /// it, with trainers of the same batch and options). Rank 0's parameters, AdamW state and step
  /// count, and the objective's other state, are broadcast, so every rank starts alike. A trainer
  /// on the host needs a host communicator (MPI), one on a GPU a device one (NCCL).
  void distribute(communicator& comm) {
    if (comm.size() > 1 && comm.on_device() == on_host)
      throw comm_error(std::string("splitmask::trainer::distribute: a trainer on ") +
                       (on_host ? "the host" : "a GPU") + " cannot use " + comm.description() +
                       (on_host ? ", whose collectives take device buffers"
                                : ", whose collectives take host buffers"));
    comm_ = &comm;
    if (comm.size() == 1) return;
    std::uint64_t steps = optimizer_.steps();
    comm.host_broadcast(&steps, sizeof steps);
    optimizer_.set_steps(steps);
    for_each_flat([&](auto flat) { comm.broadcast(flat.data(), flat.size()); });
    model_.distribute(comm);
  }
  /// Every `steps` steps (100 by default; 0: never) the ranks compare a checksum of their
  /// parameters, and all stop with comm_error if they differ: every rank applies the same
  /// averaged update, so only a fault makes them drift apart.
  void check_ranks_every(std::uint64_t steps) { check_every_ = steps; }
  communicator& comm() const { return *comm_; }
  int rank() const { return comm_->rank(); }
  /// Images per step over all ranks.
  std::size_t global_batch() const { return batch_ * std::size_t(comm_->size()); }

  /// Matrix-product FLOPs (2·M·N·K) of one step.
  static constexpr double step_flops(double batch) { return model_type::step_flops(batch); }

  /// Copies the state of a trainer of the same objective and config on any device: parameters,
  /// AdamW's moments and step count, and the objective's other state (its tokenizer). Options
  /// and batch stay this trainer's. A device trainer saves and resumes checkpoints through a
  /// host twin this way.
  template <class OtherDevice>
  void copy_state_from(trainer<Objective, Encoder, T, OtherDevice>& other) {
    copy(optimizer_.first_moment(), other.optimizer().first_moment());
    copy(optimizer_.second_moment(), other.optimizer().second_moment());
    optimizer_.set_steps(other.optimizer().steps());
    copy(encoder_.flat_params(), other.encoder().flat_params());
    copy_stores(model_, other.objective());
    model_.copy_state_from(other.objective());
  }

  encoder_type& encoder() { return encoder_; }
  model_type& objective() { return model_; }
  const model_type& objective() const { return model_; }
  adamw<T, Device>& optimizer() { return optimizer_; }
  const pretrain_options& options() const { return options_; }
  const typename Objective::options& objective_options() const { return objective_options_; }
  std::size_t batch() const { return batch_; }
  std::uint64_t steps() const { return optimizer_.steps(); }

 private:
  void check_batch(std::size_t b, const char* what) const {
    if (b != batch_)
      throw shape_error("splitmask::trainer::" + std::string(what) + ": got " + std::to_string(b) +
                        " images; this trainer was sized for " + std::to_string(batch_));
  }

  // f(flat) for the encoder's and each store's parameters and AdamW's moments: the state that
  // ranks share.
  template <class F>
  void for_each_flat(F&& f) {
    f(encoder_.flat_params());
    model_.for_each_store([&](auto& store) { f(store.flat_params()); });
    f(optimizer_.first_moment());
    f(optimizer_.second_moment());
  }

  // The mean over ranks of each loss term and of every gradient (each rank's are means over
  // its images; an objective whose term couples images across ranks scales its share to fit).
  void average_over_ranks(step_losses& losses) {
    const T inverse = T(1) / T(comm_->size());
    const auto average = [&](auto flat) {
      comm_->all_reduce_sum(flat.data(), flat.size());
      flat = flat * inverse;
    };
    average(encoder_.flat_grads());
    model_.for_each_store([&](auto& store) { average(store.flat_grads()); });
    double values[step_losses::max_terms + 1];
    const std::size_t n = losses.count;
    for (std::size_t i = 0; i < n; ++i) values[i] = losses.terms[i].value;
    values[n] = losses.total;
    comm_->host_sum(values, n + 1);
    for (std::size_t i = 0; i < n; ++i) losses.terms[i].value = values[i] / comm_->size();
    losses.total = values[n] / comm_->size();
  }

  // Throws comm_error on every rank when any rank's parameters differ from rank 0's.
  void check_ranks_agree() {
    double sum = 0;
    const auto add = [&](auto flat) { sum += detail::parameter_checksum(flat); };
    add(encoder_.flat_params());
    model_.for_each_store([&](auto& store) { add(store.flat_params()); });
    double rank0 = sum;
    comm_->host_broadcast(&rank0, sizeof rank0);
    if (comm_->any(rank0 != sum))
      throw comm_error("splitmask::trainer: the ranks' parameters differ after step " +
                       std::to_string(optimizer_.steps()) + " (rank " + std::to_string(rank()) +
                       "'s checksum " + std::to_string(sum) + ", rank 0's " +
                       std::to_string(rank0) + "): a rank computed another update; stopping");
  }

  // Copies the parameters of each store of `from` into the same store of `to`.
  template <class To, class From>
  static void copy_stores(To& to, From& from) {
    std::size_t i = 0;
    to.for_each_store([&](auto& to_store) {
      std::size_t j = 0;
      from.for_each_store([&](auto& from_store) {
        if (i == j++) copy(to_store.flat_params(), from_store.flat_params());
      });
      ++i;
    });
  }

  pretrain_options options_;
  std::size_t batch_;
  encoder_type encoder_;
  model_type model_;
  typename Objective::options objective_options_;
  adamw<T, Device> optimizer_;
  tensor<T, patch_extents, Device> patches_;  // (B, N, L)
  tensor<T, image_extents, Device> images_;   // (B, C, S, S): a device trainer's only
  communicator* comm_ = &one_process();
  std::uint64_t check_every_ = 100;
};

}  // namespace splitmask
