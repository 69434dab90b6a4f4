// The data layer: IDX (raw and gzip), CIFAR-10/100 and image-folder readers against files the
// tests write, every bad-input error and its message, format detection, channel statistics,
// augmentation, and the background batch_loader (determinism, resume, epochs, errors).
#include <doctest/doctest.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "splitmask/data/augment.hpp"
#include "splitmask/data/batch_loader.hpp"
#include "splitmask/data/cifar.hpp"
#include "splitmask/data/dataset.hpp"
#include "splitmask/data/file_bytes.hpp"
#include "splitmask/data/idx.hpp"
#include "splitmask/data/image_folder.hpp"
#include "splitmask/data/image_set.hpp"
#include "splitmask/model/vit_config.hpp"

namespace {

using namespace splitmask;
namespace fs = std::filesystem;
using bytes = std::vector<std::uint8_t>;

// ---- Helpers -------------------------------------------------------------------------------

/// A fresh folder under the system's temp folder, removed with everything in it at the end.
struct temp_dir {
  fs::path path;
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "splitmask_data_XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  std::string operator/(const std::string& name) const { return (path / name).string(); }
  std::string str() const { return path.string(); }
};

void write_file(const std::string& path, const bytes& b) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  REQUIRE(out.good());
}

void write_text(const std::string& path, const std::string& text) {
  write_file(path, bytes(text.begin(), text.end()));
}

/// Writes `b` gzip-compressed with zlib's gzFile API.
void write_gz(const std::string& path, const bytes& b) {
  fs::create_directories(fs::path(path).parent_path());
  gzFile f = gzopen(path.c_str(), "wb");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, b.data(), static_cast<unsigned>(b.size())) == static_cast<int>(b.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

bytes gzip_bytes(const bytes& b) {
  temp_dir dir;
  write_gz(dir / "x.gz", b);
  std::ifstream in(dir / "x.gz", std::ios::binary);
  return bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// An IDX file of unsigned bytes.
bytes make_idx(const std::vector<std::uint32_t>& dims, const bytes& values) {
  bytes b = {0, 0, 0x08, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(d >> shift));
  b.insert(b.end(), values.begin(), values.end());
  return b;
}

bytes pattern_bytes(std::size_t n, std::size_t salt) {
  bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>((i * 7 + salt * 13) % 256);
  return b;
}

/// The message of the file_error `f` throws; fails the test when it throws none.
std::string file_error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const file_error& e) {
    return e.what();
  }
  FAIL("expected a splitmask::file_error");
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

/// n images of C x H x W with pseudo-random pixels and labels = image number.
image_set random_set(std::size_t n, std::size_t C, std::size_t H, std::size_t W,
                     std::uint64_t seed = 1) {
  image_set set;
  set.channels = C;
  set.height = H;
  set.width = W;
  set.source = "random_set";
  set.pixels.resize(n * C * H * W);
  const counter_rng rng(seed, 99);
  for (std::size_t i = 0; i < set.pixels.size(); ++i)
    set.pixels[i] = static_cast<std::uint8_t>(rng.bits(i).v[0] & 0xff);
  for (std::size_t i = 0; i < n; ++i) set.labels.push_back(static_cast<std::int32_t>(i));
  return set;
}

/// Writes an H x W image of `comp` channels (HWC) as PNG.
void write_png(const std::string& path, int W, int H, int comp, const bytes& hwc) {
  fs::create_directories(fs::path(path).parent_path());
  REQUIRE(stbi_write_png(path.c_str(), W, H, comp, hwc.data(), W * comp) != 0);
}

// ---- gzip ----------------------------------------------------------------------------------

TEST_CASE("file bytes: raw and gzip files, several gzip members, and every bad gzip") {
  temp_dir dir;
  const bytes data = pattern_bytes(100000, 3);
  write_file(dir / "raw", data);
  write_gz(dir / "packed.gz", data);
  CHECK(read_file_bytes(dir / "raw") == data);
  CHECK(read_file_bytes(dir / "packed.gz") == data);

  const bytes gz = gzip_bytes(data);
  CHECK(is_gzip(gz.data(), gz.size()));
  CHECK_FALSE(is_gzip(data.data(), data.size()));
  bytes two = gz;
  two.insert(two.end(), gz.begin(), gz.end());
  bytes twice = data;
  twice.insert(twice.end(), data.begin(), data.end());
  CHECK(gunzip(two.data(), two.size(), "two") == twice);

  SUBCASE("truncated") {
    const bytes cut(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() / 2));
    write_file(dir / "cut.gz", cut);
    const std::string m = file_error_message([&] { read_file_bytes(dir / "cut.gz"); });
    CHECK(contains(m, "cut.gz"));
    CHECK(contains(m, "truncated"));
    CHECK(contains(m, std::to_string(cut.size()) + " bytes"));
    const bytes magic_only = {0x1f, 0x8b};
    CHECK_THROWS_WITH_AS(gunzip(magic_only.data(), 2, "m"), doctest::Contains("truncated"),
                         file_error);
  }
  SUBCASE("corrupt: bad CRC, bad header flags, garbage after the stream") {
    bytes bad_crc = gz;
    bad_crc[gz.size() - 8] ^= 0xff;
    CHECK_THROWS_WITH_AS(gunzip(bad_crc.data(), bad_crc.size(), "crc.gz"),
                         doctest::Contains("crc.gz: corrupt compressed data"), file_error);
    bytes bad_flags = gz;
    bad_flags[3] = 0xe0;  // reserved flag bits
    CHECK_THROWS_WITH_AS(gunzip(bad_flags.data(), bad_flags.size(), "flags.gz"),
                         doctest::Contains("corrupt"), file_error);
    bytes garbage = gz;
    garbage.insert(garbage.end(), {1, 2, 3});
    CHECK_THROWS_WITH_AS(gunzip(garbage.data(), garbage.size(), "g.gz"),
                         doctest::Contains("found 3 other bytes"), file_error);
  }
  SUBCASE("the cap on the inflated size") {
    CHECK_THROWS_WITH_AS(gunzip(gz.data(), gz.size(), "big.gz", 1000),
                         doctest::Contains("more than 1000 bytes"), file_error);
    CHECK(gunzip(gz.data(), gz.size(), "exact.gz", data.size()) == data);
  }
  SUBCASE("a missing file") {
    const std::string m = file_error_message([&] { read_file_bytes(dir / "nope"); });
    CHECK(contains(m, "cannot open"));
    CHECK(contains(m, dir / "nope"));
  }
}

