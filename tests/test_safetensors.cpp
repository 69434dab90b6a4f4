// safetensors and atomic_file: round trips of every dtype, the exact bytes of the format, a
// hostile corpus the reader must reject (never crash), atomic replacement, and a writer killed
// mid-write (SIGKILL) that must leave one complete version behind.
#include <doctest/doctest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "splitmask/io/atomic_file.hpp"
#include "splitmask/io/safetensors.hpp"

namespace {

using namespace splitmask;
namespace fs = std::filesystem;

// A fresh directory under the system's temporary directory, removed with its content.
struct temp_dir {
  std::string path;
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "splitmask-st-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ignored;
    ::chmod(path.c_str(), 0700);
    fs::remove_all(path, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
};

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::vector<std::uint8_t> read_bytes(const std::string& path) {
  const std::string text = read_text(path);
  return std::vector<std::uint8_t>(text.begin(), text.end());
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The message of the file_error `f` throws ("<no file_error>" when it throws none); any other
// exception escapes and fails the test.
template <class F>
std::string file_error_of(F&& f) {
  try {
    f();
  } catch (const file_error& e) {
    return e.what();
  }
  return "<no file_error>";
}

// A file of `length` (the 8-byte word), `header` and `data` zero bytes.
std::vector<std::uint8_t> raw_file(std::uint64_t length, const std::string& header,
                                   std::size_t data) {
  // Sized once and filled in place (GCC 12 at -O3 warns falsely on insert() after 8 bytes).
  std::vector<std::uint8_t> bytes(8 + header.size() + data, 0);
  for (std::size_t i = 0; i < 8; ++i) bytes[i] = std::uint8_t(length >> (8 * i));
  std::copy(header.begin(), header.end(), bytes.begin() + 8);
  return bytes;
}

// A well-formed frame around `header`, followed by `data` zero bytes.
std::vector<std::uint8_t> st_file(const std::string& header, std::size_t data) {
  return raw_file(header.size(), header, data);
}

// Reads every tensor of `r` with its own dtype; returns the number of elements read.
std::size_t read_all(const safetensors_reader& r) {
  std::size_t n = 0;
  for (const std::string& name : r.names()) {
    switch (r.entry(name).type) {
      case scalar_type::f32:
        n += r.read<float>(name).size();
        break;
      case scalar_type::f64:
        n += r.read<double>(name).size();
        break;
      case scalar_type::i32:
        n += r.read<std::int32_t>(name).size();
        break;
      case scalar_type::i64:
        n += r.read<std::int64_t>(name).size();
        break;
      case scalar_type::u8:
        n += r.read<std::uint8_t>(name).size();
        break;
    }
  }
  return n;
}

// ---- round trips and the format -------------------------------------------------------------

TEST_CASE("safetensors: round trip of every dtype, a 0-d scalar, empty tensors and metadata") {
  temp_dir dir;
  const std::string path = dir.path + "/model.safetensors";

  // "ids" has 5 bytes, so the tensors after it are unaligned in the data buffer.
  const std::vector<std::uint8_t> ids = {1, 2, 3, 250, 255};  // (5)
  const double scale = -0.125;                                // ()
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float tiny = std::numeric_limits<float>::denorm_min();
  const std::vector<float> w = {1.5f, -0.0f, inf, nan, tiny, 3.0e38f};  // (2, 3)
  const std::vector<std::int32_t> none;                                 // (0)
  const std::int64_t lo = std::numeric_limits<std::int64_t>::min();
  const std::int64_t hi = std::numeric_limits<std::int64_t>::max();
  const std::vector<std::int64_t> steps = {-1, hi, lo, 7};  // (4, 1)
  const std::vector<double> empty_3d;                       // (3, 0, 2)

  safetensors_writer writer;
  writer.add("ids", ids.data(), {5});
  writer.add("scale", &scale, {});
  writer.add("encoder.blocks.0.w", w.data(), {2, 3});
  writer.add("none", none.data(), {0});
  writer.add("steps", steps.data(), {4, 1});
  writer.add("empty_3d", empty_3d.data(), {3, 0, 2});
  writer.set_metadata("format", "pt");
  writer.set_metadata("note", "gr\xc3\xbc\xc3\x9f \"quoted\"\n");
  writer.set_metadata("format", "splitmask");  // replaces
  writer.write(path);
  CHECK(files_in(dir.path) == std::vector<std::string>{"model.safetensors"});

  const safetensors_reader r = safetensors_reader::open(path);
  CHECK(r.source() == path);
  CHECK(r.names() == std::vector<std::string>{"ids", "scale", "encoder.blocks.0.w", "none", "steps",
                                              "empty_3d"});
  CHECK(r.metadata() == std::map<std::string, std::string>{
                            {"format", "splitmask"}, {"note", "gr\xc3\xbc\xc3\x9f \"quoted\"\n"}});
  CHECK(r.contains("scale"));
  CHECK_FALSE(r.contains("missing"));

  const tensor_entry& e = r.entry("encoder.blocks.0.w");
  CHECK(e.name == "encoder.blocks.0.w");
  CHECK(e.type == scalar_type::f32);
  CHECK(e.shape == std::vector<std::uint64_t>{2, 3});
  CHECK(e.begin == 5 + 8);
  CHECK(e.end == 5 + 8 + 24);
  CHECK(r.entry("scale").shape.empty());
  CHECK(r.entry("none").begin == r.entry("none").end);

  CHECK(r.read<std::uint8_t>("ids") == ids);
  CHECK(r.read<double>("scale") == std::vector<double>{scale});
  double s = 0;
  r.read("scale", &s, {});
  CHECK(s == scale);
  std::vector<float> w2(6);
  r.read("encoder.blocks.0.w", w2.data(), {2, 3});
  CHECK(std::memcmp(w2.data(), w.data(), sizeof(float) * 6) == 0);  // bitwise: NaN, -0, denormal
  CHECK(std::signbit(w2[1]));
  CHECK(r.read<std::int32_t>("none").empty());
  r.read<std::int32_t>("none", nullptr, {0});
  CHECK(r.read<std::int64_t>("steps") == steps);
  CHECK(r.read<double>("empty_3d").empty());

  // Rewriting replaces the whole file.
  safetensors_writer small;
  const float one = 1.0f;
  small.add("one", &one, {1});
  small.write(path);
  const safetensors_reader r2 = safetensors_reader::open(path);
  CHECK(r2.names() == std::vector<std::string>{"one"});
  CHECK(r2.metadata().empty());
  CHECK(r2.read<float>("one") == std::vector<float>{1.0f});
}

TEST_CASE_TEMPLATE("safetensors: each dtype round-trips its extremes", T, float, double,
                   std::int32_t, std::int64_t, std::uint8_t) {
  temp_dir dir;
  const std::string path = dir.path + "/t.safetensors";
  const std::vector<T> values = {std::numeric_limits<T>::lowest(), T(0), T(1),
                                 std::numeric_limits<T>::max(), std::numeric_limits<T>::min()};
  safetensors_writer writer;
  writer.add("x", values.data(), {values.size()});
  writer.write(path);
  const safetensors_reader r = safetensors_reader::open(path);
  CHECK(r.entry("x").type == scalar_type_of<T>());
  CHECK(r.read<T>("x") == values);
}

TEST_CASE("safetensors: the file's bytes follow the spec") {
  temp_dir dir;
  const std::string path = dir.path + "/spec.safetensors";
  const float w[2] = {1.0f, -2.0f};
  const std::uint8_t b[3] = {7, 8, 9};
  safetensors_writer writer;
  writer.add("w", w, {2});
  writer.add("b", b, {1, 3});
  writer.set_metadata("k", "v");
  writer.write(path);

  const std::vector<std::uint8_t> bytes = read_bytes(path);
  const std::string json =
      R"({"__metadata__":{"k":"v"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"U8","shape":[1,3],"data_offsets":[8,11]}})";
  const std::size_t padded = (json.size() + 7) / 8 * 8;
  REQUIRE(bytes.size() == 8 + padded + 11);
  // The header length: 8 bytes, little-endian.
  std::uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = length << 8 | bytes[static_cast<std::size_t>(i)];
  CHECK(length == padded);
  CHECK(length % 8 == 0);
  // The JSON, padded with spaces.
  const std::string header(bytes.begin() + 8, bytes.begin() + 8 + static_cast<long>(padded));
  CHECK(header == json + std::string(padded - json.size(), ' '));
  // The data: 1.0f = 0x3f800000 and -2.0f = 0xc0000000 little-endian, then the bytes.
  const std::vector<std::uint8_t> data(bytes.begin() + 8 + static_cast<long>(padded), bytes.end());
  CHECK(data == std::vector<std::uint8_t>{0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 7, 8, 9});
}

TEST_CASE("safetensors: the reader takes hand-made files: any key order, no padding, {}") {
  // The data at offset 8 + 53: not aligned for the F64 tensor; keys in another order, extra keys.
  const std::string header =
      R"({"b":{"data_offsets":[4,12],"shape":[],"dtype":"F64","extra":[1,{"x":2}]},)"
      R"( "a":{"shape":[1],"dtype":"I32","data_offsets":[0,4]}})";
  std::vector<std::uint8_t> bytes = st_file(header, 12);
  const std::int32_t a = -5;
  const double b = 2.5;
  std::memcpy(bytes.data() + 8 + header.size(), &a, 4);
  std::memcpy(bytes.data() + 8 + header.size() + 4, &b, 8);
  const safetensors_reader r = safetensors_reader::parse(bytes, "hand-made");
  CHECK(r.names() == std::vector<std::string>{"a", "b"});
  CHECK(r.read<std::int32_t>("a") == std::vector<std::int32_t>{-5});
  CHECK(r.read<double>("b") == std::vector<double>{2.5});

  const safetensors_reader empty = safetensors_reader::parse(st_file("{}", 0), "empty");
  CHECK(empty.names().empty());
  CHECK(empty.metadata().empty());
  const safetensors_reader meta_only =
      safetensors_reader::parse(st_file(R"({"__metadata__":{}}   )", 0), "meta-only");
  CHECK(meta_only.names().empty());
}

TEST_CASE("safetensors: the writer refuses reserved, duplicate, null and overflowing tensors") {
  safetensors_writer writer;
  const float x[2] = {1, 2};
  writer.add("x", x, {2});
  CHECK(contains(file_error_of([&] { writer.add("x", x, {2}); }), "already added"));
  CHECK(contains(file_error_of([&] { writer.add("__metadata__", x, {2}); }), "reserved"));
  CHECK(contains(file_error_of([&] { writer.add<float>("null", nullptr, {2}); }), "null"));
  writer.add<float>("null but empty", nullptr, {2, 0});
  CHECK(contains(file_error_of([&] { writer.add("huge", x, {std::uint64_t(1) << 62}); }),
                 "overflows"));
  temp_dir dir;
  writer.add("bad utf-8 \xff", x, {2});
  const std::string message = file_error_of([&] { writer.write(dir.path + "/x.safetensors"); });
  CHECK(contains(message, "UTF-8"));
  CHECK(files_in(dir.path).empty());
}

// ---- a hostile corpus -----------------------------------------------------------------------

struct hostile {
  const char* what;
  std::vector<std::uint8_t> bytes;
  const char* expected;  // part of the message
};

std::vector<hostile> hostile_corpus() {
  const auto f32 = [](const std::string& name, const std::string& shape, std::uint64_t begin,
                      std::uint64_t end) {
    return "\"" + name + R"(":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":[)" +
           std::to_string(begin) + "," + std::to_string(end) + "]}";
  };
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  return {
      {"empty file", {}, "truncated"},
      {"5 bytes", {8, 0, 0, 0, 0}, "truncated"},
      {"7 bytes", {2, 0, 0, 0, 0, 0, 0}, "expected at least 8"},
      {"header length 2^63", raw_file(std::uint64_t(1) << 63, "{}", 0), "exceeds the limit"},
      {"header length 2^64-1", raw_file(~std::uint64_t(0), "{}", 0), "exceeds the limit"},
      {"header length beyond the file", raw_file(100, "{}", 10), "exceeds the file"},
      {"header length one past the file", raw_file(3, "{}", 0), "truncated"},
      {"empty header", st_file("", 0), "not valid JSON"},
      {"non-JSON header", st_file("hello, world", 0), "not valid JSON"},
      {"truncated JSON", st_file(R"({"a":{"dtype":"F32")", 0), "not valid JSON"},
      {"trailing garbage", st_file("{} x", 0), "not valid JSON"},
      {"invalid UTF-8", st_file("{\"\xff\xfe\":{}}", 0), "not valid JSON"},
      {"NUL in header", st_file(std::string("{}\0", 3), 0), "not valid JSON"},
      {"comment", st_file("{} // no", 0), "not valid JSON"},
      {"deep nesting", st_file(deep, 0), "nests deeper"},
      {"JSON array header", st_file("[1, 2]", 0), "is a JSON array, expected an object"},
      {"JSON string header", st_file(R"("F32")", 0), "is a JSON string, expected an object"},
      {"JSON null header", st_file("null", 0), "expected an object"},
      {"entry not an object", st_file(R"({"a":[0,4]})", 4), "expected an object with dtype"},
      {"missing dtype", st_file(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", 4),
       "dtype is missing"},
      {"dtype not a string", st_file(R"({"a":{"dtype":1,"shape":[1],"data_offsets":[0,4]}})", 4),
       "not a string"},
      {"unknown dtype", st_file(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", 4),
       "unsupported dtype 'BF16'"},
      {"lower-case dtype", st_file(R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4),
       "unsupported dtype"},
      {"missing shape", st_file(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", 4),
       "shape is missing"},
      {"shape not an array", st_file("{" + f32("a", "4", 0, 16) + "}", 16),
       "shape must be an array of non-negative integers"},
      {"negative shape", st_file("{" + f32("a", "[-1]", 0, 4) + "}", 4),
       "non-negative integers, found [-1]"},
      {"fractional shape", st_file("{" + f32("a", "[1.5]", 0, 4) + "}", 4),
       "non-negative integers"},
      {"string in shape", st_file("{" + f32("a", R"(["1"])", 0, 4) + "}", 4),
       "non-negative integers"},
      {"shape beyond 2^64", st_file("{" + f32("a", "[18446744073709551616]", 0, 4) + "}", 4),
       "non-negative integers"},
      {"element count overflows", st_file("{" + f32("a", "[4294967296,4294967296]", 0, 4) + "}", 4),
       "overflows"},
      {"byte size overflows", st_file("{" + f32("a", "[4611686018427387904]", 0, 4) + "}", 4),
       "overflows"},
      {"missing data_offsets", st_file(R"({"a":{"dtype":"F32","shape":[1]}})", 4),
       "data_offsets is missing"},
      {"data_offsets not an array",
       st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":4}})", 4),
       "two non-negative integers"},
      {"one offset", st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", 4),
       "two non-negative integers"},
      {"three offsets", st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8),
       "two non-negative integers"},
      {"negative offset", st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 4),
       "two non-negative integers"},
      {"fractional offset",
       st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4.0]}})", 4),
       "two non-negative integers"},
      {"begin > end", st_file("{" + f32("a", "[1]", 8, 4) + "}", 8), "begin > end"},
      {"end beyond the buffer", st_file("{" + f32("a", "[2]", 0, 8) + "}", 4),
       "beyond the data buffer of 4 bytes"},
      {"offsets near 2^64",
       st_file("{" + f32("a", "[1]", ~std::uint64_t(0) - 3, ~std::uint64_t(0)) + "}", 4),
       "beyond the data buffer"},
      {"size does not match the shape", st_file("{" + f32("a", "[2]", 0, 4) + "}", 4),
       "span 4 bytes, but dtype F32 and shape [2] need 8"},
      {"data cut short", st_file("{" + f32("a", "[4]", 0, 16) + "}", 15), "beyond the data"},
      {"overlapping tensors",
       st_file("{" + f32("a", "[2]", 0, 8) + "," + f32("b", "[2]", 4, 12) + "}", 12), "overlap"},
      {"the same range twice",
       st_file("{" + f32("a", "[2]", 0, 8) + "," + f32("b", "[2]", 0, 8) + "}", 8), "overlap"},
      {"empty tensor inside another",
       st_file("{" + f32("a", "[2]", 0, 8) + "," + f32("b", "[0]", 4, 4) + "}", 8), "overlap"},
      {"hole between tensors",
       st_file("{" + f32("a", "[1]", 0, 4) + "," + f32("b", "[1]", 8, 12) + "}", 12), "hole"},
      {"hole at the start", st_file("{" + f32("a", "[1]", 4, 8) + "}", 8), "hole"},
      {"trailing bytes", st_file("{" + f32("a", "[1]", 0, 4) + "}", 8), "at its end"},
      {"data without tensors", st_file("{}", 4), "hole"},
      {"duplicate key (the last wins)",
       st_file("{" + f32("a", "[1]", 0, 4) + "," + f32("a", "[1]", 4, 8) + "}", 8), "hole"},
      {"__metadata__ not an object", st_file(R"({"__metadata__":["k","v"]})", 0),
       "__metadata__ is a JSON array"},
      {"__metadata__ value a number", st_file(R"({"__metadata__":{"k":1}})", 0),
       "object of strings, but key 'k' holds a JSON number"},
      {"__metadata__ value null", st_file(R"({"__metadata__":{"k":null}})", 0),
       "object of strings"},
  };
}

