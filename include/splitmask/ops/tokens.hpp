// Token subsets and pooling. SplitMask runs the encoder on a subset of each image's patches:
// gather picks n of the N token rows per image by position, scatter puts n rows back (the
// decoder places encoded tokens at their positions); each is the other's backward.
// mean_tokens pools an image's tokens into one descriptor. Tensors of other devices go to
// detail::device_ops, whose kernels check the positions on the device.
//
//   all (B, N, D)   subset (B, n, D)   index (B, n) positions in [0, N)   pooled (B, D)
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>

#include "splitmask/core/config.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

namespace detail {
// B images, n of their N tokens, of width D: what the host loops take at run time (one copy
// for every shape).
struct token_subset_size {
  std::size_t batch, n, tokens, width;
};

template <class I>
SPLITMASK_KERNEL void check_positions(const I* index, std::size_t count, std::size_t tokens,
                                      const char* op) {
  for (std::size_t i = 0; i < count; ++i) {
    const auto p = index[i];
    if (static_cast<long long>(p) < 0 || static_cast<std::size_t>(p) >= tokens)
      throw shape_error(std::string("splitmask::") + op + ": position " + std::to_string(p) +
                        " is outside [0, " + std::to_string(tokens) + ")");
  }
}

template <class T, class I>
SPLITMASK_KERNEL void gather_tokens_cpu(T* sub, const T* all, const I* index, token_subset_size s) {
  check_positions(index, s.batch * s.n, s.tokens, "gather_tokens");
  parallel_for(s.batch, s.n * s.width, [&](std::size_t b) {
    for (std::size_t i = 0; i < s.n; ++i) {
      const T* src = all + (b * s.tokens + std::size_t(index[b * s.n + i])) * s.width;
      T* dst = sub + (b * s.n + i) * s.width;
      for (std::size_t c = 0; c < s.width; ++c) dst[c] = src[c];
    }
  });
}

template <class T, class I>
SPLITMASK_KERNEL void scatter_tokens_cpu(T* all, const T* sub, const I* index, token_subset_size s,
                                         bool add) {
  check_positions(index, s.batch * s.n, s.tokens, "scatter_tokens");
  parallel_for(s.batch, s.n * s.width, [&](std::size_t b) {
    for (std::size_t i = 0; i < s.n; ++i) {
      const T* src = sub + (b * s.n + i) * s.width;
      T* dst = all + (b * s.tokens + std::size_t(index[b * s.n + i])) * s.width;
      for (std::size_t c = 0; c < s.width; ++c) dst[c] = add ? dst[c] + src[c] : src[c];
    }
  });
}

[[noreturn]] inline void fail_subset_batch(const char* op, const std::string& sub,
                                           const std::string& all, const std::string& index) {
  throw shape_error(std::string("splitmask::") + op + ": subset " + sub + ", tokens " + all +
                    " and index " + index + " disagree on the batch");
}

template <class Sub, class All, class Index>
struct token_subset_shapes {
  using sub_extents = typename Sub::extents_type;
  using all_extents = typename All::extents_type;
  static constexpr std::size_t n = sub_extents::static_extent(1);
  static constexpr std::size_t tokens = all_extents::static_extent(1);
  static constexpr std::size_t width = sub_extents::last;
  static_assert(sub_extents::rank == 3 && all_extents::rank == 3 && all_extents::last == width,
                "splitmask: token subsets are (B, n, D) and the full set (B, N, D)");
  static_assert(std::is_same_v<typename Index::extents_type, extents<dynamic, n>> &&
                    std::is_integral_v<typename Index::value_type>,
                "splitmask: the subset index is an integer tensor (B, n)");
  static_assert(n <= tokens, "splitmask: a subset cannot hold more tokens than the image");

  static void check(const Sub& sub, const All& all, const Index& index, const char* op) {
    if (sub.batch() != all.batch() || index.batch() != all.batch())
      fail_subset_batch(op, to_string(sub.extents()), to_string(all.extents()),
                        to_string(index.extents()));
  }
  static token_subset_size size(std::size_t batch) { return {batch, n, tokens, width}; }
};
}  // namespace detail

/// subset(b, i, :) = all(b, index(b, i), :).
template <class Sub, class All, class Index>
void gather_tokens(Sub&& subset, const All& all, const Index& index) {
  const auto views = detail::views_on_one_device(subset, all, index);
  views([&](auto dev, auto vs, auto va, auto vi) {
    using Device = decltype(dev);
    using S = detail::token_subset_shapes<decltype(vs), decltype(va), decltype(vi)>;
    S::check(vs, va, vi, "gather_tokens");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template gather_tokens<S::tokens, S::n, S::width>(
          vs.data(), va.data(), vi.data(), vs.batch());
    } else {
      detail::gather_tokens_cpu(vs.data(), va.data(), vi.data(), S::size(vs.batch()));
    }
  });
}

