// Compile-time shapes with at most one run-time extent, the leading one (the batch).
// Every size the model config fixes is a constant the compiler sees; only the batch is a number
// known at run time.
//
//   extents<dynamic, 49, 192>   a batch of 49 x 192 token matrices: (B, N, D)
//   extents<192>                a bias row: (D)
#pragma once

#include <cstddef>
#include <string>
#include <type_traits>

#include "splitmask/core/config.hpp"
#include "splitmask/core/error.hpp"

namespace splitmask {

/// Marks the run-time extent. Only the leading extent may be dynamic.
inline constexpr std::size_t dynamic = static_cast<std::size_t>(-1);

namespace detail {

// Storage of the leading extent: nothing when it is static, one number when it is dynamic.
template <std::size_t First>
struct leading_extent {
  SPLITMASK_HD static constexpr std::size_t value() noexcept { return First; }
};

template <>
struct leading_extent<dynamic> {
  std::size_t batch = 0;
  SPLITMASK_HD constexpr std::size_t value() const noexcept { return batch; }
};

template <std::size_t... E>
constexpr std::size_t product() noexcept {
  return (std::size_t{1} * ... * E);
}

template <std::size_t... E>
constexpr std::size_t nth(std::size_t i) noexcept {
  const std::size_t all[] = {E...};
  return all[i];
}

}  // namespace detail

template <std::size_t First, std::size_t... Rest>
class extents : detail::leading_extent<First> {
  static_assert(((Rest != dynamic) && ...),
                "splitmask::extents: only the leading extent (the batch) may be `dynamic`; "
                "make the other extents compile-time constants");
  static_assert(First != 0 && ((Rest != 0) && ...),
                "splitmask::extents: compile-time extents must be positive");

 public:
  /// Number of axes.
  static constexpr std::size_t rank = 1 + sizeof...(Rest);
  /// True when no extent is dynamic.
  static constexpr bool is_static = First != dynamic;
  /// Elements per index of the leading axis: the product of all extents but the first.
  static constexpr std::size_t inner_size = detail::product<Rest...>();
  /// Extent of axis `i` as declared (`dynamic` for a run-time batch).
  static constexpr std::size_t static_extent(std::size_t i) noexcept {
    return detail::nth<First, Rest...>(i);
  }

  /// The last extent (dynamic only for a rank-1 dynamic shape).
  static constexpr std::size_t last = detail::nth<First, Rest...>(rank - 1);
  /// Length of one row of the evaluation loop (the last axis); a rank-1 dynamic shape is
  /// evaluated as rows of one element.
  static constexpr std::size_t row_length = last == dynamic ? 1 : last;
  /// Total number of elements when static, else `dynamic`.
  static constexpr std::size_t static_size = is_static ? First * inner_size : dynamic;

  constexpr extents() noexcept = default;

  /// Builds the extents from the leading extent. For a static shape `leading` must equal the
  /// declared extent (this lets generic code write `Extents(batch)` for either kind).
  constexpr explicit extents(std::size_t leading) {
    if constexpr (is_static) {
      if (leading != First) fail_static_leading(leading);
    } else {
      this->batch = leading;
    }
  }

  /// The leading extent: the batch for a dynamic shape.
  SPLITMASK_HD constexpr std::size_t leading() const noexcept { return this->value(); }
  /// Extent of axis `i`.
  constexpr std::size_t extent(std::size_t i) const noexcept {
    return i == 0 ? leading() : static_extent(i);
  }
  /// Number of elements.
  SPLITMASK_HD constexpr std::size_t size() const noexcept { return leading() * inner_size; }
  /// Number of rows of length `row_length`.
  SPLITMASK_HD constexpr std::size_t rows() const noexcept { return size() / row_length; }

  friend constexpr bool operator==(const extents& a, const extents& b) noexcept {
    return a.leading() == b.leading();
  }
  friend constexpr bool operator!=(const extents& a, const extents& b) noexcept {
    return !(a == b);
  }

 private:
  [[noreturn]] static void fail_static_leading(std::size_t leading) {
    throw shape_error("splitmask::extents: leading extent " + std::to_string(leading) +
                      " given for a shape whose leading extent is fixed at " +
                      std::to_string(First));
  }
};

template <class T>
struct is_extents : std::false_type {};
template <std::size_t... E>
struct is_extents<extents<E...>> : std::true_type {};
template <class T>
inline constexpr bool is_extents_v = is_extents<T>::value;

namespace detail {
// One copy for every shape: error messages are cold code, instantiated per shape otherwise.
inline std::string shape_string(const std::size_t* dims, std::size_t rank) {
  std::string s = "(";
  for (std::size_t i = 0; i < rank; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + ")";
}
}  // namespace detail

/// "(32, 49, 192)": the shape as error messages print it.
template <std::size_t... E>
std::string to_string(const extents<E...>& e) {
  constexpr std::size_t rank = extents<E...>::rank;
  std::size_t dims[rank > 0 ? rank : 1] = {};
  for (std::size_t i = 0; i < rank; ++i) dims[i] = e.extent(i);
  return detail::shape_string(dims, rank);
}

// ---- Shape arithmetic on extents types --------------------------------------------------------

namespace detail {
template <class E>
struct drop_leading;
template <std::size_t F, std::size_t S, std::size_t... R>
struct drop_leading<extents<F, S, R...>> {
  using type = extents<S, R...>;
};

template <class E, std::size_t NewLeading>
struct with_leading;
template <std::size_t F, std::size_t... R, std::size_t NewLeading>
struct with_leading<extents<F, R...>, NewLeading> {
  using type = extents<NewLeading, R...>;
};

// Replaces the last extent: walks the pack, keeping the extents seen so far in Acc.
template <std::size_t... E>
struct extents_pack {};
template <class Pack, std::size_t NewLast, std::size_t... Acc>
struct with_last;
template <std::size_t L, std::size_t NewLast, std::size_t... Acc>
struct with_last<extents_pack<L>, NewLast, Acc...> {
  using type = extents<Acc..., NewLast>;
};
template <std::size_t A, std::size_t B, std::size_t... R, std::size_t NewLast, std::size_t... Acc>
struct with_last<extents_pack<A, B, R...>, NewLast, Acc...> {
  using type = typename with_last<extents_pack<B, R...>, NewLast, Acc..., A>::type;
};
template <class E>
struct as_pack;
template <std::size_t... E>
struct as_pack<extents<E...>> {
  using type = extents_pack<E...>;
};
}  // namespace detail

/// (B, N, D) -> (N, D): the shape of one item of the leading axis. Needs rank >= 2.
template <class E>
using drop_leading_t = typename detail::drop_leading<E>::type;
/// (B, N, D) -> (L, N, D).
template <class E, std::size_t L>
using with_leading_t = typename detail::with_leading<E, L>::type;
/// (B, N, D) -> (B, N, L): a row reduction's shape is with_last_t<E, 1>.
template <class E, std::size_t L>
using with_last_t = typename detail::with_last<typename detail::as_pack<E>::type, L>::type;

}  // namespace splitmask
