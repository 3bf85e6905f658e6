// SPDX-License-Identifier: MIT
#pragma once

// IDX files (the format of MNIST and Fashion-MNIST), raw or gzip'ed, and the MNIST image sets.
//
//   offset  size      field
//   0       2         zero
//   2       1         type code: 0x08 = unsigned byte (the only one read here)
//   3       1         number of dimensions n >= 1
//   4       4n        dimensions, big-endian uint32, outermost first
//   4+4n    Π dims    values, row-major
//
// MNIST images are 0x00000803 (N, rows, cols), labels 0x00000801 (N). read_idx checks all of the
// header and that the file holds exactly the bytes it declares, none missing and none extra.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <iomanip>
#include <string>
#include <system_error>
#include <vector>

#include "ika/core/error.hpp"
#include "ika/core/tensor_view.hpp"
#include "ika/data/io.hpp"
#include "ika/data/paths.hpp"

namespace ika::data {

struct idx_array {
  std::vector<std::uint8_t> data; // row-major
  std::vector<index_t> dims;      // outermost first
};

namespace detail {

inline const char* idx_type_name(unsigned code) {
  switch (code) {
  case 0x08: return "unsigned byte";
  case 0x09: return "signed byte";
  case 0x0B: return "int16";
  case 0x0C: return "int32";
  case 0x0D: return "float32";
  case 0x0E: return "float64";
  default: return "unknown";
  }
}

inline std::string dims_str(const std::vector<index_t>& dims) {
  std::string s;
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += 'x';
    s += std::to_string(dims[i]);
  }
  return s;
}

inline idx_array parse_idx(const std::filesystem::path& path, const file_bytes& file, int expected_dims) {
  const std::vector<unsigned char>& b = file.bytes;
  const std::string size_note = file.gzip ? " (after gzip decompression)" : "";
  auto fail = [&](const std::string& problem) { throw data_error(path, problem); };
  if (b.size() < 4)
    fail(ika::detail::concat("truncated: ", b.size(), " bytes", size_note, ", too short for the 4-byte IDX magic"));
  const std::uint32_t magic = std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 | std::uint32_t(b[2]) << 8 | b[3];
  auto magic_str = [](std::uint32_t m) { return ika::detail::concat("0x", std::hex, std::setw(8), std::setfill('0'), m); };
  if (b[0] != 0 || b[1] != 0)
    fail("wrong magic " + magic_str(magic) +
         ": not an IDX file (those start with two zero bytes, a type code and the number of dimensions: "
         "0x00000803 for MNIST images, 0x00000801 for labels)");
  if (b[2] != 0x08)
    fail(ika::detail::concat("unsupported IDX type code 0x", std::hex, unsigned(b[2]), " (", idx_type_name(b[2]),
                             ") in magic ", magic_str(magic), ": only unsigned-byte (0x08) files are read"));
  const unsigned n = b[3];
  if (n == 0) fail("wrong magic " + magic_str(magic) + ": an IDX file with 0 dimensions");
  if (expected_dims > 0 && int(n) != expected_dims)
    fail(ika::detail::concat("wrong magic ", magic_str(magic), ": expected ", expected_dims, " dimension(s) (magic ",
                             magic_str(0x800u + unsigned(expected_dims)), "), the file has ", n));
  const std::size_t header = 4 + 4 * std::size_t(n);
  if (b.size() < header)
    fail(ika::detail::concat("truncated: the header declares ", n, " dimensions, which need ", header,
                             " header bytes; the file has ", b.size(), size_note));

  idx_array a;
  std::uint64_t count = 1;
  bool zero = false, huge = false; // huge: the product of the dimensions exceeds 64 bits
  for (unsigned i = 0; i < n; ++i) {
    const unsigned char* p = b.data() + 4 + 4 * i;
    const std::uint32_t d = std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
    a.dims.push_back(index_t(d));
    zero = zero || d == 0;
    if (d != 0 && count > UINT64_MAX / d) huge = true;
    if (!huge) count *= d;
  }
  if (zero) count = 0, huge = false;
  const std::uint64_t room = b.size() - header;
  if (huge || count > room)
    fail(ika::detail::concat("truncated: dimensions ", dims_str(a.dims), " need ",
                             huge ? std::string("more than 2^64") : std::to_string(count), " data bytes after the ",
                             header, "-byte header; the file has ", room, size_note));
  if (count < room)
    fail(ika::detail::concat("wrong size: ", room - count, " unexpected bytes after the data (dimensions ",
                             dims_str(a.dims), ": the header declares ", header + count, " bytes, the file has ",
                             b.size(), size_note, ")"));
  a.data.assign(b.begin() + std::ptrdiff_t(header), b.end());
  return a;
}

} // namespace detail