// ---- IDX -----------------------------------------------------------------------------------

TEST_CASE("idx: parse_idx reads dimensions and values; every malformed header is an error") {
  const bytes values = pattern_bytes(24, 1);
  const bytes good = make_idx({2, 3, 4}, values);
  const idx_array a = parse_idx(good.data(), good.size(), "good");
  CHECK(a.dims == std::vector<std::size_t>{2, 3, 4});
  CHECK(a.values == values);

  const auto message = [](const bytes& b) {
    return file_error_message([&] { parse_idx(b.data(), b.size(), "f.idx"); });
  };
  bytes wrong_magic = good;
  wrong_magic[0] = 0x12;
  CHECK(contains(message(wrong_magic),
                 "f.idx: wrong magic number: expected 00 00 08 <ndim>, "
                 "found 0x12 0x00 0x08 0x03"));
  bytes floats = good;
  floats[2] = 0x0D;
  CHECK(contains(message(floats), "found 0x0d (32-bit float)"));
  CHECK(contains(message({0, 0}), "found 2 bytes"));
  CHECK(contains(message({0, 0, 8, 0}), "found 0"));
  CHECK(contains(message({0, 0, 8, 3, 0, 0, 0, 2}), "header of 3 dimensions takes 16 bytes"));

  const bytes short_data(good.begin(), good.end() - 4);
  const std::string m = message(short_data);
  CHECK(contains(m, "truncated"));
  CHECK(contains(m, "promises 2 x 3 x 4 = 24 bytes of data"));
  CHECK(contains(m, "holds 20"));
  bytes trailing = good;
  trailing.insert(trailing.end(), {9, 9});
  CHECK(contains(message(trailing), "found 2 trailing bytes"));
  const bytes huge = make_idx({0xffffffffu, 0xffffffffu, 0xffffffffu}, {});
  CHECK(contains(message(huge), "more bytes than memory can address"));
  const bytes empty_dim = make_idx({0, 5}, {});
  CHECK(parse_idx(empty_dim.data(), empty_dim.size(), "e").values.empty());
  const bytes gz = gzip_bytes(good);
  CHECK(decode_idx(gz.data(), gz.size(), "gz").values == values);
}

TEST_CASE("idx: load_idx round trip, raw and gzip, train and test") {
  temp_dir dir;
  const bytes train_images = pattern_bytes(5 * 4 * 3, 2), test_images = pattern_bytes(2 * 12, 5);
  write_file(dir / "train-images-idx3-ubyte", make_idx({5, 4, 3}, train_images));
  write_file(dir / "train-labels-idx1-ubyte", make_idx({5}, {3, 1, 4, 1, 5}));
  write_gz(dir / "t10k-images-idx3-ubyte.gz", make_idx({2, 4, 3}, test_images));
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", make_idx({2}, {9, 2}));

  const image_set train = load_idx(dir.str(), "train");
  CHECK(train.size() == 5);
  CHECK(train.channels == 1);
  CHECK(train.height == 4);
  CHECK(train.width == 3);
  CHECK(train.pixels == train_images);
  CHECK(train.labels == std::vector<std::int32_t>{3, 1, 4, 1, 5});
  CHECK(train.classes.empty());
  CHECK(contains(train.source, "train-images-idx3-ubyte"));
  const image_set test = load_idx(dir.str(), "test");
  CHECK(test.size() == 2);
  CHECK(test.pixels == test_images);
  CHECK(test.labels == std::vector<std::int32_t>{9, 2});
  CHECK(load_idx(dir.str(), "t10k").labels == test.labels);
  CHECK(test.image(1)[0] == test_images[12]);

  temp_dir dotted;
  write_file(dotted / "train-images.idx3-ubyte", make_idx({5, 4, 3}, train_images));
  write_gz(dotted / "train-labels.idx1-ubyte.gz", make_idx({5}, {0, 1, 2, 3, 4}));
  CHECK(load_idx(dotted.str(), "train").pixels == train_images);
  CHECK_THROWS_AS(load_idx(dir.str(), "validation"), std::invalid_argument);
}

