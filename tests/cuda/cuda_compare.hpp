// Comparing the CUDA path with the CPU path: a result (on the device or the host) against a host
// reference computed by the same op on the CPU, element by element with
//   |got - ref| <= atol + rtol * |ref|,
// reporting the worst element (its index, both values, the allowance) rather than a sum; exact
// equality for integer results and copies; and relative norms of differences for whole models.
// Include after <splitmask/cuda.hpp> (device tensors are copied to the host here).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "splitmask/core/device.hpp"
#include "splitmask/tensor/tensor.hpp"

namespace splitmask::testing {

/// The elements of a tensor or view on any device, as a host vector of doubles.
template <class X>
std::vector<double> host_doubles(const X& x) {
  const auto v = x.view();
  const auto host = to_device<device::cpu>(v);
  std::vector<double> out(host.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(host.data()[i]);
  return out;
}

/// The elements of a tensor or view on any device, in their own type, on the host.
template <class X>
auto host_copy(const X& x) {
  const auto v = x.view();
  const auto host = to_device<device::cpu>(v);
  using V = typename decltype(v)::value_type;
  return std::vector<V>(host.data(), host.data() + host.size());
}

/// max |x| over the elements of a tensor or view on any device (0 when empty).
template <class X>
double max_abs(const X& x) {
  double m = 0;
  for (const double v : host_doubles(x)) m = std::max(m, std::abs(v));
  return m;
}

/// The result of an element-wise comparison: the worst element is the one that exceeds its
/// allowance atol + rtol·|ref| the most (or comes closest to it when all are within).
struct close_result {
  std::string what;
  bool ok = true;
  std::size_t count = 0;
  std::size_t got_count = 0;   // elements of got (differs from count: a size mismatch)
  std::size_t violations = 0;  // elements outside their allowance
  std::size_t worst_index = 0;
  double got = 0, ref = 0, allowed = 0;
  double worst_excess = -std::numeric_limits<double>::infinity();
  double max_ref = 0;  // max |ref|, to judge atol
  double atol = 0, rtol = 0;

  std::string describe() const {
    std::ostringstream s;
    s.precision(9);
    s << what << ": ";
    if (got_count != count) {
      s << "got " << got_count << " elements, the reference has " << count;
      return s.str();
    }
    s << (ok ? "within" : "OUTSIDE") << " |gpu - cpu| <= " << atol << " + " << rtol
      << "·|cpu| over " << count << " elements (" << violations << " outside; max |cpu| " << max_ref
      << "); worst at index " << worst_index << ": gpu " << got << ", cpu " << ref << ", |diff| "
      << std::abs(got - ref) << ", allowed " << allowed;
    return s.str();
  }
};

/// Compares `got` (a tensor or view on any device) with `ref` (a tensor or view on any device,
/// normally the host op's result). NaN matches only NaN; an infinity only the same infinity.
template <class Got, class Ref>
close_result compare_close(const std::string& what, const Got& got, const Ref& ref, double atol,
                           double rtol) {
  const std::vector<double> g = host_doubles(got);
  const std::vector<double> r = host_doubles(ref);
  close_result c;
  c.what = what;
  c.count = r.size();
  c.atol = atol;
  c.rtol = rtol;
  c.got_count = g.size();
  if (g.size() != r.size()) {
    c.ok = false;
    return c;
  }
  for (std::size_t i = 0; i < r.size(); ++i) {
    const double gi = g[i], ri = r[i];
    if (std::isfinite(ri)) c.max_ref = std::max(c.max_ref, std::abs(ri));
    const double allowed = atol + rtol * (std::isfinite(ri) ? std::abs(ri) : 0.0);
    double excess;
    if (gi == ri || (std::isnan(gi) && std::isnan(ri))) {
      excess = -allowed;
    } else if (!std::isfinite(gi) || !std::isfinite(ri)) {
      excess = std::numeric_limits<double>::infinity();
    } else {
      excess = std::abs(gi - ri) - allowed;
    }
    if (excess > 0) ++c.violations;
    if (excess > c.worst_excess) {
      c.worst_excess = excess;
      c.worst_index = i;
      c.got = gi;
      c.ref = ri;
      c.allowed = allowed;
    }
  }
  c.ok = c.violations == 0;
  return c;
}

/// Exact equality (copies, integer results, bit-for-bit claims): the first differing element.
struct equal_result {
  std::string what;
  bool ok = true;
  std::size_t count = 0, got_count = 0, differing = 0, first = 0;
  double got = 0, ref = 0;

  std::string describe() const {
    std::ostringstream s;
    s.precision(9);
    s << what << ": ";
    if (got_count != count) {
      s << "got " << got_count << " elements, the reference has " << count;
    } else if (ok) {
      s << "all " << count << " elements equal";
    } else {
      s << differing << " of " << count << " elements differ; the first at index " << first
        << ": gpu " << got << ", cpu " << ref;
    }
    return s.str();
  }
};

template <class Got, class Ref>
equal_result compare_equal(const std::string& what, const Got& got, const Ref& ref) {
  const auto g = host_copy(got);
  const auto r = host_copy(ref);
  equal_result e;
  e.what = what;
  e.count = r.size();
  e.got_count = g.size();
  if (g.size() != r.size()) {
    e.ok = false;
    return e;
  }
  for (std::size_t i = 0; i < r.size(); ++i) {
    // Equal values, or the same bits (NaN payloads included).
    if (g[i] == r[i] || std::memcmp(&g[i], &r[i], sizeof(g[i])) == 0) continue;
    if (e.differing++ == 0) {
      e.first = i;
      e.got = static_cast<double>(g[i]);
      e.ref = static_cast<double>(r[i]);
    }
  }
  e.ok = e.differing == 0;
  return e;
}

/// ‖got - ref‖ / ‖ref‖ over n values at got and ref (host pointers), in double.
inline double relative_norm_error(const double* got, const double* ref, std::size_t n) {
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < n; ++i) {
    diff += (got[i] - ref[i]) * (got[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  if (norm == 0) return diff == 0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(diff / norm);
}

/// |got - ref| / |ref| (|got - ref| for ref 0).
inline double relative_error(double got, double ref) {
  const double d = std::abs(got - ref);
  return ref == 0 ? d : d / std::abs(ref);
}

}  // namespace splitmask::testing

/// CHECKs that `got` is within atol + rtol·|ref| of `ref` everywhere; the message names the worst
/// element.
#define SPLITMASK_CHECK_CLOSE(what, got, ref, atol, rtol)                          \
  do {                                                                             \
    const auto splitmask_close_ =                                                  \
        ::splitmask::testing::compare_close((what), (got), (ref), (atol), (rtol)); \
    CHECK_MESSAGE(splitmask_close_.ok, splitmask_close_.describe());               \
  } while (0)

/// CHECKs that `got` equals `ref` element for element; the message names the first difference.
#define SPLITMASK_CHECK_EQUAL(what, got, ref)                                                \
  do {                                                                                       \
    const auto splitmask_equal_ = ::splitmask::testing::compare_equal((what), (got), (ref)); \
    CHECK_MESSAGE(splitmask_equal_.ok, splitmask_equal_.describe());                         \
  } while (0)
