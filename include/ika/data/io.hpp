// SPDX-License-Identifier: MIT
#pragma once

// What every data reader shares: the error type, and reading a whole file that may be gzip'ed.
// The data headers need zlib: link the CMake target ika::data (ika::ika plus ZLIB::ZLIB).

#include <algorithm>
#include <climits>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <zlib.h>

#include "ika/core/error.hpp"

namespace ika::data {

// A data file that is missing, unreadable or not what its reader expects. The message names the
// file and the problem (and, for a text file, the line and column, which line() and column() also
// give, 1-based; 0 where the problem is not at one place).
class data_error : public std::runtime_error {
public:
  data_error(const std::filesystem::path& path, const std::string& problem, long line = 0, long column = 0)
      : std::runtime_error("ika: data file '" + path.string() + "': " + problem), path_(path), line_(line),
        column_(column) {}
  const std::filesystem::path& path() const noexcept { return path_; }
  long line() const noexcept { return line_; }
  long column() const noexcept { return column_; }

private:
  std::filesystem::path path_;
  long line_, column_;
};

// The bytes of a file as its reader sees them.
struct file_bytes {
  std::vector<unsigned char> bytes; // decompressed when the file is gzip'ed
  bool gzip = false;                // the file started with the gzip magic 1f 8b
};

namespace detail {

inline bool is_gzip(const std::vector<unsigned char>& b, std::size_t at = 0) {
  return b.size() - at >= 2 && b[at] == 0x1f && b[at + 1] == 0x8b;
}

// Inflates every gzip member of `in` (gzip allows several, concatenated). Strict where gzread is
// lenient: a stream cut short, a bad checksum and bytes after the last member are all refused.
inline std::vector<unsigned char> gunzip(const std::filesystem::path& path, const std::vector<unsigned char>& in) {
  z_stream zs{};
  if (inflateInit2(&zs, 15 + 16) != Z_OK) throw data_error(path, "zlib cannot start inflating (out of memory?)");
  struct end_inflate {
    z_stream* zs;
    ~end_inflate() { inflateEnd(zs); }
  } guard{&zs};

  // The last member's trailer holds its size mod 2^32: a good first guess for one member, capped
  // by deflate's largest ratio (about 1032:1) so a corrupt trailer cannot make us over-allocate.
  std::size_t guess = in.size() * 4;
  if (in.size() >= 18)
    guess = std::size_t(in[in.size() - 4]) | std::size_t(in[in.size() - 3]) << 8 |
            std::size_t(in[in.size() - 2]) << 16 | std::size_t(in[in.size() - 1]) << 24;
  std::vector<unsigned char> out(std::clamp<std::size_t>(guess, 1 << 16, in.size() * 1032 + (1 << 16)));

  std::size_t in_at = 0, out_at = 0;
  for (;;) {
    if (out_at == out.size()) out.resize(out.size() * 2);
    const auto in_chunk = uInt(std::min<std::size_t>(in.size() - in_at, UINT_MAX));
    const auto out_chunk = uInt(std::min<std::size_t>(out.size() - out_at, UINT_MAX));
    zs.next_in = const_cast<Bytef*>(in.data() + in_at);
    zs.avail_in = in_chunk;
    zs.next_out = out.data() + out_at;
    zs.avail_out = out_chunk;
    const int rc = inflate(&zs, Z_NO_FLUSH);
    in_at += in_chunk - zs.avail_in;
    out_at += out_chunk - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (in_at == in.size()) break;
      if (!is_gzip(in, in_at))
        throw data_error(path, ika::detail::concat("corrupt gzip file: ", in.size() - in_at,
                                                   " unexpected bytes after the end of the gzip stream"));
      inflateReset(&zs); // the next member
      continue;
    }
    if (rc == Z_DATA_ERROR || rc == Z_NEED_DICT)
      throw data_error(path, ika::detail::concat("corrupt gzip file: zlib says \"", zs.msg ? zs.msg : "invalid data",
                                                 "\" at compressed byte ", in_at, " of ", in.size()));
    if (rc == Z_MEM_ERROR) throw data_error(path, "zlib ran out of memory while inflating it");
    if (rc == Z_BUF_ERROR && in_at == in.size())
      throw data_error(path, ika::detail::concat("truncated gzip file: the compressed stream stops after ", in.size(),
                                                 " bytes, before its end marker and checksum"));
    if (rc != Z_OK && !(rc == Z_BUF_ERROR && out_at == out.size())) // never loop without progress
      throw data_error(path, ika::detail::concat("zlib failed to inflate it (error ", rc, ")"));
  }
  out.resize(out_at);
  return out;
}

} // namespace detail

// Reads the whole file; a file that starts with the gzip magic 1f 8b is inflated (all of it,
// checksums included). Throws data_error when the file is missing, unreadable or corrupt.
inline file_bytes read_file(const std::filesystem::path& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) throw data_error(path, "file not found");
  if (std::filesystem::is_directory(status)) throw data_error(path, "is a directory, not a file");
  file_bytes f;
  {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) throw data_error(path, "cannot open it for reading");
    const std::streamoff size = in.tellg();
    if (size < 0) throw data_error(path, "cannot read its size");
    f.bytes.resize(std::size_t(size));
    in.seekg(0);
    if (!in.read(reinterpret_cast<char*>(f.bytes.data()), size)) throw data_error(path, "cannot read it");
  }
  if (detail::is_gzip(f.bytes)) {
    f.bytes = detail::gunzip(path, f.bytes);
    f.gzip = true;
  }
  return f;
}

} // namespace ika::data