TEST_CASE("safetensors: a hostile corpus is rejected with a file_error that says why") {
  for (const hostile& h : hostile_corpus()) {
    INFO("case: ", std::string(h.what));
    const std::string source = std::string("corpus/") + h.what;
    const std::string message =
        file_error_of([&] { (void)safetensors_reader::parse(h.bytes, source); });
    INFO("message: ", message);
    CHECK(contains(message, h.expected));
    CHECK(contains(message, "'" + source + "'"));
  }
}

TEST_CASE("safetensors: the limits are checked before anything is allocated") {
  safetensors_limits limits;
  limits.max_header_bytes = 16;
  CHECK(contains(file_error_of([&] {
                   (void)safetensors_reader::parse(st_file(R"({"__metadata__":{}})", 0), "l",
                                                   limits);
                 }),
                 "header length 19 exceeds the limit of 16"));
  limits = {};
  limits.max_file_bytes = 20;
  const std::string header =
      "{" + std::string(R"("a":{"dtype":"U8","shape":[20],)") + R"("data_offsets":[0,20]}})";
  CHECK(contains(
      file_error_of([&] { (void)safetensors_reader::parse(st_file(header, 20), "l", limits); }),
      "more than the limit of 20"));
  temp_dir dir;
  write_file_atomically(dir.path + "/big", std::string(64, ' '));
  CHECK(contains(file_error_of([&] { (void)safetensors_reader::open(dir.path + "/big", limits); }),
                 "64 bytes, more than the limit of 20"));
}

