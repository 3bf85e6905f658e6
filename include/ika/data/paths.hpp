// SPDX-License-Identifier: MIT
#pragma once

// Where the data sets live by default, and which command provides each one.
//
//   Fashion-MNIST   /usr/share/datasets/fashion-mnist/   Debian package dataset-fashion-mnist
//   regression sets default_data_dir():                  scripts/setup.sh extracts them from the
//                   $IKA_DATA_DIR, else                  Debian packages python3-sklearn and
//                   /usr/local/share/ika/data/           python3-statsmodels (without installing
//                                                        those, which pull in SciPy and pandas)

#include <array>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "ika/data/io.hpp"

namespace ika::data {

// $IKA_DATA_DIR when set and not empty, else /usr/local/share/ika/data (where setup.sh puts the
// files; a fixed path because a header-only library cannot know where its repository is).
inline std::filesystem::path default_data_dir() {
  const char* env = std::getenv("IKA_DATA_DIR");
  if (env && *env) return env;
  return "/usr/local/share/ika/data";
}

// The directory of the Fashion-MNIST *-ubyte.gz files: the IKA_FASHION_MNIST_DIR macro when the
// build defines it (ika's own CMake targets do, from the cache variable of the same name), else
// Debian's location.
inline std::filesystem::path fashion_mnist_dir() {
#ifdef IKA_FASHION_MNIST_DIR
  return IKA_FASHION_MNIST_DIR;
#else
  return "/usr/share/datasets/fashion-mnist";
#endif
}

inline constexpr std::string_view fashion_mnist_hint =
    "Fashion-MNIST comes with the Debian package dataset-fashion-mnist: apt-get install dataset-fashion-mnist "
    "(or ./scripts/setup.sh)";

namespace detail {

// The files scripts/setup.sh extracts into default_data_dir(), and their Debian packages.
inline constexpr std::array<std::pair<std::string_view, std::string_view>, 4> known_data_files{{
    {"boston_house_prices.csv", "python3-sklearn"},
    {"diabetes_data_raw.csv.gz", "python3-sklearn"},
    {"diabetes_target.csv.gz", "python3-sklearn"},
    {"co2.csv", "python3-statsmodels"},
}};

} // namespace detail

// default_data_dir() / name when that file exists; otherwise throws data_error saying which
// command provides it, e.g. read_csv(data_file("co2.csv"), ...).
inline std::filesystem::path data_file(std::string_view name) {
  const std::filesystem::path dir = default_data_dir(), file = dir / name;
  std::error_code ec;
  if (std::filesystem::is_regular_file(file, ec)) return file;
  std::string hint;
  for (const auto& [known, package] : detail::known_data_files)
    if (known == name)
      hint = "; ./scripts/setup.sh extracts it from the Debian package " + std::string(package) +
             " (into $IKA_DATA_DIR when set, else /usr/local/share/ika/data)";
  if (hint.empty())
    hint = "; it is not one of the files scripts/setup.sh provides (set IKA_DATA_DIR to the directory that has it)";
  throw data_error(file, "file not found" + hint);
}

} // namespace ika::data