TEST_CASE("idx: missing files, count mismatch, wrong ranks, truncated and corrupt gzip") {
  temp_dir dir;
  std::string m = file_error_message([&] { load_idx(dir.str(), "train"); });
  CHECK(contains(m, "no train images in " + dir.str()));
  CHECK(contains(m, "train-images-idx3-ubyte, train-images-idx3-ubyte.gz"));

  write_file(dir / "train-images-idx3-ubyte", make_idx({3, 2, 2}, pattern_bytes(12, 0)));
  m = file_error_message([&] { load_idx(dir.str(), "train"); });
  CHECK(contains(m, "no train labels"));
  CHECK(contains(m, "train-labels-idx1-ubyte.gz"));

  write_file(dir / "train-labels-idx1-ubyte", make_idx({4}, {0, 1, 2, 3}));
  m = file_error_message([&] { load_idx(dir.str(), "train"); });
  CHECK(contains(m, "expected one label per image, found 3 images and 4 labels"));

  write_file(dir / "train-labels-idx1-ubyte", make_idx({3, 1}, {0, 1, 2}));
  CHECK(contains(file_error_message([&] { load_idx(dir.str(), "train"); }),
                 "expected labels of 1 dimension (n), found 2 (3 x 1)"));
  write_file(dir / "train-images-idx3-ubyte", make_idx({12}, pattern_bytes(12, 0)));
  CHECK(contains(file_error_message([&] { load_idx(dir.str(), "train"); }),
                 "expected images of 3 dimensions"));

  // A gzip images file cut short: the IDX bytes it inflates to are fine, the gzip is not.
  temp_dir gz_dir;
  const bytes gz = gzip_bytes(make_idx({3, 8, 8}, pattern_bytes(192, 4)));
  write_file(gz_dir / "t10k-images-idx3-ubyte.gz",
             bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(gz.size() - 10)));
  write_gz(gz_dir / "t10k-labels-idx1-ubyte.gz", make_idx({3}, {0, 1, 2}));
  m = file_error_message([&] { load_idx(gz_dir.str(), "test"); });
  CHECK(contains(m, "t10k-images-idx3-ubyte.gz"));
  CHECK(contains(m, "truncated"));
  // An IDX body cut short inside a valid gzip.
  write_gz(gz_dir / "t10k-images-idx3-ubyte.gz", make_idx({3, 8, 8}, pattern_bytes(150, 4)));
  m = file_error_message([&] { load_idx(gz_dir.str(), "test"); });
  CHECK(contains(m, "promises 3 x 8 x 8 = 192 bytes"));
  CHECK(contains(m, "holds 150"));
  // A corrupt gzip (its CRC damaged).
  bytes bad = gz;
  bad[bad.size() - 6] ^= 0x5a;
  write_file(gz_dir / "t10k-images-idx3-ubyte.gz", bad);
  CHECK(contains(file_error_message([&] { load_idx(gz_dir.str(), "test"); }),
                 "corrupt compressed data"));
  // Wrong magic in a raw file.
  temp_dir magic;
  write_file(magic / "train-images-idx3-ubyte", {'P', 'K', 3, 4, 0, 0, 0, 0});
  write_file(magic / "train-labels-idx1-ubyte", make_idx({1}, {0}));
  CHECK(
      contains(file_error_message([&] { load_idx(magic.str(), "train"); }), "wrong magic number"));
}

// ---- CIFAR ---------------------------------------------------------------------------------

/// `n` CIFAR records: label bytes from `labels(i)`, then 3072 pattern bytes salted by `salt + i`.
bytes cifar_records(std::size_t n, std::size_t salt,
                    const std::function<bytes(std::size_t)>& labels) {
  bytes b;
  for (std::size_t i = 0; i < n; ++i) {
    const bytes l = labels(i), image = pattern_bytes(3072, salt + i);
    b.insert(b.end(), l.begin(), l.end());
    b.insert(b.end(), image.begin(), image.end());
  }
  return b;
}

TEST_CASE("cifar-10: the five training batches, the test batch, the parent folder") {
  temp_dir dir;
  const std::string bin = dir / "cifar-10-batches-bin";
  for (std::size_t k = 1; k <= 5; ++k)
    write_file(bin + "/data_batch_" + std::to_string(k) + ".bin",
               cifar_records(2, 10 * k, [k](std::size_t i) {
                 return bytes{static_cast<std::uint8_t>((2 * k + i) % 10)};
               }));
  write_file(bin + "/test_batch.bin", cifar_records(3, 100, [](std::size_t i) {
               return bytes{static_cast<std::uint8_t>(9 - i)};
             }));
  write_text(bin + "/batches.meta.txt",
             "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");

  for (const std::string& where : {dir.str(), bin}) {
    const image_set train = load_cifar(where, "train", 10);
    CHECK(train.size() == 10);
    CHECK(train.channels == 3);
    CHECK(train.height == 32);
    CHECK(train.width == 32);
    CHECK(train.labels == std::vector<std::int32_t>{2, 3, 4, 5, 6, 7, 8, 9, 0, 1});
    const bytes fourth = pattern_bytes(3072, 20 + 1);  // batch 2, record 1
    CHECK(std::equal(fourth.begin(), fourth.end(), train.image(3)));
    CHECK(train.classes.size() == 10);
    CHECK(train.classes[9] == "truck");
  }
  const image_set test = load_cifar(dir.str(), "test", 10);
  CHECK(test.labels == std::vector<std::int32_t>{9, 8, 7});
  CHECK(std::equal(test.image(2), test.image(2) + 3072, pattern_bytes(3072, 102).begin()));
  CHECK_THROWS_AS(load_cifar(dir.str(), "val", 10), std::invalid_argument);
  CHECK_THROWS_AS(load_cifar(dir.str(), "train", 20), std::invalid_argument);
}

TEST_CASE("cifar-100: the fine label, the parent folder") {
  temp_dir dir;
  const std::string bin = dir / "cifar-100-binary";
  write_file(
      bin + "/train.bin", cifar_records(4, 7, [](std::size_t i) {
        return bytes{static_cast<std::uint8_t>(19 - i), static_cast<std::uint8_t>(97 + i % 3)};
      }));
  write_file(bin + "/test.bin", cifar_records(1, 0, [](std::size_t) { return bytes{0, 42}; }));
  const image_set train = load_cifar(dir.str(), "train", 100);
  CHECK(train.size() == 4);
  CHECK(train.labels == std::vector<std::int32_t>{97, 98, 99, 97});
  CHECK(std::equal(train.image(3), train.image(3) + 3072, pattern_bytes(3072, 10).begin()));
  CHECK(train.classes.empty());
  CHECK(load_cifar(bin, "test", 100).labels == std::vector<std::int32_t>{42});
}