TEST_CASE("safetensors: read<T> checks the name, the dtype and the shape") {
  const std::string header = R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
                             R"("n":{"dtype":"I64","shape":[],"data_offsets":[24,32]}})";
  const safetensors_reader r = safetensors_reader::parse(st_file(header, 32), "model.st");
  std::vector<double> d(6);
  std::vector<float> f(6);
  struct misuse {
    const char* what;
    std::function<void()> action;
    const char* expected;
  };
  const std::vector<misuse> cases = {
      {"absent tensor", [&] { (void)r.entry("v"); }, "no tensor 'v'"},
      {"absent tensor, read", [&] { (void)r.read<float>("v"); }, "no tensor 'v'"},
      {"wrong dtype",
       [&] {
         r.read<double>("w", d.data(), {2, 3});
       },
       "tensor 'w' has dtype F32, expected F64"},
      {"wrong dtype, any shape", [&] { (void)r.read<std::int32_t>("n"); },
       "tensor 'n' has dtype I64, expected I32"},
      {"transposed shape",
       [&] {
         r.read<float>("w", f.data(), {3, 2});
       },
       "tensor 'w' has shape [2, 3], expected [3, 2]"},
      {"flattened shape", [&] { r.read<float>("w", f.data(), {6}); }, "expected [6]"},
      {"scalar read as [1]",
       [&] {
         std::int64_t x = 0;
         r.read<std::int64_t>("n", &x, {1});
       },
       "tensor 'n' has shape [], expected [1]"},
  };
  for (const misuse& m : cases) {
    INFO("case: ", std::string(m.what));
    const std::string message = file_error_of(m.action);
    INFO("message: ", message);
    CHECK(contains(message, m.expected));
    CHECK(contains(message, "'model.st'"));
  }
}

