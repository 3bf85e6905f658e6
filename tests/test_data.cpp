// SPDX-License-Identifier: MIT
// ika::data: IDX files raw and gzip'ed (written here, checked byte for byte), every refusal
// (missing, truncated at every length, wrong magic, type, dimension count and size, corrupt or
// truncated gzip, bytes after the gzip stream), the MNIST loader, CSV tables (missing values,
// drop_nan_rows, ragged rows, non-numbers, skip_lines, columns skipped or read as NaN) and, in
// test cases of their own, the real data sets when they are installed.

#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <zlib.h>

#include <ika/data/csv.hpp>
#include <ika/data/idx.hpp>
#include <ika/data/paths.hpp>

#include "file_support.hpp"

namespace fs = std::filesystem;
namespace data = ika::data;
using ika::index_t;
using namespace ika_test;

namespace {

void write_text(const fs::path& p, const std::string& s) { write_bytes(p, bytes(s.begin(), s.end())); }

// Through zlib's own gzip writer, so the reader is checked against a second implementation.
void write_gzip(const fs::path& p, const bytes& b) {
  gzFile f = gzopen(p.string().c_str(), "wb9");
  REQUIRE(f != nullptr);
  REQUIRE(gzwrite(f, b.data(), unsigned(b.size())) == int(b.size()));
  REQUIRE(gzclose(f) == Z_OK);
}

bytes idx_file(unsigned type, const std::vector<std::uint32_t>& dims, const bytes& values) {
  bytes b{0, 0, static_cast<unsigned char>(type), static_cast<unsigned char>(dims.size())};
  for (std::uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<unsigned char>(d >> s));
  b.insert(b.end(), values.begin(), values.end());
  return b;
}

// Values that do not compress to nothing, so corruption lands inside real deflate data.
bytes noise(std::size_t n, std::uint32_t seed) {
  bytes b(n);
  for (auto& x : b) {
    seed = seed * 1664525u + 1013904223u;
    x = static_cast<unsigned char>(seed >> 26); // 0..63
  }
  return b;
}

// Runs f, which must throw E; returns the message (empty when nothing or something else was thrown).
template <class E = data::data_error>
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("unexpected exception type: ", std::string(e.what()));
    return {};
  }
  FAIL_CHECK("nothing was thrown");
  return {};
}

void check_has(const std::string& message, std::initializer_list<const char*> parts) {
  for (const char* part : parts) {
    INFO("message: ", message);
    INFO("expected to contain: ", std::string(part));
    CHECK(message.find(part) != std::string::npos);
  }
}

// Sets an environment variable for one scope (POSIX; the tests run on Linux).
struct scoped_env {
  std::string name;
  std::string old;
  bool had = false;
  scoped_env(const char* n, const std::string& value) : name(n) {
    if (const char* v = std::getenv(n)) had = true, old = v;
    ::setenv(n, value.c_str(), 1);
  }
  ~scoped_env() {
    if (had)
      ::setenv(name.c_str(), old.c_str(), 1);
    else
      ::unsetenv(name.c_str());
  }
};

} // namespace

TEST_CASE("read_idx reads raw and gzip'ed files exactly") {
  scratch_dir dir("idx_read");
  const bytes images = noise(3 * 5 * 4, 1), labels{7, 0, 9};
  write_bytes(dir / "images.idx", idx_file(0x08, {3, 5, 4}, images));
  write_gzip(dir / "images.idx.gz", idx_file(0x08, {3, 5, 4}, images));
  write_gzip(dir / "labels.gz", idx_file(0x08, {3}, labels));

  for (const std::string name : {"images.idx", "images.idx.gz"}) {
    CAPTURE(name);
    const data::idx_array a = data::read_idx(dir / name, 3);
    CHECK(a.dims == std::vector<index_t>{3, 5, 4});
    CHECK(a.data == images);
  }
  const data::idx_array l = data::read_idx(dir / "labels.gz");
  CHECK(l.dims == std::vector<index_t>{3});
  CHECK(l.data == labels);

  // gzip allows several members one after the other (as `cat a.gz b.gz` makes)
  const bytes whole = idx_file(0x08, {3, 5, 4}, images);
  write_gzip(dir / "a.gz", bytes(whole.begin(), whole.begin() + 30));
  write_gzip(dir / "b.gz", bytes(whole.begin() + 30, whole.end()));
  bytes two = read_bytes(dir / "a.gz"), b = read_bytes(dir / "b.gz");
  two.insert(two.end(), b.begin(), b.end());
  write_bytes(dir / "two.gz", two);
  CHECK(data::read_idx(dir / "two.gz").data == images);

  // no dimension may be empty for a file to hold nothing: zero images is a valid file
  write_bytes(dir / "empty.idx", idx_file(0x08, {0, 28, 28}, {}));
  CHECK(data::read_idx(dir / "empty.idx").data.empty());
}

