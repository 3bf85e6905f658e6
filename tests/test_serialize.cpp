// SPDX-License-Identifier: MIT
// ika::nn::save / load: the byte layout of the format (built here by hand from the header's
// description), bitwise round trips in float and double, atomic replacement, and every refusal:
// truncation at every length, every single-byte corruption, wrong magic, version and value type,
// mismatched names, shapes and counts. A refused load must leave the parameters untouched.

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#if IKA_HAVE_ZLIB
#include <zlib.h>
#endif

#include <ika/autodiff/autodiff.hpp>
#include <ika/nn/layers.hpp>
#include <ika/nn/module.hpp>
#include <ika/nn/serialize.hpp>

#include "file_support.hpp"

namespace ad = ika::ad;
namespace nn = ika::nn;
namespace fs = std::filesystem;
using ika::index_t;
using namespace ika_test;

namespace {

void put(bytes& b, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) b.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

// Rewrites the trailing CRC-32 after an edit, so that the check under test is not the checksum.
void fix_crc(bytes& b) {
  b.resize(b.size() - 4);
  put(b, ika::nn::detail::crc32(b.data(), b.size()), 4);
}

template <class T>
ad::variable<T> param(const ad::shape& s, double start) {
  return nn::make_parameter<T>(s, [start](index_t i) { return start + 0.25 * double(i); });
}

// a (2, 3), b (4,), c scalar: a small list with three ranks
template <class T>
nn::parameter_list<T> abc(double start) {
  return {{"a", param<T>({2, 3}, start)}, {"b", param<T>({4}, start + 10)}, {"c", param<T>({}, start + 20)}};
}

template <class T>
bytes value_bits(const nn::parameter_list<T>& params) {
  bytes out;
  for (const auto& p : params) {
    const auto* raw = reinterpret_cast<const unsigned char*>(p.value.value().data());
    out.insert(out.end(), raw, raw + p.value.size() * index_t(sizeof(T)));
  }
  return out;
}

// load must throw parameter_file_error naming the file, with `expected` in the message, and
// leave the parameters as they were.
template <class T>
void check_refused(const fs::path& file, const nn::parameter_list<T>& params, const std::string& expected) {
  const bytes before = value_bits(params);
  try {
    nn::load(file, params);
    FAIL("load accepted ", file.string(), "; expected a refusal with \"", expected, "\"");
  } catch (const nn::parameter_file_error& e) {
    const std::string what = e.what();
    INFO("message: ", what);
    CHECK(what.find(expected) != std::string::npos);
    CHECK(what.find(file.string()) != std::string::npos);
    CHECK(e.path() == file);
  }
  CHECK(value_bits(params) == before);
}

} // namespace