TEST_CASE("safetensors: every truncation and byte flip of a valid file is safe") {
  temp_dir dir;
  const std::string path = dir.path + "/small.safetensors";
  const float w[3] = {1, 2, 3};
  const std::int64_t s = 42;
  const std::uint8_t u[2] = {1, 2};
  safetensors_writer writer;
  writer.add("w", w, {3});
  writer.add("s", &s, {});
  writer.add("u", u, {2, 1});
  writer.set_metadata("epoch", "3");
  writer.write(path);
  const std::vector<std::uint8_t> valid = read_bytes(path);
  CHECK(read_all(safetensors_reader::parse(valid, "valid")) == 6);

  // Every strict prefix is rejected.
  for (std::size_t n = 0; n < valid.size(); ++n) {
    const std::vector<std::uint8_t> cut(valid.begin(), valid.begin() + static_cast<long>(n));
    INFO("prefix of ", n, " bytes");
    CHECK(file_error_of([&] { (void)safetensors_reader::parse(cut, "cut"); }) != "<no file_error>");
  }
  // Every byte changed to a few values: a file_error or a file whose every tensor reads.
  std::size_t accepted = 0;
  for (std::size_t i = 0; i < valid.size(); ++i) {
    for (std::uint8_t v : {std::uint8_t(0), std::uint8_t('0'), std::uint8_t('9'), std::uint8_t('"'),
                           std::uint8_t(']'), std::uint8_t(0xff)}) {
      std::vector<std::uint8_t> flipped = valid;
      flipped[i] = v;
      try {
        read_all(safetensors_reader::parse(flipped, "flipped"));
        ++accepted;
      } catch (const file_error&) {
      }
    }
  }
  CHECK(accepted > 0);  // at least the data bytes
}