TEST_CASE("cifar: missing batches, sizes that are not whole records, labels out of range") {
  temp_dir dir;
  std::string m = file_error_message([&] { load_cifar(dir.str(), "test", 10); });
  CHECK(contains(m, "CIFAR-10 test split not found in " + dir.str()));
  CHECK(contains(m, "test_batch.bin"));
  CHECK(contains(m, "cifar-10-batches-bin"));

  const auto label0 = [](std::size_t) { return bytes{0}; };
  for (std::size_t k : {1u, 2u, 4u, 5u})
    write_file(dir / ("data_batch_" + std::to_string(k) + ".bin"), cifar_records(1, k, label0));
  m = file_error_message([&] { load_cifar(dir.str(), "train", 10); });
  CHECK(contains(m, " lacks data_batch_3.bin"));

  bytes partial = cifar_records(2, 0, label0);
  partial.insert(partial.end(), 5, 0);
  write_file(dir / "data_batch_3.bin", partial);
  m = file_error_message([&] { load_cifar(dir.str(), "train", 10); });
  CHECK(contains(m, "data_batch_3.bin"));
  CHECK(contains(m,
                 "truncated: 6151 bytes is not a whole number of 3073-byte records (2 records "
                 "and 5 bytes over)"));

  write_file(dir / "data_batch_3.bin", cifar_records(2, 0, [](std::size_t i) {
               return bytes{static_cast<std::uint8_t>(9 + i)};
             }));
  m = file_error_message([&] { load_cifar(dir.str(), "train", 10); });
  CHECK(contains(m, "record 1: expected a label in 0..9, found 10"));

  write_file(dir / "data_batch_3.bin", {});
  CHECK(contains(file_error_message([&] { load_cifar(dir.str(), "train", 10); }),
                 "found an empty file"));

  temp_dir hundred;
  write_file(hundred / "train.bin", cifar_records(1, 0, [](std::size_t) { return bytes{3, 100}; }));
  CHECK(contains(file_error_message([&] { load_cifar(hundred.str(), "train", 100); }),
                 "expected a label in 0..99, found 100"));
  write_file(hundred / "train.bin", cifar_records(1, 0, [](std::size_t) { return bytes{3}; }));
  CHECK(contains(file_error_message([&] { load_cifar(hundred.str(), "train", 100); }),
                 "3074-byte records"));
}

// ---- Image folders -------------------------------------------------------------------------

TEST_CASE("image folder: classes from sub-folders, exact pixels at the native size") {
  temp_dir dir;
  // Class "cat": two RGB images; class "dog": one grey image and a JPEG; plus a note to ignore.
  const bytes rgb_a = pattern_bytes(6 * 6 * 3, 1), rgb_b = pattern_bytes(6 * 6 * 3, 2);
  const bytes grey = pattern_bytes(6 * 6, 3);
  write_png(dir / "cat/b.png", 6, 6, 3, rgb_b);
  write_png(dir / "cat/a.png", 6, 6, 3, rgb_a);
  write_png(dir / "dog/grey.PNG", 6, 6, 1, grey);
  const bytes flat(6 * 6 * 3, 120);
  fs::create_directories(dir / "dog");
  REQUIRE(stbi_write_jpg((dir / "dog/z.JpEg").c_str(), 6, 6, 3, flat.data(), 95) != 0);
  write_text(dir / "dog/notes.txt", "not an image");
  write_text(dir / ".hidden/x.png", "hidden folders are skipped");

  const image_set set = load_image_folder(dir.str(), 6, 3);
  REQUIRE(set.size() == 4);
  CHECK(set.classes == std::vector<std::string>{"cat", "dog"});
  CHECK(set.labels == std::vector<std::int32_t>{0, 0, 1, 1});
  CHECK(set.channels == 3);
  CHECK(set.height == 6);
  CHECK(set.width == 6);
  // Image 0 is a.png (sorted), stored CHW.
  bool exact = true;
  for (std::size_t c = 0; c < 3; ++c)
    for (std::size_t k = 0; k < 36; ++k) exact &= set.image(0)[c * 36 + k] == rgb_a[k * 3 + c];
  CHECK(exact);
  // Grey becomes RGB by replication.
  bool replicated = true;
  for (std::size_t c = 0; c < 3; ++c)
    for (std::size_t k = 0; k < 36; ++k) replicated &= set.image(2)[c * 36 + k] == grey[k];
  CHECK(replicated);
  // The JPEG of a flat colour decodes close to it.
  for (std::size_t k = 0; k < 108; ++k) CHECK(std::abs(int(set.image(3)[k]) - 120) <= 2);

  // One channel: RGB to grey by stb's luma (77 R + 150 G + 29 B) >> 8.
  const image_set mono = load_image_folder(dir.str(), 6, 1);
  CHECK(mono.channels == 1);
  CHECK(mono.image(0)[7] == ((77 * rgb_a[21] + 150 * rgb_a[22] + 29 * rgb_a[23]) >> 8));
}

TEST_CASE("image folder: unlabeled images, centre crop to a square, resize") {
  temp_dir dir;
  // 20 high x 40 wide: columns 0-9 are 0, 10-29 are 100, 30-39 are 200.
  bytes wide(20 * 40);
  for (std::size_t y = 0; y < 20; ++y)
    for (std::size_t x = 0; x < 40; ++x) wide[y * 40 + x] = x < 10 ? 0 : x < 30 ? 100 : 200;
  write_png(dir / "wide.png", 40, 20, 1, wide);
  const image_set cropped = load_image_folder(dir.str(), 20, 1);
  CHECK(cropped.labels.empty());
  CHECK(cropped.classes.empty());
  REQUIRE(cropped.size() == 1);
  CHECK(std::all_of(cropped.pixels.begin(), cropped.pixels.end(),
                    [](std::uint8_t p) { return p == 100; }));
  // A smaller and a larger size: still the middle square.
  for (std::size_t S : {std::size_t{7}, std::size_t{32}}) {
    const image_set resized = load_image_folder(dir.str(), S, 1);
    CHECK(resized.pixels.size() == S * S);
    CHECK(std::all_of(resized.pixels.begin(), resized.pixels.end(),
                      [](std::uint8_t p) { return p >= 99 && p <= 101; }));
  }
  CHECK_THROWS_AS(load_image_folder(dir.str(), 8, 5), std::invalid_argument);
  CHECK_THROWS_AS(load_image_folder(dir.str(), 0, 1), std::invalid_argument);
}