TEST_CASE("CRC-32 is zlib's") {
  const std::string check = "123456789";
  const auto* p = reinterpret_cast<const unsigned char*>(check.data());
  CHECK(nn::detail::crc32(p, check.size()) == 0xCBF43926u); // the standard check value of CRC-32/ISO-HDLC
  CHECK(nn::detail::crc32(p, 0) == 0u);
  CHECK(nn::detail::crc32(p + 4, 5, nn::detail::crc32(p, 4)) == 0xCBF43926u); // running, as zlib's
#if IKA_HAVE_ZLIB
  bytes data(1000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>((i * 2654435761u) >> 13);
  CHECK(nn::detail::crc32(data.data(), data.size()) == std::uint32_t(::crc32(0L, data.data(), uInt(data.size()))));
#endif
}

TEST_CASE("the file layout, byte for byte") {
  scratch_dir dir("layout");
  const fs::path file = dir.path / "w.ikaparam";
  nn::parameter_list<float> params{{"w", nn::make_parameter<float>(ad::shape{2}, [](index_t i) { return i ? -2.0 : 1.0; })},
                                   {"s", nn::make_parameter<float>(ad::shape{}, [](index_t) { return 0.5; })}};
  nn::save(file, params);
  bytes expect = {'I', 'K', 'A', 'P', 'A', 'R', 'A', 'M'};
  put(expect, 1, 4); // version
  put(expect, 1, 4); // float32
  put(expect, 2, 8); // two parameters
  put(expect, 1, 4);
  expect.push_back('w');
  put(expect, 1, 4); // rank 1
  put(expect, 2, 8); // dim 2
  put(expect, 0x3F800000u, 4); // 1.0f
  put(expect, 0xC0000000u, 4); // -2.0f
  put(expect, 1, 4);
  expect.push_back('s');
  put(expect, 0, 4);           // rank 0: no dims
  put(expect, 0x3F000000u, 4); // 0.5f
  put(expect, nn::detail::crc32(expect.data(), expect.size()), 4);
  CHECK(read_bytes(file) == expect);

  nn::parameter_list<double> d{{"x", nn::make_parameter<double>(ad::shape{1, 1}, [](index_t) { return -2.0; })}};
  nn::save(file, d);
  const bytes got = read_bytes(file);
  REQUIRE(got.size() == 8 + 4 + 4 + 8 + 4 + 1 + 4 + 16 + 8 + 4);
  CHECK(got[12] == 2); // float64
  CHECK(std::memcmp(got.data() + 49, "\x00\x00\x00\x00\x00\x00\x00\xC0", 8) == 0); // -2.0, little-endian
}

TEST_CASE_TEMPLATE("save → load restores every bit", T, float, double) {
  scratch_dir dir(std::is_same_v<T, float> ? "roundtrip_f" : "roundtrip_d");
  const fs::path file = dir.path / "params.bin";
  nn::parameter_list<T> saved{{"layer.0.weight", param<T>({3, 5}, -1.3)},
                              {"layer.0.bias", param<T>({5}, 0.1)},
                              {"scalar", param<T>({}, 7)},
                              {"r3", param<T>({2, 1, 3}, 2)},
                              {"r4", param<T>({1, 2, 2, 2}, -4)},
                              {"empty", param<T>({0, 3}, 0)}};
  // values that only a bitwise copy keeps: signed zero, infinities, NaN, subnormals, odd roundings
  auto& w = saved[0].value.value();
  w[0] = -T(0);
  w[1] = std::numeric_limits<T>::infinity();
  w[2] = -std::numeric_limits<T>::infinity();
  w[3] = std::numeric_limits<T>::quiet_NaN();
  w[4] = std::numeric_limits<T>::denorm_min();
  w[5] = T(1) / T(3);
  w[6] = std::numeric_limits<T>::max();
  w[7] = std::nextafter(T(1), T(2));
  nn::save(file, saved);

  nn::parameter_list<T> loaded{{"layer.0.weight", param<T>({3, 5}, 100)},
                               {"layer.0.bias", param<T>({5}, 100)},
                               {"scalar", param<T>({}, 100)},
                               {"r3", param<T>({2, 1, 3}, 100)},
                               {"r4", param<T>({1, 2, 2, 2}, 100)},
                               {"empty", param<T>({0, 3}, 100)}};
  REQUIRE(value_bits(loaded) != value_bits(saved));
  const ad::variable<T> handle = loaded[0].value; // load writes into the very storage the module holds
  nn::load(file, loaded);
  CHECK(value_bits(loaded) == value_bits(saved));
  CHECK(std::signbit(handle.value()[0]));
  CHECK(std::isnan(handle.value()[3]));
  CHECK(dir.entries() == std::vector<std::string>{"params.bin"}); // no temporary left behind
}

TEST_CASE("a module's parameters round-trip: the loaded module computes the same outputs") {
  scratch_dir dir("module");
  const fs::path file = dir.path / "ff.bin";
  nn::feed_forward<float> a(6, 10, nn::activation::gelu, 0.1, 1), b(6, 10, nn::activation::gelu, 0.1, 2);
  a.train(false);
  b.train(false);
  ad::variable<float> x(ad::tensor<float>(ad::shape{2, 3, 6}));
  for (index_t i = 0; i < x.size(); ++i) x.value()[i] = std::sin(0.7f * float(i));
  ad::tape<float> tp;
  const auto ya = a(tp, x).value();
  const auto before = b(tp, x).value();
  CHECK(std::memcmp(ya.data(), before.data(), std::size_t(ya.size()) * sizeof(float)) != 0);
  nn::save(file, nn::parameters(a));
  nn::load(file, nn::parameters(b));
  const auto yb = b(tp, x).value();
  CHECK(std::memcmp(ya.data(), yb.data(), std::size_t(ya.size()) * sizeof(float)) == 0);
}

TEST_CASE("save replaces an existing file whole, and reports what it cannot do") {
  scratch_dir dir("replace");
  const fs::path file = dir.path / "p.bin";
  nn::save(file, abc<double>(0));
  nn::save(file, abc<double>(5)); // over the old one
  auto params = abc<double>(100);
  nn::load(file, params);
  CHECK(value_bits(params) == value_bits(abc<double>(5)));
  CHECK(dir.entries() == std::vector<std::string>{"p.bin"});

  const fs::path nowhere = dir.path / "missing" / "p.bin";
  try {
    nn::save(nowhere, abc<double>(0));
    FAIL("saved into a missing directory");
  } catch (const nn::parameter_file_error& e) {
    CHECK(std::string(e.what()).find("cannot create a temporary file") != std::string::npos);
    CHECK(e.path() == nowhere);
  }
  CHECK(!fs::exists(dir.path / "missing"));
  check_refused(dir.path / "absent.bin", params, "cannot open it for reading");

  // a malformed list is the caller's error
  auto dup = abc<double>(0);
  dup[2].name = "a";
  auto throws_params = [](auto f) {
    try {
      f();
      FAIL("no ika::invalid_argument");
    } catch (const ika::invalid_argument& e) {
      CHECK(e.argument() == "params");
    }
  };
  throws_params([&] { nn::save(file, dup); });
  throws_params([&] { nn::load(file, dup); });
  auto unnamed = abc<double>(0);
  unnamed[1].name.clear();
  throws_params([&] { nn::save(file, unnamed); });
  auto undefined = abc<double>(0);
  undefined[0].value = ad::variable<double>();
  throws_params([&] { nn::save(file, undefined); });
}

TEST_CASE("load refuses a truncated file at every length") {
  scratch_dir dir("truncated");
  const fs::path good = dir.path / "good.bin", cut = dir.path / "cut.bin";
  nn::save(good, abc<float>(1));
  const bytes whole = read_bytes(good);
  auto params = abc<float>(50);
  for (std::size_t n = 0; n < whole.size(); ++n) {
    CAPTURE(n);
    write_bytes(cut, bytes(whole.begin(), whole.begin() + std::ptrdiff_t(n)));
    check_refused(cut, params, "truncated");
  }
  nn::load(good, params); // the whole file is fine
  CHECK(value_bits(params) == value_bits(abc<float>(1)));
}

TEST_CASE("load refuses every single-byte corruption; in names and values it is the checksum") {
  scratch_dir dir("corrupt");
  const fs::path good = dir.path / "good.bin", bad = dir.path / "bad.bin";
  const auto original = abc<double>(1);
  nn::save(good, original);
  const bytes whole = read_bytes(good);
  auto params = abc<double>(50);
  for (std::size_t i = 0; i < whole.size(); ++i) {
    CAPTURE(i);
    bytes b = whole;
    b[i] ^= 0x10;
    write_bytes(bad, b);
    check_refused(bad, params, ""); // refused, whatever the reason
  }
  // header 24 bytes, then a's name length (4), its name at byte 28, rank (4), dims (16), values from byte 49
  const std::size_t first_value = 24 + 4 + 1 + 4 + 16;
  for (std::size_t i : {std::size_t(28), first_value, first_value + 3 * 8 + 7, whole.size() - 1}) {
    CAPTURE(i);
    bytes b = whole;
    b[i] ^= 0x01;
    write_bytes(bad, b);
    check_refused(bad, params, "checksum mismatch");
  }
  // extra bytes after the checksum
  bytes longer = whole;
  longer.push_back(0);
  write_bytes(bad, longer);
  check_refused(bad, params, "unexpected bytes after the last parameter");
}

TEST_CASE("load refuses a wrong magic, version or value type") {
  scratch_dir dir("header");
  const fs::path good = dir.path / "good.bin", bad = dir.path / "bad.bin";
  nn::save(good, abc<float>(1));
  const bytes whole = read_bytes(good);
  auto params = abc<float>(50);

  bytes b = whole;
  b[0] = 'J';
  fix_crc(b);
  write_bytes(bad, b);
  check_refused(bad, params, "wrong magic");
  write_bytes(bad, bytes{'h', 'e', 'l', 'l', 'o', '\n'});
  check_refused(bad, params, "wrong magic");

  b = whole;
  b[8] = 2; // version 2, with a valid checksum: the version check alone must catch it
  fix_crc(b);
  write_bytes(bad, b);
  check_refused(bad, params, "unsupported format version 2");

  b = whole;
  b[12] = 3;
  fix_crc(b);
  write_bytes(bad, b);
  check_refused(bad, params, "unsupported value type code 3");

  // float32 into double (and back) is refused, not converted
  auto doubles = abc<double>(50);
  check_refused(good, doubles, "wrong value type: the file holds float32 values, the parameters are float64");
  nn::save(good, abc<double>(1));
  check_refused(good, params, "wrong value type: the file holds float64 values, the parameters are float32");
}

TEST_CASE("load refuses names, shapes and counts that do not match the module") {
  scratch_dir dir("mismatch");
  const fs::path file = dir.path / "p.bin";
  nn::save(file, abc<double>(1));

  auto renamed = abc<double>(50);
  renamed[1].name = "bias";
  check_refused(file, renamed, "parameter name mismatch at index 1: the file has 'b', the module expects 'bias'");

  nn::parameter_list<double> reshaped{{"a", param<double>({3, 2}, 0)}, {"b", param<double>({4}, 0)},
                                      {"c", param<double>({}, 0)}};
  check_refused(file, reshaped, "parameter shape mismatch for 'a': the file has (2, 3), the module expects (3, 2)");

  auto fewer = abc<double>(50);
  fewer.pop_back();
  check_refused(file, fewer, "parameter count mismatch: the file holds 3 parameters, the module 2; first unmatched: 'c' (only in the file)");
  auto more = abc<double>(50);
  more.push_back({"d", param<double>({1}, 0)});
  check_refused(file, more, "first unmatched: 'd' (missing from the file)");
}