TEST_CASE("read_idx refuses missing, truncated, mislabelled and oversized files") {
  scratch_dir dir("idx_refuse");
  const bytes good = idx_file(0x08, {2, 3, 4}, noise(24, 2));

  const std::string missing = error_of([&] { data::read_idx(dir / "nope.idx"); });
  check_has(missing, {"nope.idx", "file not found"});
  try {
    data::read_idx(dir / "nope.idx");
  } catch (const data::data_error& e) {
    CHECK(e.path() == dir / "nope.idx");
  }
  check_has(error_of([&] { data::read_idx(dir.path); }), {"is a directory"});

  // every proper prefix of a good file, raw and gzip'ed
  for (std::size_t n = 0; n < good.size(); ++n) {
    CAPTURE(n);
    const bytes cut(good.begin(), good.begin() + std::ptrdiff_t(n));
    write_bytes(dir / "cut.idx", cut);
    check_has(error_of([&] { data::read_idx(dir / "cut.idx"); }), {"cut.idx", "truncated"});
    write_gzip(dir / "cut.gz", cut);
    check_has(error_of([&] { data::read_idx(dir / "cut.gz"); }), {"truncated", "after gzip decompression"});
  }

  bytes extra = good;
  extra.insert(extra.end(), {1, 2, 3});
  write_bytes(dir / "extra.idx", extra);
  check_has(error_of([&] { data::read_idx(dir / "extra.idx"); }), {"wrong size", "3 unexpected bytes"});
  write_gzip(dir / "extra.gz", extra);
  check_has(error_of([&] { data::read_idx(dir / "extra.gz"); }), {"wrong size", "3 unexpected bytes"});

  bytes magic = good;
  magic[0] = 0x1A;
  write_bytes(dir / "magic.idx", magic);
  check_has(error_of([&] { data::read_idx(dir / "magic.idx"); }), {"wrong magic 0x1a000803", "not an IDX file"});
  write_text(dir / "text.idx", "hello, world");
  check_has(error_of([&] { data::read_idx(dir / "text.idx"); }), {"wrong magic"});

  write_bytes(dir / "float.idx", idx_file(0x0D, {2}, bytes(8)));
  check_has(error_of([&] { data::read_idx(dir / "float.idx"); }), {"type code 0xd", "float32"});
  write_bytes(dir / "nodims.idx", idx_file(0x08, {}, {}));
  check_has(error_of([&] { data::read_idx(dir / "nodims.idx"); }), {"0 dimensions"});

  // labels where images are expected
  write_bytes(dir / "labels.idx", idx_file(0x08, {4}, {1, 2, 3, 4}));
  check_has(error_of([&] { data::read_idx(dir / "labels.idx", 3); }),
            {"wrong magic 0x00000801", "expected 3 dimension(s) (magic 0x00000803)"});

  // dimensions whose product overflows 64 bits
  write_bytes(dir / "huge.idx", idx_file(0x08, {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, bytes(10)));
  check_has(error_of([&] { data::read_idx(dir / "huge.idx"); }), {"truncated", "more than 2^64"});

  check_has(error_of<ika::invalid_argument>([&] { data::read_idx(dir / "labels.idx", -1); }), {"expected_dims"});
}

TEST_CASE("gzip: corrupt, truncated and trailing bytes are refused") {
  scratch_dir dir("gzip");
  const bytes raw = idx_file(0x08, {100, 20, 20}, noise(40000, 3));
  write_gzip(dir / "good.gz", raw);
  const bytes gz = read_bytes(dir / "good.gz");
  REQUIRE(gz.size() > 1000);
  REQUIRE(data::read_idx(dir / "good.gz").data.size() == 40000);

  // flip bytes in the middle of the compressed stream: zlib's checks or the CRC must catch it
  for (std::size_t at = gz.size() / 4; at < 3 * gz.size() / 4; at += gz.size() / 17) {
    CAPTURE(at);
    bytes bad = gz;
    bad[at] ^= 0xFF;
    bad[at + 1] ^= 0x5A;
    write_bytes(dir / "bad.gz", bad);
    check_has(error_of([&] { data::read_idx(dir / "bad.gz"); }), {"bad.gz", "gzip"});
  }
  // a bad checksum alone (the last 8 bytes are CRC-32 and size)
  bytes crc = gz;
  crc[crc.size() - 8] ^= 1;
  write_bytes(dir / "crc.gz", crc);
  check_has(error_of([&] { data::read_idx(dir / "crc.gz"); }), {"corrupt gzip file", "incorrect data check"});

  for (std::size_t n : {std::size_t(2), std::size_t(10), gz.size() / 2, gz.size() - 1}) {
    CAPTURE(n);
    write_bytes(dir / "short.gz", bytes(gz.begin(), gz.begin() + std::ptrdiff_t(n)));
    check_has(error_of([&] { data::read_idx(dir / "short.gz"); }), {"gzip"});
  }
  write_bytes(dir / "half.gz", bytes(gz.begin(), gz.begin() + std::ptrdiff_t(gz.size() / 2)));
  check_has(error_of([&] { data::read_idx(dir / "half.gz"); }), {"truncated gzip file"});

  bytes trailing = gz;
  trailing.insert(trailing.end(), {'x', 'y', 'z'});
  write_bytes(dir / "trailing.gz", trailing);
  check_has(error_of([&] { data::read_idx(dir / "trailing.gz"); }),
            {"corrupt gzip file", "3 unexpected bytes after the end of the gzip stream"});
}

TEST_CASE("load_mnist: file names, normalisation, limit, and checks across the two files") {
  scratch_dir dir("mnist");
  const index_t n = 5;
  bytes pixels = noise(std::size_t(n * 28 * 28), 4);
  pixels[0] = 0;
  pixels[1] = 255;
  pixels[2] = 51;
  const bytes labels{3, 1, 4, 1, 5};
  write_gzip(dir / "t10k-images-idx3-ubyte.gz", idx_file(0x08, {5, 28, 28}, pixels));
  write_gzip(dir / "t10k-labels-idx1-ubyte.gz", idx_file(0x08, {5}, labels));

  const data::image_set all = data::load_mnist(dir.path, data::split::test);
  CHECK(all.count == 5);
  CHECK(all.rows == 28);
  CHECK(all.cols == 28);
  REQUIRE(all.images.size() == std::size_t(5 * 28 * 28));
  CHECK(all.images[0] == 0.0f);
  CHECK(all.images[1] == 1.0f);
  CHECK(all.images[2] == doctest::Approx(0.2));
  for (std::size_t i = 0; i < pixels.size(); ++i) REQUIRE(all.images[i] == float(pixels[i]) / 255.0f);
  CHECK(all.labels == std::vector<int>{3, 1, 4, 1, 5});
  CHECK(all.image(2) == all.images.data() + 2 * 28 * 28);

  const data::image_set two = data::load_mnist(dir.path, data::split::test, 2);
  CHECK(two.count == 2);
  CHECK(two.images.size() == std::size_t(2 * 28 * 28));
  CHECK(two.labels == std::vector<int>{3, 1});
  CHECK(data::load_mnist(dir.path, data::split::test, 100).count == 5);
  CHECK(data::load_mnist(dir.path, data::split::test, 0).count == 5); // 0: all
  check_has(error_of<ika::invalid_argument>([&] { data::load_mnist(dir.path, data::split::test, -1); }), {"limit"});

  // the train split is absent: the message names the file it looked for
  check_has(error_of([&] { data::load_mnist(dir.path, data::split::train); }),
            {"train-images-idx3-ubyte.gz", "file not found"});

  // uncompressed files, as the original MNIST is often kept, read the same
  scratch_dir plain("mnist_plain");
  write_bytes(plain / "train-images-idx3-ubyte", idx_file(0x08, {5, 28, 28}, pixels));
  write_bytes(plain / "train-labels.idx1-ubyte", idx_file(0x08, {5}, labels));
  CHECK(data::load_mnist(plain.path, data::split::train).images == all.images);

  // counts that disagree, labels outside 0..9, images of another size, files swapped
  write_gzip(dir / "t10k-labels-idx1-ubyte.gz", idx_file(0x08, {4}, {1, 2, 3, 4}));
  check_has(error_of([&] { data::load_mnist(dir.path, data::split::test); }),
            {"t10k-labels-idx1-ubyte.gz", "4 labels for the 5 images", "counts must agree"});
  write_gzip(dir / "t10k-labels-idx1-ubyte.gz", idx_file(0x08, {5}, {1, 2, 10, 4, 5}));
  check_has(error_of([&] { data::load_mnist(dir.path, data::split::test); }), {"label 10 at index 2"});
  write_gzip(dir / "t10k-images-idx3-ubyte.gz", idx_file(0x08, {5, 28, 27}, bytes(5 * 28 * 27)));
  check_has(error_of([&] { data::load_mnist(dir.path, data::split::test); }), {"expected 28x28 images", "5x28x27"});
  write_gzip(dir / "t10k-images-idx3-ubyte.gz", idx_file(0x08, {5}, labels));
  check_has(error_of([&] { data::load_mnist(dir.path, data::split::test); }),
            {"t10k-images-idx3-ubyte.gz", "wrong magic 0x00000801"});
}

TEST_CASE("read_csv: numbers, missing values and drop_nan_rows") {
  scratch_dir dir("csv");
  // quoted names, blanks around fields, CRLF, blank lines, a byte order mark, '+', exponents
  write_text(dir / "t.csv", "\xEF\xBB\xBF\"a\", b ,\"c, d\"\r\n"
                            "1, 2.5 ,-3\r\n"
                            "\r\n"
                            "+4,1e3,\"5\"\r\n"
                            ",NA,nan\n"
                            "7,NaN,-inf\n"
                            "   \n");
  const data::csv_table t = data::read_csv(dir / "t.csv");
  CHECK(t.columns == std::vector<std::string>{"a", "b", "c, d"});
  CHECK(t.rows == 4);
  CHECK(t.cols() == 3);
  CHECK(t.dropped_rows == 0);
  CHECK(t(0, 0) == 1);
  CHECK(t(0, 1) == 2.5);
  CHECK(t(0, 2) == -3);
  CHECK(t(1, 0) == 4);
  CHECK(t(1, 1) == 1000);
  CHECK(t(1, 2) == 5);
  CHECK(std::isnan(t(2, 0)));
  CHECK(std::isnan(t(2, 1)));
  CHECK(std::isnan(t(2, 2)));
  CHECK(t(3, 0) == 7);
  CHECK(std::isnan(t(3, 1)));
  CHECK(t(3, 2) == -INFINITY);

  const data::csv_table kept = data::read_csv(dir / "t.csv", {.drop_nan_rows = true});
  CHECK(kept.rows == 2);
  CHECK(kept.dropped_rows == 2);
  CHECK(kept.data == std::vector<double>{1, 2.5, -3, 4, 1000, 5});

  // column access and selection by name
  CHECK(kept.column("c, d") == std::vector<double>{-3, 5});
  const data::csv_table ca = data::select_columns(kept, {"c, d", "a"});
  CHECK(ca.columns == std::vector<std::string>{"c, d", "a"});
  CHECK(ca.data == std::vector<double>{-3, 1, 5, 4});
  check_has(error_of<ika::invalid_argument>([&] { data::select_columns(kept, {"a", "z"}); }),
            {"argument 'name'", "'a', 'b', 'c, d'", "got 'z'"});

  // gzip'ed CSV reads the same
  write_gzip(dir / "t.csv.gz", read_bytes(dir / "t.csv"));
  CHECK(data::read_csv(dir / "t.csv.gz", {.drop_nan_rows = true}).data == kept.data);

  // an empty last field (a trailing delimiter) is a missing value, not a ragged row
  write_text(dir / "trail.csv", "x,y\n1,\n2,3\n");
  const data::csv_table trail = data::read_csv(dir / "trail.csv");
  CHECK(trail.rows == 2);
  CHECK(std::isnan(trail(0, 1)));
  // a header alone is an empty table
  write_text(dir / "head.csv", "x,y\n");
  CHECK(data::read_csv(dir / "head.csv").rows == 0);
}

TEST_CASE("read_csv refuses ragged rows, non-numbers and malformed files, naming line and column") {
  scratch_dir dir("csv_refuse");
  auto refused = [&](const std::string& text, const data::csv_options& o = {}) {
    write_text(dir / "bad.csv", text);
    long line = -1, column = -1;
    const std::string message = error_of([&] {
      try {
        data::read_csv(dir / "bad.csv", o);
      } catch (const data::data_error& e) {
        line = e.line();
        column = e.column();
        throw;
      }
    });
    return std::make_tuple(message, line, column);
  };

  auto [fewer, l1, c1] = refused("a,b,c\n1,2,3\n4,5\n");
  check_has(fewer, {"bad.csv", "line 3, column 3", "2 fields where the header (line 1) has 3", "'c' is missing"});
  CHECK(l1 == 3);
  CHECK(c1 == 3);
  auto [more, l2, c2] = refused("a,b\n\n1,2\n3,4,5\n");
  check_has(more, {"line 4, column 3", "3 fields where the header (line 1) has 2", "'5' is one too many"});
  CHECK(l2 == 4);
  CHECK(c2 == 3);

  auto [text, l3, c3] = refused("a,b\n1,2\n3,abc\n");
  check_has(text, {"bad.csv", "line 3, column 2", "'abc' in column 'b' is not a number", "nan_columns"});
  CHECK(l3 == 3);
  CHECK(c3 == 2);
  check_has(std::get<0>(refused("a\n12x\n")), {"line 2, column 1", "'12x'"});
  check_has(std::get<0>(refused("a\n1e999\n")), {"'1e999'", "out of the range of double"});
  check_has(std::get<0>(refused("a,b\n1,\"2\n")), {"line 2", "no closing quote"});
  check_has(std::get<0>(refused("a,b\n1,\"2\"x\n")), {"line 2", "text follows the closing quote"});
  check_has(std::get<0>(refused("a,b,a\n1,2,3\n")), {"line 1, column 3", "'a' appears twice (columns 1 and 3)"});
  check_has(std::get<0>(refused("")), {"no header line"});
  check_has(std::get<0>(refused("a\n1\n", {.skip_lines = 5})), {"has 2 lines, fewer than skip_lines = 5"});
  check_has(std::get<0>(refused("a,b\n1,2\n", {.skip_columns = {"date"}})),
            {"skip_columns names 'date', which is not a column", "'a', 'b'"});

  check_has(error_of([&] { data::read_csv(dir / "nope.csv"); }), {"nope.csv", "file not found"});
  check_has(error_of<ika::invalid_argument>([&] { data::read_csv(dir / "bad.csv", {.skip_lines = -1}); }),
            {"skip_lines"});
  check_has(error_of<ika::invalid_argument>([&] { data::read_csv(dir / "bad.csv", {.delimiter = '"'}); }),
            {"delimiter"});
  check_has(error_of<ika::invalid_argument>(
                [&] { data::read_csv(dir / "bad.csv", {.skip_columns = {"a"}, .nan_columns = {"a"}}); }),
            {"nan_columns"});
}

TEST_CASE("read_csv: skip_lines, skipped and NaN columns, no header, other delimiters") {
  scratch_dir dir("csv_options");
  // boston_house_prices.csv starts with a line of counts before its header
  write_text(dir / "boston.csv", "2,2,,\n\"X\",\"Y\"\n0.5,1\n1.5,2\n");
  const data::csv_table boston = data::read_csv(dir / "boston.csv", {.skip_lines = 1});
  CHECK(boston.columns == std::vector<std::string>{"X", "Y"});
  CHECK(boston.data == std::vector<double>{0.5, 1, 1.5, 2});
  // without skip_lines the count line is taken for the header, which cannot be
  check_has(error_of([&] { data::read_csv(dir / "boston.csv"); }), {"line 1, column 2", "'2' appears twice"});

  // a text date column: skipped by name, its fields never read
  write_text(dir / "dates.csv", "date,co2,flag\n1958-03-29,316.1,ok\n1958-04-05,,?\n1958-04-12,317.6,1\n");
  const data::csv_table co2 = data::read_csv(dir / "dates.csv", {.skip_columns = {"date"}, .nan_columns = {"flag"}});
  CHECK(co2.columns == std::vector<std::string>{"co2", "flag"});
  CHECK(co2.rows == 3);
  CHECK(co2(0, 0) == 316.1);
  CHECK(std::isnan(co2(0, 1)));
  CHECK(std::isnan(co2(1, 0)));
  CHECK(std::isnan(co2(1, 1)));
  CHECK(co2(2, 1) == 1);
  const data::csv_table only = data::read_csv(dir / "dates.csv", {.skip_columns = {"date", "flag"}, .drop_nan_rows = true});
  CHECK(only.data == std::vector<double>{316.1, 317.6});
  CHECK(only.dropped_rows == 1);
  // or read as NaN: a column of NaN, which drop_nan_rows would drop whole (so skip it instead)
  const data::csv_table nan_dates = data::read_csv(dir / "dates.csv", {.skip_columns = {"flag"}, .nan_columns = {"date"}});
  CHECK(std::isnan(nan_dates(0, 0)));
  CHECK(nan_dates(0, 1) == 316.1);
  check_has(error_of([&] { data::read_csv(dir / "dates.csv"); }), {"line 2, column 1", "'1958-03-29'"});

  // sklearn's diabetes files: blank-separated, no header
  write_text(dir / "blank.txt", "59 2  32.1\t101.0\n  48 1 21.6 87.0  \n");
  const data::csv_table d = data::read_csv(dir / "blank.txt", {.delimiter = ' ', .header = false});
  CHECK(d.columns == std::vector<std::string>{"0", "1", "2", "3"});
  CHECK(d.data == std::vector<double>{59, 2, 32.1, 101, 48, 1, 21.6, 87});
  const data::csv_table named =
      data::read_csv(dir / "blank.txt", {.delimiter = ' ', .header = false, .names = {"age", "sex", "bmi", "bp"}});
  CHECK(named.column("bmi") == std::vector<double>{32.1, 21.6});
  check_has(error_of([&] {
              data::read_csv(dir / "blank.txt", {.delimiter = ' ', .header = false, .names = {"age", "sex", "bmi"}});
            }),
            {"line 1, column 4", "4 fields where csv_options::names has 3"});
  check_has(error_of<ika::invalid_argument>(
                [&] { data::read_csv(dir / "blank.txt", {.delimiter = ' ', .names = {"a", "b", "c", "d"}}); }),
            {"names"});

  write_text(dir / "semi.csv", "a;b\n1,5;2\n");
  check_has(error_of([&] { data::read_csv(dir / "semi.csv", {.delimiter = ';'}); }), {"'1,5'"});
  write_text(dir / "tab.tsv", "a\tb\n1\t\n");
  const data::csv_table tab = data::read_csv(dir / "tab.tsv", {.delimiter = '\t'});
  CHECK(tab(0, 0) == 1);
  CHECK(std::isnan(tab(0, 1)));
}

TEST_CASE("data_file and default_data_dir: IKA_DATA_DIR, and the command that provides a missing file") {
  scratch_dir dir("data_dir");
  scoped_env env("IKA_DATA_DIR", dir.path.string());
  CHECK(data::default_data_dir() == dir.path);
  check_has(error_of([&] { data::data_file("co2.csv"); }),
            {"co2.csv", "file not found", "./scripts/setup.sh", "python3-statsmodels"});
  check_has(error_of([&] { data::data_file("boston_house_prices.csv"); }), {"python3-sklearn"});
  check_has(error_of([&] { data::data_file("other.csv"); }), {"not one of the files scripts/setup.sh provides"});
  write_text(dir / "co2.csv", "date,co2\n");
  CHECK(data::data_file("co2.csv") == dir / "co2.csv");
  scoped_env unset("IKA_DATA_DIR", "");
  CHECK(data::default_data_dir() == fs::path("/usr/local/share/ika/data"));
}

// --- the real data sets, each its own test case; absent files are reported, not passed over --

TEST_CASE("real data: Fashion-MNIST test split (dataset-fashion-mnist)") {
  try {
    const data::image_set test = data::load_mnist(data::split::test);
    CHECK(test.count == 10000);
    CHECK(test.rows == 28);
    CHECK(test.cols == 28);
    CHECK(test.images.size() == std::size_t(10000 * 28 * 28));
    std::array<int, 10> per_class{};
    for (int l : test.labels) {
      REQUIRE(l >= 0);
      REQUIRE(l <= 9);
      ++per_class[std::size_t(l)];
    }
    for (int c = 0; c < 10; ++c) CHECK(per_class[std::size_t(c)] == 1000);
    float lo = 1, hi = 0;
    for (float p : test.images) lo = std::min(lo, p), hi = std::max(hi, p);
    CHECK(lo == 0.0f);
    CHECK(hi == 1.0f);
    // the train labels (a small file): 60000, 6000 per class
    const data::idx_array train = data::read_idx(data::fashion_mnist_dir() / "train-labels-idx1-ubyte.gz", 1);
    CHECK(train.dims == std::vector<index_t>{60000});
    std::array<int, 10> train_class{};
    for (auto l : train.data) ++train_class[l];
    for (int c = 0; c < 10; ++c) CHECK(train_class[std::size_t(c)] == 6000);
  } catch (const data::data_error& e) {
    std::error_code ec;
    if (fs::exists(data::fashion_mnist_dir(), ec)) throw; // present but unreadable is a failure
    MESSAGE("skipped: ", std::string(e.what()));
  }
}

namespace {

// The data file, or nothing after reporting why the test case is skipped.
std::optional<fs::path> real_file(const char* name) {
  try {
    return data::data_file(name);
  } catch (const data::data_error& e) {
    MESSAGE("skipped: ", std::string(e.what()));
    return std::nullopt;
  }
}

} // namespace

TEST_CASE("real data: sklearn boston_house_prices.csv (scripts/setup.sh)") {
  const auto file = real_file("boston_house_prices.csv");
  if (!file) return;
  const data::csv_table t = data::read_csv(*file, {.skip_lines = 1});
  CHECK(t.rows == 506);
  CHECK(t.cols() == 14);
  CHECK(t.columns.front() == "CRIM");
  CHECK(t.columns.back() == "MEDV");
  for (double v : t.data) REQUIRE(std::isfinite(v));
  CHECK(t(0, t.column_index("CRIM")) == 0.00632);
  CHECK(t(0, t.column_index("MEDV")) == 24);
  CHECK(t(505, t.column_index("LSTAT")) == 7.88);
  const data::csv_table xy = data::select_columns(t, {"RM", "LSTAT", "MEDV"});
  CHECK(xy.cols() == 3);
  CHECK(xy(0, 0) == 6.575);
}

TEST_CASE("real data: statsmodels co2.csv (scripts/setup.sh)") {
  const auto file = real_file("co2.csv");
  if (!file) return;
  // weekly Mauna Loa CO2, 1958-03-29 to 2001-12-29; the date column is yyyymmdd
  const data::csv_table all = data::read_csv(*file);
  CHECK(all.columns == std::vector<std::string>{"date", "co2"});
  CHECK(all.rows == 2284);
  CHECK(all(0, 0) == 19580329);
  CHECK(all(0, 1) == 316.1);
  long missing = 0;
  for (double v : all.column("co2")) missing += std::isnan(v);
  CHECK(missing == 59);
  for (double v : all.column("date")) REQUIRE(std::isfinite(v));
  const data::csv_table co2 = data::read_csv(*file, {.skip_columns = {"date"}, .drop_nan_rows = true});
  CHECK(co2.columns == std::vector<std::string>{"co2"});
  CHECK(co2.rows == 2284 - 59);
  CHECK(co2.dropped_rows == 59);
  for (double v : co2.data) REQUIRE((v > 300 && v < 400));
}

TEST_CASE("real data: sklearn diabetes_data_raw.csv.gz and diabetes_target.csv.gz (scripts/setup.sh)") {
  const auto x_file = real_file("diabetes_data_raw.csv.gz"), y_file = real_file("diabetes_target.csv.gz");
  if (!x_file || !y_file) return;
  const data::csv_table x = data::read_csv(
      *x_file,
      {.delimiter = ' ', .header = false, .names = {"age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"}});
  const data::csv_table y = data::read_csv(*y_file, {.delimiter = ' ', .header = false, .names = {"target"}});
  CHECK(x.rows == 442);
  CHECK(x.cols() == 10);
  CHECK(y.rows == 442);
  CHECK(x(0, 0) == 59);
  CHECK(x(0, x.column_index("bmi")) == 32.1);
  CHECK(y(0, 0) == 151);
  for (double v : x.data) REQUIRE(std::isfinite(v));
}