// Reads an unsigned-byte IDX file, raw or gzip'ed. expected_dims > 0 also requires that many
// dimensions (3 for MNIST images, 1 for labels). Throws data_error naming the file and the problem.
inline idx_array read_idx(const std::filesystem::path& path, int expected_dims = 0) {
  ika::detail::require(expected_dims >= 0 && expected_dims <= 255, "expected_dims",
                       "0 (any) or a number of dimensions from 1 to 255, got ", expected_dims);
  return detail::parse_idx(path, read_file(path), expected_dims);
}

enum class split { train, test };

// MNIST-style images and labels.
struct image_set {
  std::vector<float> images; // (count, 1, rows, cols), row-major, pixel / 255 in [0, 1]
  std::vector<int> labels;   // count labels in 0..9
  index_t count = 0, rows = 0, cols = 0;
  const float* image(index_t i) const { return images.data() + i * rows * cols; }
};

namespace detail {

// The first existing of the names MNIST files go by: gzip'ed as distributed (and as Debian ships
// Fashion-MNIST), gunzip'ed, or with a dot as some mirrors spell them.
inline std::filesystem::path find_mnist_file(const std::filesystem::path& dir, const std::string& stem,
                                             const std::string& kind) {
  const std::filesystem::path names[] = {stem + "-idx" + kind + "-ubyte.gz", stem + "-idx" + kind + "-ubyte",
                                         stem + ".idx" + kind + "-ubyte"};
  std::error_code ec;
  for (const auto& name : names)
    if (std::filesystem::is_regular_file(dir / name, ec)) return dir / name;
  std::string problem = "file not found (nor " + names[1].string() + " or " + names[2].string() + " next to it)";
  auto same_dir = [](const std::filesystem::path& x, const std::filesystem::path& y) {
    return (x / "").lexically_normal() == (y / "").lexically_normal();
  };
  if (same_dir(dir, fashion_mnist_dir()) || same_dir(dir, "/usr/share/datasets/fashion-mnist"))
    problem += "; " + std::string(fashion_mnist_hint);
  throw data_error(dir / names[0], problem);
}

} // namespace detail

// The train (60000) or test (10000) split of MNIST or Fashion-MNIST from `dir`, which holds the
// files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and
// t10k-labels-idx1-ubyte.gz (or those names without .gz). `limit` > 0 keeps the first images only
// (0: all); both files are still checked whole. Images must be 28x28 and labels in 0..9, as many
// as images.
inline image_set load_mnist(const std::filesystem::path& dir, split which, index_t limit = 0) {
  ika::detail::require(limit >= 0, "limit", "a number of images >= 0 (0: all), got ", limit);
  const std::string stem = which == split::train ? "train" : "t10k";
  const auto image_path = detail::find_mnist_file(dir, stem + "-images", "3");
  const auto label_path = detail::find_mnist_file(dir, stem + "-labels", "1");
  const idx_array images = read_idx(image_path, 3), labels = read_idx(label_path, 1);
  if (images.dims[1] != 28 || images.dims[2] != 28)
    throw data_error(image_path, "expected 28x28 images, the file has " + detail::dims_str(images.dims));
  if (labels.dims[0] != images.dims[0])
    throw data_error(label_path, ika::detail::concat(labels.dims[0], " labels for the ", images.dims[0], " images of ",
                                                     image_path.string(), ": the counts must agree"));
  for (std::size_t i = 0; i < labels.data.size(); ++i)
    if (labels.data[i] > 9)
      throw data_error(label_path, ika::detail::concat("label ", int(labels.data[i]), " at index ", i,
                                                       " is outside 0..9"));

  image_set set;
  set.rows = images.dims[1];
  set.cols = images.dims[2];
  set.count = limit > 0 ? std::min(limit, images.dims[0]) : images.dims[0];
  const std::size_t pixels = std::size_t(set.count * set.rows * set.cols);
  set.images.resize(pixels);
  for (std::size_t i = 0; i < pixels; ++i) set.images[i] = float(images.data[i]) / 255.0f;
  set.labels.assign(labels.data.begin(), labels.data.begin() + set.count);
  return set;
}

// The same from fashion_mnist_dir() (Debian's dataset-fashion-mnist).
inline image_set load_mnist(split which, index_t limit = 0) {
  return load_mnist(fashion_mnist_dir(), which, limit);
}

} // namespace ika::data