TEST_CASE("safetensors_reader::open: a missing file, a directory") {
  temp_dir dir;
  std::string message = file_error_of([&] { (void)safetensors_reader::open(dir.path + "/no"); });
  CHECK(contains(message, "cannot open"));
  CHECK(contains(message, dir.path + "/no"));
  CHECK(contains(message, std::strerror(ENOENT)));
  message = file_error_of([&] { (void)safetensors_reader::open(dir.path); });
  CHECK(contains(message, "not a regular file"));
}

// ---- atomic writes --------------------------------------------------------------------------

TEST_CASE("atomic_file: commit replaces the file; without commit the old file stays") {
  temp_dir dir;
  const std::string path = dir.path + "/state";
  write_file_atomically(path, "old");
  CHECK(read_text(path) == "old");
  CHECK(files_in(dir.path) == std::vector<std::string>{"state"});

  {
    atomic_file file(path);
    file.write("new content", 11);
    CHECK(fs::exists(file.temporary_path()));
    CHECK(fs::path(file.temporary_path()).parent_path() == fs::path(path).parent_path());
    CHECK(read_text(path) == "old");
  }  // not committed
  CHECK(read_text(path) == "old");
  CHECK(files_in(dir.path) == std::vector<std::string>{"state"});

  CHECK_THROWS_AS(
      [&] {
        atomic_file file(path);
        file.write("half", 4);
        throw std::runtime_error("a failure while writing");
      }(),
      std::runtime_error);
  CHECK(read_text(path) == "old");
  CHECK(files_in(dir.path) == std::vector<std::string>{"state"});

  atomic_file file(path);
  file.write("new ", 4);
  file.write("content", 7);
  file.write(nullptr, 0);
  file.commit();
  CHECK(read_text(path) == "new content");
  CHECK(files_in(dir.path) == std::vector<std::string>{"state"});
  CHECK(contains(file_error_of([&] { file.commit(); }), "committed twice"));
  CHECK(contains(file_error_of([&] { file.write("x", 1); }), "after commit"));

  // A bare name lands in the working directory's listing: only check the parent is ".".
  CHECK(detail::parent_directory("name") == ".");
  CHECK(detail::parent_directory("/name") == "/");
  CHECK(detail::parent_directory("a/b/name") == "a/b");
}