TEST_CASE("image folder: undecodable image, empty folder, empty class, mixed layout, no folder") {
  temp_dir dir;
  write_png(dir / "a/ok.png", 4, 4, 1, bytes(16, 50));
  write_text(dir / "a/broken.png", "this is not a PNG");
  std::string m = file_error_message([&] { load_image_folder(dir.str(), 4, 1); });
  CHECK(contains(m, "cannot decode image " + (dir / "a/broken.png")));
  CHECK(contains(m, "stb_image says: "));
  CHECK(m.size() > m.find("says: ") + 7);  // stb's reason follows

  temp_dir empty;
  m = file_error_message([&] { load_image_folder(empty.str(), 4, 1); });
  CHECK(contains(m, "image folder " + empty.str()));
  CHECK(contains(m, "found it empty"));
  write_text(empty / "readme.txt", "x");
  CHECK(contains(file_error_message([&] { load_image_folder(empty.str(), 4, 1); }),
                 "found 1 other files"));

  temp_dir classes;
  write_png(classes / "a/x.png", 4, 4, 1, bytes(16, 1));
  fs::create_directories(classes.path / "b");
  CHECK(contains(file_error_message([&] { load_image_folder(classes.str(), 4, 1); }),
                 "class folder b holds no .png"));
  write_png(classes / "b/y.png", 4, 4, 1, bytes(16, 2));
  write_png(classes / "loose.png", 4, 4, 1, bytes(16, 3));
  CHECK(contains(file_error_message([&] { load_image_folder(classes.str(), 4, 1); }),
                 "expected either class sub-folders or images, found both"));
  CHECK(contains(file_error_message([&] { load_image_folder(classes / "nothing", 4, 1); }),
                 "found nothing there"));
}

// ---- Formats and dispatch ------------------------------------------------------------------

TEST_CASE("dataset: format names, detection, dispatch by split") {
  for (data_format f : {data_format::automatic, data_format::idx, data_format::cifar10,
                        data_format::cifar100, data_format::image_folder})
    CHECK(parse_data_format(to_string(f)) == f);
  CHECK(parse_data_format("folder") == data_format::image_folder);
  CHECK_THROWS_WITH_AS(parse_data_format("png"),
                       doctest::Contains("expected one of auto, idx, cifar10, cifar100, folder"),
                       std::invalid_argument);

  temp_dir idx, c10, c100, folder, split_folder, mismatched, nothing;
  write_gz(idx / "train-images-idx3-ubyte.gz", make_idx({2, 28, 28}, pattern_bytes(1568, 1)));
  write_gz(idx / "train-labels-idx1-ubyte.gz", make_idx({2}, {1, 2}));
  write_file(c10 / "cifar-10-batches-bin/test_batch.bin",
             cifar_records(1, 0, [](std::size_t) { return bytes{4}; }));
  write_file(c100 / "test.bin", cifar_records(1, 0, [](std::size_t) { return bytes{4, 44}; }));
  write_png(folder / "x.png", 8, 8, 3, bytes(192, 9));
  write_png(split_folder / "train/a/x.png", 8, 8, 3, bytes(192, 1));
  write_png(split_folder / "train/b/x.png", 8, 8, 3, bytes(192, 2));
  write_png(split_folder / "test/b/x.png", 8, 8, 3, bytes(192, 3));  // no "a": b keeps label 1
  write_png(mismatched / "train/a/x.png", 8, 8, 3, bytes(192, 1));
  write_png(mismatched / "test/c/x.png", 8, 8, 3, bytes(192, 3));
  write_text(nothing / "readme.txt", "x");

  CHECK(detect_data_format(idx.str()) == data_format::idx);
  CHECK(detect_data_format(c10.str()) == data_format::cifar10);
  CHECK(detect_data_format(c100.str()) == data_format::cifar100);
  CHECK(detect_data_format(folder.str()) == data_format::image_folder);
  CHECK(detect_data_format(split_folder.str()) == data_format::image_folder);
  std::string m = file_error_message([&] { detect_data_format(nothing.str()); });
  CHECK(contains(m, "cannot tell the format of the dataset in " + nothing.str()));
  CHECK(contains(m, "train-images-idx3-ubyte"));
  CHECK(contains(m, "data_batch_1.bin"));
  CHECK(contains(m, "cifar-100-binary"));
  CHECK(contains(file_error_message([&] { detect_data_format(nothing / "missing"); }),
                 "found nothing there"));
  CHECK(contains(file_error_message([&] { detect_data_format(nothing / "readme.txt"); }),
                 "found a file"));

  const auto load = [](const std::string& path, const std::string& split) {
    return load_image_set(path, split, data_format::automatic, 8, 3);
  };
  CHECK(load(idx.str(), "train").labels == std::vector<std::int32_t>{1, 2});
  CHECK(load(c10.str(), "test").labels == std::vector<std::int32_t>{4});
  CHECK(load(c100.str(), "test").labels == std::vector<std::int32_t>{44});
  CHECK(load(folder.str(), "train").size() == 1);
  CHECK(contains(file_error_message([&] { load(folder.str(), "test"); }),
                 "expected train and test sub-folders"));
  const image_set train = load(split_folder.str(), "train");
  CHECK(train.classes == std::vector<std::string>{"a", "b"});
  const image_set test = load(split_folder.str(), "test");
  CHECK(test.image(0)[0] == 3);
  CHECK(test.labels == std::vector<std::int32_t>{1});  // by name, as the training split numbers it
  CHECK(test.classes == train.classes);
  CHECK(contains(file_error_message([&] { load(mismatched.str(), "test"); }),
                 "class folder c is not one of the training split's 1 classes"));
  CHECK(load_image_set(c100.str(), "test", data_format::cifar100, 0, 0).size() == 1);
  CHECK_THROWS_AS(load(idx.str(), "valid"), std::invalid_argument);
  // Naming the wrong format gives that reader's error.
  CHECK(contains(
      file_error_message([&] { load_image_set(idx.str(), "train", data_format::cifar10, 8, 3); }),
      "CIFAR-10 train split not found"));
}

// ---- Channel statistics --------------------------------------------------------------------

