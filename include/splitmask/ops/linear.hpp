// linear: y = x W^T + b over the rows of x (timm's nn.Linear layout, W is (Out, In)).
// The patch embedding, QKV, the projections and the MLP are all this op. The forward writes the
// bias (or, with write_mode::accumulate, adds it; or linear_forward_residual writes residual +
// bias) and the GEMM then adds the product (beta = 1); in backward the residual gradient needs
// no copy.
//
//   x (..., In)   W (Out, In)   b (Out)   y (..., Out)
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "splitmask/backend/cpu/gemm.hpp"
#include "splitmask/core/config.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/ops/matmul.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

/// y = x W^T + b, or y += x W^T + b with write_mode::accumulate.
template <class Y, class X, class W, class Bias>
void linear_forward(Y&& y, const X& x, const W& w, const Bias& b,
                    write_mode mode = write_mode::overwrite) {
  // The bias first, then the GEMM adds its product (beta = 1): that spares OpenBLAS's pass that
  // zeroes C for beta = 0 and a pass that adds the bias afterwards.
  auto y_rows = as_rows(y);
  if (mode == write_mode::accumulate) {
    y_rows = y_rows + b.view();
  } else {
    y_rows = b.view();  // broadcast over the rows
  }
  matmul(y_rows, as_rows(x), transposed(w), 1, 1);
}

/// y = residual + x W^T + b: a linear layer that ends in a residual add, in one pass besides
/// the GEMM.
template <class Y, class R, class X, class W, class Bias>
void linear_forward_residual(Y&& y, const R& residual, const X& x, const W& w, const Bias& b) {
  auto y_rows = as_rows(y);
  y_rows = as_rows(residual) + b.view();
  matmul(y_rows, as_rows(x), transposed(w), 1, 1);
}

/// dx = dy W (written, or added with write_mode::accumulate).
template <class DX, class DY, class W>
void linear_backward_input(DX&& dx, const DY& dy, const W& w,
                           write_mode mode = write_mode::overwrite) {
  auto dx_rows = as_rows(dx);
  matmul(dx_rows, as_rows(dy), w, 1, mode == write_mode::accumulate ? 1 : 0);
}

namespace detail {
// The host loop of add_column_sums, on the row length at run time (one copy for every length).
template <class T>
SPLITMASK_KERNEL void add_column_sums_cpu(T* out, const T* in, std::size_t rows, std::size_t L) {
  constexpr std::size_t chunk = 64 / sizeof(T) * 2;  // two cache lines of columns per task
  parallel_for((L + chunk - 1) / chunk, rows * chunk, [&](std::size_t j) {
    const std::size_t begin = j * chunk, end = std::min(L, begin + chunk);
    T acc[chunk] = {};
    for (std::size_t r = 0; r < rows; ++r) {
      const T* row = in + r * L;
      for (std::size_t c = begin; c < end; ++c) acc[c - begin] += row[c];
    }
    for (std::size_t c = begin; c < end; ++c) out[c] += acc[c - begin];
  });
}

/// sums += the column sums of a (M, L) matrix. On the host, threads split the columns (each
/// reads its slice of every row), so no thread-private partial sums are needed.
template <class S, class M>
void add_column_sums(S&& sums, const M& matrix) {
  const auto views = views_on_one_device(sums, matrix);
  views([&](auto dev, auto s, auto m) {
    using Device = decltype(dev);
    using T = typename decltype(s)::value_type;
    constexpr std::size_t L = decltype(m)::extents_type::last;
    static_assert(decltype(s)::extents_type::static_size == L,
                  "splitmask: the sums have another length than the rows");
    if constexpr (!std::is_same_v<Device, device::cpu>) {
      device_ops<Device>::template add_column_sums<T>(s.data(), m.data(), m.extents().leading(), L);
    } else {
      add_column_sums_cpu<T>(s.data(), m.data(), m.extents().leading(), L);
    }
  });
}
}  // namespace detail

/// dW += dy^T x, db += the sum of dy's rows.
template <class DW, class DB, class DY, class X>
void linear_backward_params(DW&& dw, DB&& db, const DY& dy, const X& x) {
  const auto dy_rows = as_rows(dy);
  matmul(dw, transposed(dy_rows), as_rows(x), 1, 1);
  detail::add_column_sums(db, dy_rows);
}

/// Both gradients of linear_forward: dx (written or accumulated), dW and db (accumulated).
/// The parameters' come first, so dx may be x itself (its memory reused once x is read).
template <class DX, class DW, class DB, class DY, class X, class W>
void linear_backward(DX&& dx, DW&& dw, DB&& db, const DY& dy, const X& x, const W& w,
                     write_mode mode = write_mode::overwrite) {
  linear_backward_params(dw, db, dy, x);
  linear_backward_input(dx, dy, w, mode);
}

}  // namespace splitmask