TEST_CASE("atomic_file: a failing write throws file_error and leaves no temporary behind") {
  temp_dir dir;
  const float x = 1;
  safetensors_writer writer;
  writer.add("x", &x, {1});

  SUBCASE("missing directory") {
    const std::string path = dir.path + "/missing/model.safetensors";
    const std::string message = file_error_of([&] { writer.write(path); });
    CHECK(contains(message, path));
    CHECK(contains(message, std::strerror(ENOENT)));
    CHECK(contains(file_error_of([&] { write_file_atomically(path, "x"); }), "missing"));
  }
  SUBCASE("the directory is a file") {
    write_file_atomically(dir.path + "/file", "x");
    const std::string message = file_error_of([&] { writer.write(dir.path + "/file/m"); });
    CHECK(contains(message, std::strerror(ENOTDIR)));
  }
  SUBCASE("directory not writable") {
    if (::geteuid() == 0) {
      MESSAGE("running as root: permissions are not enforced, skipped");
    } else {
      const std::string sub = dir.path + "/ro";
      fs::create_directory(sub);
      ::chmod(sub.c_str(), 0500);
      const std::string message = file_error_of([&] { writer.write(sub + "/m"); });
      CHECK(contains(message, std::strerror(EACCES)));
      ::chmod(sub.c_str(), 0700);
      CHECK(files_in(sub).empty());
    }
  }
  SUBCASE("the target is a directory: the rename fails") {
    const std::string target = dir.path + "/target";
    fs::create_directory(target);
    write_file_atomically(target + "/inside", "x");
    const std::string message = file_error_of([&] { writer.write(target); });
    CHECK(contains(message, "cannot rename"));
    CHECK(contains(message, target));
    CHECK(fs::is_directory(target));
  }
  SUBCASE("a write fails midway (the file size limit, in a child process)") {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {  // Never returns to doctest: 0 when the failure was handled as it should.
      try {
        ::signal(SIGXFSZ, SIG_IGN);
        const rlimit limit{1000, 1000};
        ::setrlimit(RLIMIT_FSIZE, &limit);
        const std::vector<float> big(1000);
        safetensors_writer large;
        large.add("big", big.data(), {1000});
        const std::string message = file_error_of([&] { large.write(dir.path + "/m"); });
        const bool ok =
            contains(message, "cannot write") && contains(message, std::strerror(EFBIG));
        ::_exit(ok && files_in(dir.path).empty() ? 0 : 1);
      } catch (...) {
        ::_exit(2);
      }
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  // Whatever failed, nothing but what the subcase made is left in the directory.
  for (const std::string& name : files_in(dir.path)) CHECK(!contains(name, ".tmp-"));
}

// ---- a crash mid-write ----------------------------------------------------------------------

constexpr std::size_t crash_elements = std::size_t(8) << 20;  // 32 MB of F32

// Writes generation `g`: every element of "big", the scalar "generation" and the metadata.
void write_generation(const std::string& path, std::vector<float>& big, std::int64_t g) {
  std::fill(big.begin(), big.end(), static_cast<float>(g));
  safetensors_writer writer;
  writer.add("big", big.data(), {crash_elements});
  writer.add("generation", &g, {});
  writer.set_metadata("generation", std::to_string(g));
  writer.write(path);
}

// The generation the file holds, after checking that it holds one complete version.
std::int64_t check_complete(const std::string& path) {
  const safetensors_reader r = safetensors_reader::open(path);
  const std::int64_t g = r.read<std::int64_t>("generation").at(0);
  CHECK(r.metadata().at("generation") == std::to_string(g));
  const std::vector<float> big = r.read<float>("big");
  CHECK(big.size() == crash_elements);
  const float expected = static_cast<float>(g);
  CHECK(std::all_of(big.begin(), big.end(), [&](float v) { return v == expected; }));
  return g;
}

TEST_CASE("safetensors: a writer killed mid-write leaves one complete version") {
  temp_dir dir;
  const std::string path = dir.path + "/model.safetensors";
  {
    std::vector<float> big(crash_elements);
    write_generation(path, big, 0);
  }
  std::mt19937 rng(20240611);
  std::vector<std::int64_t> seen;
  for (int round = 0; round < 5; ++round) {
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {  // The child rewrites the file until killed; it never returns to doctest.
      try {
        std::vector<float> big(crash_elements);
        for (std::int64_t g = 1; g <= 1000; ++g)
          write_generation(path, big, (round + 1) * 1000 + g);
      } catch (...) {
        ::_exit(2);
      }
      ::_exit(0);
    }
    // Wait until the child has started a write: its temporary exists.
    const std::string temporary = "model.safetensors.tmp-" + std::to_string(child) + "-";
    const auto start = std::chrono::steady_clock::now();
    bool started = false, exited = false;
    int status = 0;
    while (!started && !exited &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
      for (const std::string& name : files_in(dir.path)) started |= name.rfind(temporary, 0) == 0;
      if (!started) {
        exited = ::waitpid(child, &status, WNOHANG) == child;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
    REQUIRE_MESSAGE(!exited, "the writer exited early with status ", status);
    CHECK(started);
    // Spread the kills over the first writes (one takes some 40 ms here): 0-9 ms, 15-24 ms, ...
    std::this_thread::sleep_for(
        std::chrono::milliseconds(15 * round + static_cast<int>(rng() % 10)));
    ::kill(child, SIGKILL);
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFSIGNALED(status));
    // A killed writer leaves at most its one temporary; the file is a complete version.
    std::size_t leftovers = 0;
    for (const std::string& name : files_in(dir.path)) {
      if (name == "model.safetensors") continue;
      CHECK(name.rfind(temporary, 0) == 0);
      ++leftovers;
      fs::remove(dir.path + "/" + name);
    }
    CHECK(leftovers <= 1);
    seen.push_back(check_complete(path));
  }
  std::string generations;
  for (std::int64_t g : seen) generations += " " + std::to_string(g);
  MESSAGE("generations found after each kill:", generations);
}

}  // namespace