TEST_CASE("channel stats: mean and population std of pixels / 255; constant channel; empty") {
  image_set set;
  set.channels = 2;
  set.height = 1;
  set.width = 2;
  set.pixels = {0, 255, 51, 51, 255, 255, 51, 51};  // two images; channel 1 constant
  const channel_stats s = compute_channel_stats(set);
  CHECK(s.mean[0] == doctest::Approx(0.75));
  CHECK(s.std[0] == doctest::Approx(std::sqrt(0.75 * 0.25)));
  CHECK(s.mean[1] == doctest::Approx(0.2));
  CHECK(s.std[1] == 1.0);
  image_set none;
  none.channels = 1;
  none.height = none.width = 28;
  none.source = "empty.idx";
  CHECK_THROWS_WITH_AS(compute_channel_stats(none),
                       doctest::Contains("empty.idx: expected at least one image, found none"),
                       file_error);
}

// ---- Augmentation --------------------------------------------------------------------------

TEST_CASE("augment: none() at the native size is exactly the normalisation") {
  const image_set set = random_set(3, 3, 7, 7);
  channel_stats stats{{0.1, 0.5, 0.9}, {0.2, 0.3, 0.25}};
  std::vector<float> out(3 * 49);
  std::vector<double> out64(3 * 49);
  augment_image(set, 2, stats, augmentation::none(), counter_rng(5), 17, out.data(), 7);
  augment_image(set, 2, stats, augmentation::none(), counter_rng(5), 17, out64.data(), 7);
  bool exact = true;
  for (std::size_t c = 0; c < 3; ++c)
    for (std::size_t k = 0; k < 49; ++k) {
      const double x = (set.image(2)[c * 49 + k] / 255.0 - stats.mean[c]) / stats.std[c];
      exact &= out[c * 49 + k] == static_cast<float>(x) && out64[c * 49 + k] == x;
    }
  CHECK(exact);
}

TEST_CASE("augment: resize without a crop is PyTorch's bilinear (align_corners=False)") {
  image_set set = random_set(1, 1, 8, 8);
  const channel_stats unit{{0.0}, {1.0 / 255.0}};  // output = pixel value
  std::vector<double> half(16), up(256);
  augment_image(set, 0, unit, augmentation::none(), counter_rng(1), 0, half.data(), 4);
  bool pairs = true;  // scale 2: source 2x + 0.5, the mean of pixels 2x and 2x + 1
  for (std::size_t y = 0; y < 4; ++y)
    for (std::size_t x = 0; x < 4; ++x) {
      const auto p = [&](std::size_t yy, std::size_t xx) {
        return double(set.pixels[yy * 8 + xx]);
      };
      const double expect =
          (p(2 * y, 2 * x) + p(2 * y, 2 * x + 1) + p(2 * y + 1, 2 * x) + p(2 * y + 1, 2 * x + 1)) /
          4;
      pairs &= std::abs(half[y * 4 + x] - expect) < 1e-9;
    }
  CHECK(pairs);
  // Upsampling by 2: output 0 clamps to pixel 0; output 1 is 3/4 of pixel 0 and 1/4 of pixel 1.
  augment_image(set, 0, unit, augmentation::none(), counter_rng(1), 0, up.data(), 16);
  CHECK(up[0] == doctest::Approx(set.pixels[0]));
  CHECK(up[1] == doctest::Approx(0.75 * set.pixels[0] + 0.25 * set.pixels[1]));
  CHECK(up[15] == doctest::Approx(set.pixels[7]));
}

TEST_CASE("augment: crops stay in the image and follow the scale and ratio ranges") {
  const augmentation a;
  std::size_t fallbacks = 0;
  for (const auto& hw : {std::pair<std::size_t, std::size_t>{28, 28}, {32, 32}, {20, 50}, {3, 3}}) {
    const std::size_t H = hw.first, W = hw.second;
    for (std::uint64_t d = 0; d < 2000; ++d) {
      const crop_box b = random_resized_crop_box(H, W, a, counter_rng(3), d);
      REQUIRE(b.height >= 1);
      REQUIRE(b.width >= 1);
      REQUIRE(b.top + b.height <= H);
      REQUIRE(b.left + b.width <= W);
      const double area = double(b.height * b.width) / double(H * W);
      const double ratio = double(b.width) / double(b.height);
      if (H >= 28 && H == W) {  // rounding aside, inside the ranges
        CHECK(area >= 0.35 * 0.8);
        CHECK(ratio >= 0.75 * 0.85);
        CHECK(ratio <= 4.0 / 3 * 1.2);
      }
      if (b.height == H && b.width == W) ++fallbacks;
    }
  }
  CHECK(fallbacks > 0);  // whole-image crops happen (3 x 3 images often get one)
  // A wide image whose tries all fail: the centre crop of ratio 4/3.
  augmentation tight;
  tight.min_scale = tight.max_scale = 1.0;
  const crop_box wide = random_resized_crop_box(10, 40, tight, counter_rng(0), 0);
  CHECK(wide.height == 10);
  CHECK(wide.width == 13);
  CHECK(wide.top == 0);
  CHECK(wide.left == 13);
  CHECK_THROWS_AS(check_augmentation(augmentation{0.5, 0.4}), std::invalid_argument);
  CHECK_NOTHROW(check_augmentation(augmentation{}));
}

TEST_CASE("augment: flips about half the time; seeded, deterministic, draw-dependent") {
  // An image that is its own vertical mirror only when flipped: a horizontal ramp.
  image_set set;
  set.channels = 1;
  set.height = set.width = 8;
  for (std::size_t y = 0; y < 8; ++y)
    for (std::size_t x = 0; x < 8; ++x) set.pixels.push_back(static_cast<std::uint8_t>(x * 30));
  const channel_stats unit{{0.0}, {1.0}};
  augmentation flip_only = augmentation::none();
  flip_only.flip = true;
  std::size_t flips = 0;
  std::vector<float> out(64);
  const std::size_t draws = 4000;
  for (std::uint64_t d = 0; d < draws; ++d) {
    augment_image(set, 0, unit, flip_only, counter_rng(8), d, out.data(), 8);
    if (out[0] > out[7]) ++flips;
  }
  CHECK(flips > draws / 2 - 150);  // 4.7 standard deviations
  CHECK(flips < draws / 2 + 150);

  const image_set rgb = random_set(4, 3, 32, 32);
  const channel_stats stats{{0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}};
  std::vector<float> a(3072), b(3072), c(3072), d(3072);
  augment_image(rgb, 1, stats, augmentation{}, counter_rng(42), 7, a.data(), 32);
  augment_image(rgb, 1, stats, augmentation{}, counter_rng(42), 7, b.data(), 32);
  augment_image(rgb, 1, stats, augmentation{}, counter_rng(43), 7, c.data(), 32);
  augment_image(rgb, 1, stats, augmentation{}, counter_rng(42), 8, d.data(), 32);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != d);
  CHECK(std::all_of(a.begin(), a.end(), [](float v) { return v >= -2.0f && v <= 2.0f; }));
}

