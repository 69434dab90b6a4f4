// matmul: C = alpha * op(A) * op(B) + beta * C, a named, eager matrix product.
// Products are never hidden behind an operator: they evaluate their operands and call a GEMM
// (Eigen on the CPU, cuBLAS on CUDA). Shapes are checked at compile time where they are static.
//
//   matmul(y, x, transposed(w));            // (M, K) x (N, K)^T -> (M, N): a linear layer
//   matmul(dw, transposed(dy), x, 1, 1);    // accumulate a weight gradient
//   matmul(s, q, transposed(k));            // rank 3: one product per leading index (heads)
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

#include "splitmask/core/backend.hpp"
#include "splitmask/core/device.hpp"
#include "splitmask/core/error.hpp"
#include "splitmask/core/extents.hpp"
#include "splitmask/ops/common.hpp"
#include "splitmask/tensor/tensor_view.hpp"

namespace splitmask {

/// An operand of matmul read transposed.
template <class View>
struct transposed_operand {
  View view;
};

/// Marks `x` (a tensor or view) to be read transposed by matmul.
template <class X>
auto transposed(const X& x) {
  return transposed_operand<decltype(x.view())>{x.view()};
}

namespace detail {
template <class X>
struct matmul_operand {
  using view_type = std::decay_t<decltype(std::declval<const X&>().view())>;
  static constexpr bool transposed = false;
  static view_type view(const X& x) { return x.view(); }
};
template <class V>
struct matmul_operand<transposed_operand<V>> {
  using view_type = V;
  static constexpr bool transposed = true;
  static view_type view(const transposed_operand<V>& x) { return x.view; }
};

// Rows and columns of op(X) for a stored shape E, as declared (dynamic when run-time).
template <class E, bool Transposed>
struct op_shape {
  static constexpr std::size_t rows = E::static_extent(E::rank - (Transposed ? 1 : 2));
  static constexpr std::size_t cols = E::static_extent(E::rank - (Transposed ? 2 : 1));
  template <class V>
  static std::size_t rows_of(const V& v) {
    return v.extents().extent(E::rank - (Transposed ? 1 : 2));
  }
  template <class V>
  static std::size_t cols_of(const V& v) {
    return v.extents().extent(E::rank - (Transposed ? 2 : 1));
  }
};

constexpr bool extents_agree(std::size_t a, std::size_t b) {
  return a == dynamic || b == dynamic || a == b;
}

template <class C>
using matmul_value_t = typename std::decay_t<decltype(std::declval<C&>().view())>::value_type;

// True when [a, a + an) and [b, b + bn) (element counts of T) share memory.
template <class T, class U>
bool overlaps(const T* a, std::size_t an, const U* b, std::size_t bn) {
  const char* pa = reinterpret_cast<const char*>(a);
  const char* pb = reinterpret_cast<const char*>(b);
  return an != 0 && bn != 0 && pa < pb + bn * sizeof(U) && pb < pa + an * sizeof(T);
}

// The run-time part of matmul, one copy per element type and device: refuses C sharing memory
// with A or B, handles empty products, and calls the device's GEMM.
template <class Device, class T>
void run_matmul(const gemm_args<T>& g, std::size_t c_size, std::size_t a_size, std::size_t b_size) {
  if (overlaps(g.c, c_size, g.a, a_size) || overlaps(g.c, c_size, g.b, b_size))
    throw shape_error(
        "splitmask::matmul: C shares memory with A or B; write the product to another tensor");
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.k == 0) {  // an empty sum: C = beta * C (BLAS rejects leading dimensions of 0)
    tensor_view<T, extents<dynamic>, Device> c(g.c, extents<dynamic>(c_size));
    if (g.beta == T(0)) {
      c = T(0);
    } else {
      c = c * g.beta;
    }
    return;
  }
  gemm_backend<Device>::run(g);
}
}  // namespace detail

/// C = alpha * op(A) * op(B) + beta * C. Rank 2: one product; rank 3: one product per index of
/// the leading axis. With beta == 0, C is not read (NaNs in it are overwritten). Throws
/// shape_error when run-time extents disagree or C shares memory with A or B.
template <class C, class A, class B>
void matmul(C&& c, const A& a, const B& b, detail::matmul_value_t<C> alpha = 1,
            detail::matmul_value_t<C> beta = 0) {
  using OA = detail::matmul_operand<A>;
  using OB = detail::matmul_operand<B>;
  const auto views = detail::views_on_one_device(c, OA::view(a), OB::view(b));
  views([&](auto dev, auto vc, auto va, auto vb) {
    using Device = decltype(dev);
    using VC = decltype(vc);
    using EA = typename decltype(va)::extents_type;
    using EB = typename decltype(vb)::extents_type;
    using EC = typename VC::extents_type;
    using T = typename VC::value_type;
    using SA = detail::op_shape<EA, OA::transposed>;
    using SB = detail::op_shape<EB, OB::transposed>;
    using SC = detail::op_shape<EC, false>;
    constexpr std::size_t rank = EC::rank;

    static_assert(!std::is_const_v<typename VC::element_type>, "splitmask::matmul: C is read-only");
    static_assert(std::is_floating_point_v<T>, "splitmask::matmul: products of float or double");
    static_assert(std::is_same_v<typename decltype(va)::value_type, T> &&
                      std::is_same_v<typename decltype(vb)::value_type, T>,
                  "splitmask::matmul: A, B and C must have the same element type");
    static_assert((rank == 2 || rank == 3) && EA::rank == rank && EB::rank == rank,
                  "splitmask::matmul: A, B and C are all matrices (rank 2) or all batches of "
                  "matrices (rank 3)");
    static_assert(detail::extents_agree(SC::rows, SA::rows),
                  "splitmask::matmul: C has another number of rows than op(A)");
    static_assert(detail::extents_agree(SC::cols, SB::cols),
                  "splitmask::matmul: C has another number of columns than op(B)");
    static_assert(detail::extents_agree(SA::cols, SB::rows),
                  "splitmask::matmul: the inner extents of op(A) and op(B) differ");
    static_assert(rank == 2 || (detail::extents_agree(EA::static_extent(0), EC::static_extent(0)) &&
                                detail::extents_agree(EB::static_extent(0), EC::static_extent(0))),
                  "splitmask::matmul: A, B and C hold different numbers of matrices");

    gemm_args<T> g;
    g.transpose_a = OA::transposed;
    g.transpose_b = OB::transposed;
    g.m = SC::rows_of(vc);
    g.n = SC::cols_of(vc);
    g.k = SA::cols_of(va);
    g.alpha = alpha;
    g.beta = beta;
    g.a = va.data();
    g.b = vb.data();
    g.c = vc.data();
    g.batch = rank == 3 ? vc.batch() : 1;
    const bool batches_agree = rank == 2 || (va.batch() == g.batch && vb.batch() == g.batch);
    if (SA::rows_of(va) != g.m || SB::cols_of(vb) != g.n || SB::rows_of(vb) != g.k ||
        !batches_agree) {
      throw shape_error(std::string("splitmask::matmul: shapes do not agree: C ") +
                        to_string(vc.extents()) + ", A" + (OA::transposed ? "^T " : " ") +
                        to_string(va.extents()) + ", B" + (OB::transposed ? "^T " : " ") +
                        to_string(vb.extents()));
    }
    detail::run_matmul<Device>(g, vc.size(), va.size(), vb.size());
  });
}

}  // namespace splitmask
