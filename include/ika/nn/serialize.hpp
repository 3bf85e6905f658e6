// SPDX-License-Identifier: MIT
#pragma once

// Saving and loading a module's parameters: save(path, params) and load(path, params), where
// params is a parameter_list (see module.hpp; e.g. parameters(model)).
//
// File format, version 1. Every integer is little-endian; values are IEEE 754 in the byte order
// of the same-sized integer, so a file reads the same on every platform.
//
//   offset  size        field
//   0       8           magic, the ASCII bytes "IKAPARAM"
//   8       4  uint32   format version, 1
//   12      4  uint32   value type: 1 = float32, 2 = float64
//   16      8  uint64   parameter count N
//   then N times:
//           4  uint32   name length n
//           n           name bytes (as given, no terminator)
//           4  uint32   rank r, 0 to 4
//           8r int64    dims, outermost first
//           s·Π dims    values, row-major, s = 4 or 8 bytes by the value type
//   last    4  uint32   CRC-32 of every byte before it (zlib's crc32: polynomial 0xEDB88320
//                       reflected, initial value and final xor 0xFFFFFFFF)
//
// save writes the whole file to a temporary file next to `path`, flushes it (and fsyncs it on
// POSIX), then renames it over `path`: a crash leaves either the old file or the new one.
//
// load reads the whole file and checks it before changing any parameter: the magic, the version,
// the value type code, the structure (a short file is reported as truncated), the checksum, then
// that the value type is the parameters' own and that the names and shapes match the list, in
// order. A float32 file is never converted to double parameters nor the reverse: load refuses
// it, so a loaded model always holds exactly the bits that were saved. Problems with the file
// throw parameter_file_error (a std::runtime_error) naming the file; a malformed parameter list
// (undefined variable, empty or repeated name) throws ika::invalid_argument.

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "ika/autodiff/tensor.hpp"
#include "ika/core/error.hpp"
#include "ika/nn/module.hpp"

namespace ika::nn {

// A parameter file that cannot be written or read, or is not what the parameters expect.
class parameter_file_error : public std::runtime_error {
public:
  parameter_file_error(const std::filesystem::path& path, const std::string& problem)
      : std::runtime_error("ika: parameter file '" + path.string() + "': " + problem), path_(path) {}
  const std::filesystem::path& path() const noexcept { return path_; }

private:
  std::filesystem::path path_;
};

inline constexpr std::uint32_t parameter_file_version = 1;

} // namespace ika::nn