// ---- batch_loader --------------------------------------------------------------------------

using mnist_vit = presets::vit_ti4_28;  // 28 x 28 x 1
using cifar_vit = presets::vit_s4_32;   // 32 x 32 x 3

template <class Batch>
std::vector<float> copy_of(const Batch& b) {
  return std::vector<float>(b.data(), b.data() + b.size());
}

TEST_CASE("batch_loader: the data must fit the config") {
  const image_set grey = random_set(16, 1, 28, 28), rgb = random_set(16, 3, 32, 32);
  const channel_stats one{{0.5}, {0.5}}, three{{0.5, 0.5, 0.5}, {0.5, 0.5, 0.5}};
  std::string m =
      file_error_message([&] { batch_loader<cifar_vit> l(grey, 4, three, augmentation{}, 1); });
  CHECK(contains(m, "random_set holds 16 images of 1 x 28 x 28 (C x H x W)"));
  CHECK(contains(m, "the model config expects 3 x 32 x 32"));
  m = file_error_message([&] { batch_loader<mnist_vit> l(rgb, 4, one, augmentation{}, 1); });
  CHECK(contains(m, "3 x 32 x 32"));
  CHECK(contains(m, "expects 1 x 28 x 28"));
  CHECK(contains(m, "expected 1 channels, found 3"));

  // Another size: fine with cropping (it resizes), an error without.
  const image_set big = random_set(8, 1, 40, 36);
  batch_loader<mnist_vit> resizing(big, 4, one, augmentation{}, 1);
  CHECK(resizing.next().batch() == 4);
  m = file_error_message([&] { batch_loader<mnist_vit> l(big, 4, one, augmentation::none(), 1); });
  CHECK(contains(m, "1 x 40 x 36"));
  CHECK(contains(m, "cropping is off"));
  CHECK(contains(
      file_error_message([&] { batch_loader<mnist_vit> l(grey, 17, one, augmentation{}, 1); }),
      "expected at least one batch of 17 images"));
  CHECK_THROWS_AS(batch_loader<mnist_vit>(grey, 0, one, augmentation{}, 1), std::invalid_argument);
  CHECK_THROWS_AS(batch_loader<mnist_vit>(grey, 4, three, augmentation{}, 1),
                  std::invalid_argument);
  CHECK_THROWS_AS(batch_loader<mnist_vit>(grey, 4, channel_stats{{0.5}, {0.0}}, augmentation{}, 1),
                  std::invalid_argument);
}

TEST_CASE("batch_loader: rank r of W makes its share of each batch, bit for bit") {
  const image_set set = random_set(40, 1, 28, 28);
  const channel_stats stats = compute_channel_stats(set);
  batch_loader<mnist_vit> whole(set, 8, stats, augmentation{}, 3, 2);
  batch_loader<mnist_vit> second(set, 8, stats, augmentation{}, 3, 2, data_shard{1, 2});
  for (int step = 0; step < 4; ++step) {
    const auto& all = whole.next();
    const auto& mine = second.next();
    REQUIRE(mine.batch() == 4);
    bool same = true;  // images 4..7 of the whole batch, augmented alike
    for (std::size_t k = 0; k < 4 * 784; ++k) same &= mine.data()[k] == all.data()[4 * 784 + k];
    CHECK(same);
    CHECK(second.labels() ==
          std::vector<std::int32_t>(whole.labels().begin() + 4, whole.labels().end()));
  }
  CHECK_THROWS_WITH_AS(batch_loader<mnist_vit>(set, 8, stats, augmentation{}, 3, 0, {0, 3}),
                       "splitmask::batch_loader: the batch of 8 images cannot be shared by 3 "
                       "ranks equally (rank 0)",
                       std::invalid_argument);
}

TEST_CASE("batch_loader: an epoch visits every image once; labels follow the images") {
  const image_set set = random_set(50, 1, 28, 28);
  const channel_stats stats = compute_channel_stats(set);
  batch_loader<mnist_vit> loader(set, 8, stats, augmentation::none(), 11);
  CHECK(loader.batches_per_epoch() == 6);  // 48 of 50: the partial batch is dropped
  CHECK(loader.labels().empty());
  for (std::size_t epoch = 0; epoch < 3; ++epoch) {
    std::vector<int> seen(50, 0);
    for (std::size_t b = 0; b < 6; ++b) {
      CHECK(loader.next_batch() == epoch * 6 + b);
      const auto& batch = loader.next();
      REQUIRE(loader.labels().size() == 8);
      bool match = true;  // without augmentation, image j is the labelled image, normalised
      for (std::size_t j = 0; j < 8; ++j) {
        const auto index = static_cast<std::size_t>(loader.labels()[j]);
        ++seen[index];
        for (std::size_t k = 0; k < 784; ++k)
          match &= batch.data()[j * 784 + k] ==
                   static_cast<float>((set.image(index)[k] / 255.0 - stats.mean[0]) / stats.std[0]);
      }
      CHECK(match);
    }
    CHECK(std::count(seen.begin(), seen.end(), 1) == 48);
    CHECK(std::count(seen.begin(), seen.end(), 0) == 2);
  }
  image_set unlabeled = random_set(8, 1, 28, 28);
  unlabeled.labels.clear();
  batch_loader<mnist_vit> u(unlabeled, 8, stats, augmentation{}, 1);
  u.next();
  CHECK(u.labels().empty());
}