/// all(b, index(b, i), :) = subset(b, i, :), or += with write_mode::accumulate (gather's
/// backward). Rows of `all` not named by the index are left alone. A position named twice in
/// one image keeps the last row when overwriting and receives both when accumulating.
template <class All, class Sub, class Index>
void scatter_tokens(All&& all, const Sub& subset, const Index& index,
                    write_mode mode = write_mode::overwrite) {
  const auto views = detail::views_on_one_device(all, subset, index);
  views([&](auto dev, auto va, auto vs, auto vi) {
    using Device = decltype(dev);
    using S = detail::token_subset_shapes<decltype(vs), decltype(va), decltype(vi)>;
    S::check(vs, va, vi, "scatter_tokens");
    const bool add = mode == write_mode::accumulate;
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template scatter_tokens<S::tokens, S::n, S::width>(
          va.data(), vs.data(), vi.data(), vs.batch(), add);
    } else {
      detail::scatter_tokens_cpu(va.data(), vs.data(), vi.data(), S::size(vs.batch()), add);
    }
  });
}

/// targets(b·n + i) = ids(b, index(b, i)): the token ids at a subset's positions, in the row
/// order of that subset's logits (B·n, K).
template <class Targets, class Ids, class Index>
void gather_ids(Targets&& targets, const Ids& ids, const Index& index) {
  const auto views = detail::views_on_one_device(targets, ids, index);
  views([&](auto dev, auto vt, auto vi, auto vx) {
    using Device = decltype(dev);
    constexpr std::size_t N = decltype(vi)::extents_type::last;
    constexpr std::size_t n = decltype(vx)::extents_type::last;
    static_assert(decltype(vi)::extents_type::rank == 2 && decltype(vx)::extents_type::rank == 2,
                  "splitmask::gather_ids: ids are (B, N) and the index (B, n)");
    const std::size_t batch = vi.batch();
    if (vx.batch() != batch || vt.size() != batch * n)
      throw shape_error("splitmask::gather_ids: ids " + to_string(vi.extents()) + ", index " +
                        to_string(vx.extents()) + " and " + std::to_string(vt.size()) +
                        " targets disagree");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template gather_ids<N, n>(vt.data(), vi.data(), vx.data(), batch);
    } else {
      for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t i = 0; i < n; ++i) {
          const auto p = vx.data()[b * n + i];
          if (static_cast<long long>(p) < 0 || static_cast<std::size_t>(p) >= N)
            throw shape_error("splitmask::gather_ids: position " + std::to_string(p) +
                              " is outside [0, " + std::to_string(N) + ")");
          vt.data()[b * n + i] = vi.data()[b * N + static_cast<std::size_t>(p)];
        }
    }
  });
}

/// pooled(b, :) = the mean over t of tokens(b, t, :).
template <class Pooled, class Tokens>
void mean_tokens_forward(Pooled&& pooled, const Tokens& tokens) {
  const auto views = detail::views_on_one_device(pooled, tokens);
  views([&](auto dev, auto vp, auto vt) {
    using Device = decltype(dev);
    using ET = typename decltype(vt)::extents_type;
    using T = typename decltype(vp)::value_type;
    constexpr std::size_t n = ET::static_extent(1), D = ET::last;
    static_assert(std::is_same_v<typename decltype(vp)::extents_type, extents<dynamic, D>>,
                  "splitmask::mean_tokens_forward: pooled is (B, D) for tokens (B, n, D)");
    if (vp.batch() != vt.batch())
      throw shape_error("splitmask::mean_tokens_forward: pooled and tokens disagree on the batch");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template mean_tokens_forward<n, D>(vp.data(), vt.data(),
                                                                     vt.batch());
    } else {
      detail::parallel_for(vt.batch(), n * D, [&](std::size_t b) {
        T* out = vp.data() + b * D;
        for (std::size_t c = 0; c < D; ++c) out[c] = 0;
        for (std::size_t t = 0; t < n; ++t) {
          const T* row = vt.data() + (b * n + t) * D;
          for (std::size_t c = 0; c < D; ++c) out[c] += row[c];
        }
        for (std::size_t c = 0; c < D; ++c) out[c] /= T(n);
      });
    }
  });
}

/// d_tokens(b, t, :) = d_pooled(b, :) / n (written, or added with write_mode::accumulate).
template <class DTokens, class DPooled>
void mean_tokens_backward(DTokens&& d_tokens, const DPooled& d_pooled,
                          write_mode mode = write_mode::overwrite) {
  const auto views = detail::views_on_one_device(d_tokens, d_pooled);
  views([&](auto dev, auto vt, auto vp) {
    using Device = decltype(dev);
    using ET = typename decltype(vt)::extents_type;
    using T = typename decltype(vt)::value_type;
    constexpr std::size_t n = ET::static_extent(1), D = ET::last;
    static_assert(std::is_same_v<typename decltype(vp)::extents_type, extents<dynamic, D>>,
                  "splitmask::mean_tokens_backward: d_pooled is (B, D) for d_tokens (B, n, D)");
    if (vp.batch() != vt.batch())
      throw shape_error("splitmask::mean_tokens_backward: the gradients disagree on the batch");
    const bool add = mode == write_mode::accumulate;
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      detail::device_ops<Device>::template mean_tokens_backward<n, D>(vt.data(), vp.data(),
                                                                      vt.batch(), add);
    } else {
      detail::parallel_for(vt.batch(), n * D, [&](std::size_t b) {
        const T* in = vp.data() + b * D;
        for (std::size_t t = 0; t < n; ++t) {
          T* row = vt.data() + (b * n + t) * D;
          for (std::size_t c = 0; c < D; ++c) row[c] = (add ? row[c] : T(0)) + in[c] / T(n);
        }
      });
    }
  });
}

}  // namespace splitmask