namespace ika::nn::detail {

inline constexpr std::string_view param_magic = "IKAPARAM";
inline constexpr std::uint32_t param_type_float32 = 1, param_type_float64 = 2;

inline constexpr std::array<std::uint32_t, 256> crc32_table = [] {
  std::array<std::uint32_t, 256> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}();

// zlib's crc32(crc, data, n): pass the previous result to continue a running checksum.
inline std::uint32_t crc32(const unsigned char* data, std::size_t n, std::uint32_t crc = 0) {
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = crc32_table[(crc ^ data[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

template <class T>
constexpr std::uint32_t param_type_code() {
  return std::is_same_v<T, float> ? param_type_float32 : param_type_float64;
}

inline const char* param_type_name(std::uint32_t code) {
  return code == param_type_float32 ? "float32" : code == param_type_float64 ? "float64" : "unknown";
}

inline void put_le(std::vector<unsigned char>& out, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<unsigned char>(v >> (8 * i)));
}

inline std::uint64_t get_le(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= std::uint64_t(p[i]) << (8 * i);
  return v;
}

template <class T>
std::vector<unsigned char> encode_parameters(const parameter_list<T>& params) {
  using bits = std::conditional_t<std::is_same_v<T, float>, std::uint32_t, std::uint64_t>;
  std::vector<unsigned char> out(param_magic.begin(), param_magic.end());
  put_le(out, parameter_file_version, 4);
  put_le(out, param_type_code<T>(), 4);
  put_le(out, params.size(), 8);
  for (const auto& p : params) {
    put_le(out, p.name.size(), 4);
    out.insert(out.end(), p.name.begin(), p.name.end());
    const ad::tensor<T>& v = p.value.value();
    put_le(out, std::uint64_t(v.rank()), 4);
    for (index_t d : v.shape()) put_le(out, std::uint64_t(d), 8);
    for (T x : v) put_le(out, std::bit_cast<bits>(x), int(sizeof(T)));
  }
  put_le(out, crc32(out.data(), out.size()), 4);
  return out;
}

template <class T>
void check_parameter_list(const parameter_list<T>& params) {
  std::set<std::string_view> seen;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    ika::detail::require(p.value.defined(), "params", "defined variables, got an undefined one at index ", i, " ('",
                         p.name, "')");
    ika::detail::require(!p.name.empty() && p.name.size() <= 0xFFFFFFFFu, "params",
                         "non-empty names, got an empty one at index ", i);
    ika::detail::require(seen.insert(p.name).second, "params", "distinct names, got '", p.name, "' twice");
  }
}

// One parameter of a file, located in its bytes.
struct param_record {
  std::string name;
  ad::shape shape;
  std::size_t values = 0; // offset of the first value
};

// Reads the structure of a whole file, checking it as the file comment says (up to the checksum).
inline std::vector<param_record> parse_parameter_file(const std::filesystem::path& path,
                                                      const std::vector<unsigned char>& bytes,
                                                      std::uint32_t& type_code) {
  auto fail = [&](const std::string& problem) { throw parameter_file_error(path, problem); };
  std::size_t at = 0;
  auto need = [&](std::size_t n, const char* what) {
    if (bytes.size() - at < n)
      fail(ika::detail::concat("truncated: ", what, " needs ", n, " bytes at offset ", at, ", the file has ",
                               bytes.size(), " bytes"));
  };
  auto read = [&](int n, const char* what) {
    need(std::size_t(n), what);
    const std::uint64_t v = get_le(bytes.data() + at, n);
    at += std::size_t(n);
    return v;
  };

  const std::size_t head = std::min(bytes.size(), param_magic.size());
  if (!std::equal(bytes.begin(), bytes.begin() + std::ptrdiff_t(head), param_magic.begin()))
    fail("wrong magic: not an ika parameter file (it does not start with \"IKAPARAM\")");
  need(param_magic.size(), "the magic");
  at = param_magic.size();
  const auto version = read(4, "the format version");
  if (version != parameter_file_version)
    fail(ika::detail::concat("unsupported format version ", version, " (this build reads version ",
                             parameter_file_version, ")"));
  type_code = std::uint32_t(read(4, "the value type"));
  if (type_code != param_type_float32 && type_code != param_type_float64)
    fail(ika::detail::concat("unsupported value type code ", type_code, " (1 = float32, 2 = float64)"));
  const std::size_t elem = type_code == param_type_float32 ? 4 : 8;
  const std::uint64_t count = read(8, "the parameter count");

  std::vector<param_record> records;
  for (std::uint64_t k = 0; k < count; ++k) {
    param_record r;
    const std::uint64_t n = read(4, "a name length");
    need(std::size_t(n), "a parameter name");
    r.name.assign(reinterpret_cast<const char*>(bytes.data() + at), std::size_t(n));
    at += std::size_t(n);
    const std::uint64_t rank = read(4, "a rank");
    if (rank > std::uint64_t(ad::shape::max_rank))
      fail(ika::detail::concat("corrupt: parameter '", r.name, "' has rank ", rank, " (at most 4)"));
    std::array<index_t, 4> dims{};
    for (std::uint64_t i = 0; i < rank; ++i) {
      const auto d = std::int64_t(read(8, "a dimension"));
      if (d < 0) fail(ika::detail::concat("corrupt: parameter '", r.name, "' has a negative dimension ", d));
      dims[std::size_t(i)] = index_t(d);
    }
    // The element count, saturated at one more than the values left in the file can hold.
    const std::uint64_t room = (bytes.size() - at) / elem;
    std::uint64_t numel = 1;
    for (std::uint64_t i = 0; i < rank; ++i) {
      const auto d = std::uint64_t(dims[std::size_t(i)]);
      numel = d == 0 ? 0 : numel > room / d ? room + 1 : numel * d;
    }
    r.shape = ad::shape(std::span<const index_t>(dims.data(), std::size_t(rank)));
    if (numel > room)
      fail(ika::detail::concat("truncated: the values of parameter '", r.name, "' of shape ", r.shape.str(),
                               " need more than the ", bytes.size() - at, " bytes left at offset ", at));
    r.values = at;
    at += std::size_t(numel) * elem;
    records.push_back(std::move(r));
  }
  need(4, "the checksum");
  if (bytes.size() - at > 4)
    fail(ika::detail::concat("corrupt: ", bytes.size() - at - 4, " unexpected bytes after the last parameter"));
  const auto stored = std::uint32_t(get_le(bytes.data() + at, 4));
  const std::uint32_t actual = crc32(bytes.data(), at);
  if (stored != actual)
    fail(ika::detail::concat("checksum mismatch (the file says 0x", std::hex, stored, ", its contents give 0x", actual,
                             "): the file is corrupt"));
  return records;
}

} // namespace ika::nn::detail

namespace ika::nn {

// Writes the parameters to `path` (format above), replacing any file there only once the new one
// is complete. A parent directory must exist.
template <class T>
void save(const std::filesystem::path& path, const parameter_list<T>& params) {
  detail::check_parameter_list(params);
  const std::vector<unsigned char> bytes = detail::encode_parameters(params);

  // A fresh name next to the target (same file system, so the rename is atomic).
  std::random_device entropy;
  std::filesystem::path tmp;
  std::FILE* f = nullptr;
  int error = 0;
  for (int attempt = 0; attempt < 16 && !f; ++attempt) {
    tmp = path;
    tmp += ika::detail::concat(".tmp-", std::hex, entropy(), entropy());
    errno = 0;
    f = std::fopen(tmp.string().c_str(), "wbx"); // x: never reuse an existing file
    error = errno;
    if (!f && error != EEXIST) break;
  }
  if (!f)
    throw parameter_file_error(path, "cannot create a temporary file " + tmp.string() + ": " +
                                         std::generic_category().message(error));
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0;
  error = errno;
#if defined(__unix__) || defined(__APPLE__)
  if (ok && ::fsync(::fileno(f)) != 0) {
    ok = false;
    error = errno;
  }
#endif
  if (std::fclose(f) != 0 && ok) {
    ok = false;
    error = errno;
  }
  std::error_code ec;
  if (!ok) {
    std::filesystem::remove(tmp, ec);
    throw parameter_file_error(path, "cannot write " + tmp.string() + ": " + std::generic_category().message(error));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw parameter_file_error(path, "cannot rename " + tmp.string() + " over it: " + ec.message());
  }
}

// Reads `path` into the parameters' values (written through their shared handles). Nothing is
// changed unless the whole file checks out; see the file comment for what is checked.
template <class T>
void load(const std::filesystem::path& path, const parameter_list<T>& params) {
  detail::check_parameter_list(params);
  std::vector<unsigned char> bytes;
  {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw parameter_file_error(path, "cannot open it for reading");
    const std::streamoff size = in.tellg();
    if (size < 0) throw parameter_file_error(path, "cannot read its size");
    bytes.resize(std::size_t(size));
    in.seekg(0);
    if (!in.read(reinterpret_cast<char*>(bytes.data()), size))
      throw parameter_file_error(path, "cannot read it");
  }
  std::uint32_t type_code = 0;
  const std::vector<detail::param_record> records = detail::parse_parameter_file(path, bytes, type_code);

  auto fail = [&](const std::string& problem) { throw parameter_file_error(path, problem); };
  if (type_code != detail::param_type_code<T>())
    fail(ika::detail::concat("wrong value type: the file holds ", detail::param_type_name(type_code),
                             " values, the parameters are ", detail::param_type_name(detail::param_type_code<T>()),
                             " (no conversion is done)"));
  const std::size_t common = std::min(records.size(), params.size());
  for (std::size_t i = 0; i < common; ++i) {
    if (records[i].name != params[i].name)
      fail(ika::detail::concat("parameter name mismatch at index ", i, ": the file has '", records[i].name,
                               "', the module expects '", params[i].name, "'"));
    if (!(records[i].shape == params[i].value.shape()))
      fail(ika::detail::concat("parameter shape mismatch for '", params[i].name, "': the file has ",
                               records[i].shape.str(), ", the module expects ", params[i].value.shape().str()));
  }
  if (records.size() != params.size())
    fail(ika::detail::concat("parameter count mismatch: the file holds ", records.size(), " parameters, the module ",
                             params.size(), "; first unmatched: '",
                             records.size() > common ? records[common].name : params[common].name, "' (",
                             records.size() > common ? "only in the file" : "missing from the file", ")"));

  using bits = std::conditional_t<std::is_same_v<T, float>, std::uint32_t, std::uint64_t>;
  for (std::size_t i = 0; i < params.size(); ++i) {
    ad::variable<T> v = params[i].value; // shares the module's storage
    const unsigned char* p = bytes.data() + records[i].values;
    for (index_t j = 0; j < v.size(); ++j, p += sizeof(T))
      v.value()[j] = std::bit_cast<T>(bits(detail::get_le(p, int(sizeof(T)))));
  }
}

} // namespace ika::nn
