// Tensors and views on the host: storage, shapes, element access, slicing, reshaping, copies.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <splitmask/splitmask.hpp>
#include <string>
#include <utility>

using namespace splitmask;

TEST_CASE("tensors are zeroed, 64-byte aligned, and sized from their extents") {
  tensor<float, extents<dynamic, 49, 192>> t(3);
  CHECK(t.size() == 3 * 49 * 192);
  CHECK(t.batch() == 3);
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  for (std::size_t i = 0; i < t.size(); ++i) REQUIRE(t.data()[i] == 0.0f);

  tensor<double, extents<5, 7>> s;
  CHECK(s.size() == 35);
  CHECK(reinterpret_cast<std::uintptr_t>(s.data()) % 64 == 0);

  tensor<float, extents<dynamic, 4>> empty;
  CHECK(empty.empty());
  CHECK(empty.data() == nullptr);
  CHECK_THROWS_AS((tensor<float, extents<5, 7>>(6)), shape_error);
}

TEST_CASE("element access is row-major; [] selects along the leading axis") {
  tensor<int, extents<dynamic, 3, 4>> t(2);
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<int>(i);
  CHECK(t(0, 0, 0) == 0);
  CHECK(t(0, 1, 2) == 6);
  CHECK(t(1, 2, 3) == 23);
  auto item = t[1];  // (3, 4)
  static_assert(std::is_same_v<decltype(item)::extents_type, extents<3, 4>>);
  CHECK(item(0, 0) == 12);
  CHECK(item[2][3] == 23);
  item[0][1] = -1;
  CHECK(t(1, 0, 1) == -1);

  const auto& ct = t;
  static_assert(std::is_same_v<decltype(ct(0, 0, 0)), const int&>);
  static_assert(std::is_same_v<decltype(ct.view())::element_type, const int>);
}

TEST_CASE("slices and reshapes are views of the same memory, checked at run time") {
  tensor<float, extents<dynamic, 2, 3>> t(5);
  for (std::size_t i = 0; i < t.size(); ++i) t.data()[i] = float(i);
  auto s = t.slice(1, 3);
  CHECK(s.batch() == 3);
  CHECK(s(0, 0, 0) == 6.0f);
  CHECK(s.data() == t.data() + 6);
  CHECK_THROWS_AS(t.slice(3, 3), shape_error);
  CHECK_THROWS_AS(t.slice(6, 0), shape_error);
  CHECK(t.slice(5, 0).empty());

  auto rows = t.reshape<extents<dynamic, 3>>();  // (10, 3)
  CHECK(rows.batch() == 10);
  CHECK(rows(9, 2) == 29.0f);
  auto flat = t.reshape<extents<dynamic>>();
  CHECK(flat.batch() == 30);
  CHECK_THROWS_AS((t.reshape<extents<dynamic, 4>>()), shape_error);  // 30 is no multiple of 4
  auto fixed = t.reshape<extents<5, 6>>();
  CHECK(fixed(4, 5) == 29.0f);
  CHECK_THROWS_AS((t.reshape<extents<4, 6>>()), shape_error);
  try {
    t.reshape<extents<4, 6>>();
  } catch (const shape_error& e) {
    CHECK(std::string(e.what()).find("(5, 2, 3)") != std::string::npos);
  }
}

TEST_CASE("views write through; assigning a view copies elements") {
  tensor<float, extents<4, 3>> a, b;
  b = 2.0f;
  tensor_view<float, extents<4, 3>> va = a;
  va = b;
  CHECK(a(3, 2) == 2.0f);
  tensor_view<const float, extents<4, 3>> cv = a;  // mutable converts to read-only
  CHECK(cv(0, 0) == 2.0f);
  tensor_view<float, extents<4, 3>> alias(va);  // a second window, not a copy
  alias = 5.0f;
  CHECK(a(1, 1) == 5.0f);
}

TEST_CASE("clone, copy, move and resize") {
  tensor<float, extents<dynamic, 8>> a(3);
  a = uniform<float>(counter_rng(1), a.extents());
  auto b = a.clone();
  CHECK(b.data() != a.data());
  CHECK(std::equal(a.data(), a.data() + a.size(), b.data()));

  tensor<float, extents<dynamic, 8>> c(3);
  copy(c, a);
  CHECK(c(2, 7) == a(2, 7));
  tensor<float, extents<dynamic, 8>> wrong(4);
  CHECK_THROWS_AS(copy(wrong, a), shape_error);
  CHECK_THROWS_AS(copy(a.slice(1, 2), a.slice(0, 2)), shape_error);  // overlapping

  const float* p = a.data();
  tensor<float, extents<dynamic, 8>> moved(std::move(a));
  CHECK(moved.data() == p);
  CHECK(a.empty());  // NOLINT(bugprone-use-after-move): a moved-from tensor is empty

  moved.resize(3);
  CHECK(moved.data() == p);  // same batch: kept
  moved.resize(10);
  CHECK(moved.batch() == 10);
  CHECK(moved(9, 7) == 0.0f);

  CHECK_THROWS_AS(b = moved, shape_error);  // 3 vs 10 items: no silent reallocation
}

TEST_CASE("a moved-from tensor of static shape refuses to be read or written") {
  tensor<float, extents<4, 3>> a;
  a = 1.0f;
  tensor<float, extents<4, 3>> b(std::move(a));
  CHECK(b(3, 2) == 1.0f);
  CHECK(a.empty());  // NOLINT(bugprone-use-after-move)
  tensor<float, extents<4, 3>> c;
  CHECK_THROWS_AS(c = a + 1.0f, shape_error);  // NOLINT(bugprone-use-after-move)
  CHECK_THROWS_AS(a = 2.0f, shape_error);
  CHECK_THROWS_AS(copy(c, a), shape_error);
  a = std::move(b);  // moving a tensor in revives it
  CHECK(a(0, 0) == 1.0f);
}

TEST_CASE("swap exchanges windows; a view without memory refuses assignment") {
  tensor<float, extents<3>> a, b;
  a = 1.0f;
  b = 2.0f;
  tensor_view<float, extents<3>> va = a, vb = b;
  swap(va, vb);
  CHECK(va.data() == b.data());
  CHECK(a(0) == 1.0f);
  CHECK(b(0) == 2.0f);
  tensor_view<float, extents<3>> none;
  CHECK_THROWS_AS(none = 1.0f, shape_error);
}

TEST_CASE("to_string prints run-time extents") {
  CHECK(to_string(extents<dynamic, 49, 192>(32)) == "(32, 49, 192)");
  CHECK(to_string(extents<7>{}) == "(7)");
}
