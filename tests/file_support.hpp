// SPDX-License-Identifier: MIT
#pragma once

// Helpers of the tests that write and read files: a scratch directory of their own, and whole
// files as bytes.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <system_error>
#include <vector>

namespace ika_test {

using bytes = std::vector<unsigned char>;

// A fresh directory of its own under the system's temporary directory, removed at the end; the
// random suffix keeps concurrent runs (two build trees, ctest -j) apart.
struct scratch_dir {
  std::filesystem::path path;

  explicit scratch_dir(const std::string& name)
      : path(std::filesystem::temp_directory_path() /
             ("ika_test_" + name + "_" + std::to_string(std::random_device{}()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  scratch_dir(const scratch_dir&) = delete; // one owner removes it
  scratch_dir& operator=(const scratch_dir&) = delete;
  ~scratch_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }

  std::filesystem::path operator/(const std::string& name) const { return path / name; }

  // The names of what the directory holds.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path)) out.push_back(e.path().filename().string());
    return out;
  }
};

inline bytes read_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return bytes(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::filesystem::path& p, const bytes& b) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
  REQUIRE(out.good());
}

} // namespace ika_test
