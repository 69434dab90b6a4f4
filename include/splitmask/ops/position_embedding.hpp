// The fixed 2-D sin-cos positional embedding of MAE: for the token at grid row i and column j,
// the first D/2 entries encode j and the last D/2 encode i, each as
// [sin(pos·ω_k) for k < D/4, cos(pos·ω_k) for k < D/4] with ω_k = 10000^(-k / (D/4)).
//
//   embedding (N, D), N = grid²
#pragma once

#include <cmath>
#include <cstddef>

#include "splitmask/ops/common.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

/// Fills a (grid², D) host tensor with the 2-D sin-cos embedding (computed in double).
template <std::size_t Grid, class E>
void sincos_position_embedding(E&& embedding) {
  const auto v = embedding.view();
  detail::require_host<decltype(v)>();
  using X = typename decltype(v)::extents_type;
  constexpr std::size_t D = X::last;
  static_assert(X::rank == 2 && X::static_extent(0) == Grid * Grid,
                "splitmask::sincos_position_embedding: the embedding is (grid², D)");
  static_assert(D % 4 == 0, "splitmask::sincos_position_embedding: D must be divisible by 4");
  constexpr std::size_t quarter = D / 4;
  using T = typename decltype(v)::value_type;
  for (std::size_t i = 0; i < Grid; ++i)
    for (std::size_t j = 0; j < Grid; ++j) {
      T* row = v.data() + (i * Grid + j) * D;
      const double pos[2] = {double(j), double(i)};  // first half: column; second: row
      for (std::size_t half = 0; half < 2; ++half)
        for (std::size_t k = 0; k < quarter; ++k) {
          const double omega = 1.0 / std::pow(10000.0, double(k) / double(quarter));
          row[half * 2 * quarter + k] = T(std::sin(pos[half] * omega));
          row[half * 2 * quarter + quarter + k] = T(std::cos(pos[half] * omega));
        }
    }
}

}  // namespace splitmask