TEST_CASE("batch_loader: deterministic, resumable, independent of the batch size") {
  const image_set set = random_set(48, 3, 32, 32);
  const channel_stats stats = compute_channel_stats(set);
  const augmentation aug;
  std::vector<std::vector<float>> run;
  std::vector<std::vector<std::int32_t>> run_labels;
  {
    batch_loader<cifar_vit> loader(set, 8, stats, aug, 2024);
    for (std::size_t g = 0; g < 15; ++g) {  // two and a half epochs
      const auto& batch = loader.next();
      CHECK(batch.batch() == 8);
      run.push_back(copy_of(batch));
      run_labels.push_back(loader.labels());
      // Slow consumer now and then: the worker's timing must not matter.
      if (g % 4 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  CHECK(run[0] != run[1]);
  CHECK(run[0] != run[6]);  // another epoch: another order and other augmentations
  {
    batch_loader<cifar_vit> again(set, 8, stats, aug, 2024);
    bool same = true;
    for (std::size_t g = 0; g < 15; ++g) same &= copy_of(again.next()) == run[g];
    CHECK(same);
  }
  for (std::uint64_t first : {1u, 6u, 7u, 13u}) {
    batch_loader<cifar_vit> resumed(set, 8, stats, aug, 2024, first);
    CHECK(resumed.next_batch() == first);
    bool same = true;
    for (std::uint64_t g = first; g < 15; ++g) {
      same &= copy_of(resumed.next()) == run[g];
      same &= resumed.labels() == run_labels[g];
    }
    CHECK(same);
  }
  {
    batch_loader<cifar_vit> other(set, 8, stats, aug, 2025);
    CHECK(copy_of(other.next()) != run[0]);
  }
  {
    // Within the first epoch, batches of 4 are the halves of batches of 8.
    batch_loader<cifar_vit> small(set, 4, stats, aug, 2024);
    bool halves = true;
    for (std::size_t g = 0; g < 6; ++g) {
      std::vector<float> joined = copy_of(small.next());
      const std::vector<float> second = copy_of(small.next());
      joined.insert(joined.end(), second.begin(), second.end());
      halves &= joined == run[g];
    }
    CHECK(halves);
  }
  {
    // double elements: the same images, in double precision.
    batch_loader<cifar_vit, double> wide(set, 8, stats, aug, 2024);
    const auto& b = wide.next();
    bool close = true;
    for (std::size_t k = 0; k < b.size(); ++k)
      close &= std::abs(b.data()[k] - double(run[0][k])) < 1e-5;
    CHECK(close);
  }
}

/// A float whose construction from a double throws above 2.5: makes the worker fail.
struct fussy_float {
  float value;
  fussy_float() = default;
  explicit fussy_float(double x) : value(static_cast<float>(x)) {
    if (x > 2.5) throw std::runtime_error("fussy_float: value too large");
  }
};

TEST_CASE("batch_loader: the worker's exception reaches next(); destruction without next()") {
  image_set set = random_set(48, 1, 28, 28);
  std::fill(set.pixels.begin(), set.pixels.end(), std::uint8_t{10});
  std::fill(set.pixels.begin() + 17 * 784, set.pixels.begin() + 18 * 784, std::uint8_t{255});
  const channel_stats stats{{0.0}, {0.1}};  // 255 -> 10, 10 -> 0.39
  {
    batch_loader<mnist_vit, fussy_float> loader(set, 8, stats, augmentation::none(), 3);
    std::size_t good = 0;
    bool threw = false;
    for (std::size_t g = 0; g < 6 && !threw; ++g) {
      try {
        loader.next();
        CHECK(std::find(loader.labels().begin(), loader.labels().end(), 17) ==
              loader.labels().end());
        ++good;
      } catch (const std::runtime_error& e) {
        CHECK(contains(e.what(), "value too large"));
        threw = true;
      }
    }
    CHECK(threw);
    CHECK(good < 6);
    CHECK_THROWS_WITH_AS(loader.next(), doctest::Contains("value too large"), std::runtime_error);
    CHECK(loader.next_batch() == good);
  }
  {
    batch_loader<mnist_vit> unused(set, 8, stats, augmentation{}, 3);  // never asked
  }
  {
    batch_loader<mnist_vit> once(set, 8, stats, augmentation{}, 3);
    once.next();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // the worker is waiting
  }
  {
    // Destroyed at once: the worker is most likely inside its first batch.
    batch_loader<mnist_vit> busy(set, set.size(), stats, augmentation{}, 3);
  }
  // The check is that each destructor returned: no hang, and no report from the sanitizers.
}

// ---- The real data, when installed ---------------------------------------------------------

TEST_CASE("fashion-mnist: the installed training set loads (60000 x 28 x 28, 10 classes)") {
  const std::string dir = "/usr/share/datasets/fashion-mnist";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    MESSAGE("skipped: " << dir << " is not installed");
    return;
  }
  CHECK(detect_data_format(dir) == data_format::idx);
  const image_set train = load_image_set(dir, "train", data_format::automatic, 0, 0);
  CHECK(train.size() == 60000);
  CHECK(train.channels == 1);
  CHECK(train.height == 28);
  CHECK(train.width == 28);
  std::vector<std::size_t> per_class(10, 0);
  bool in_range = true;
  for (std::int32_t l : train.labels) {
    in_range &= l >= 0 && l < 10;
    if (l >= 0 && l < 10) ++per_class[static_cast<std::size_t>(l)];
  }
  CHECK(in_range);
  CHECK(std::all_of(per_class.begin(), per_class.end(), [](std::size_t n) { return n == 6000; }));
  const channel_stats stats = compute_channel_stats(train);
  CHECK(stats.mean[0] == doctest::Approx(0.2860).epsilon(0.002));  // the known Fashion-MNIST values
  CHECK(stats.std[0] == doctest::Approx(0.3530).epsilon(0.002));
  batch_loader<mnist_vit> loader(train, 256, stats, augmentation{}, 7);
  CHECK(loader.batches_per_epoch() == 234);
  CHECK(loader.next().batch() == 256);
}

}  // namespace
