// SPDX-License-Identifier: MIT
#pragma once

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>

namespace ika {

// Every error raised at the API edge: the message names the argument and what was expected.
class invalid_argument : public std::invalid_argument {
public:
  invalid_argument(std::string_view argument, const std::string& expected)
      : std::invalid_argument("ika: argument '" + std::string(argument) + "': expected " + expected),
        argument_(argument) {}
  const std::string& argument() const noexcept { return argument_; }

private:
  std::string argument_;
};

namespace detail {

// Formats any streamable values into one string: expected_message("shape (", b, ", ", h, ")").
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

template <class... Parts>
void require(bool condition, std::string_view argument, const Parts&... expected) {
  if (!condition) throw invalid_argument(argument, concat(expected...));
}

inline void require_finite_positive(double value, std::string_view argument) {
  require(std::isfinite(value) && value > 0, argument, "a finite value > 0, got ", value);
}

} // namespace detail
} // namespace ika
