// SPDX-License-Identifier: MIT
#pragma once

// `--name value` options with defaults and a generated --help; unknown options and malformed
// values are errors that name the option.

#include <cstdio>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace ika_examples {

class options {
public:
  options(std::string program, std::string summary) : program_(std::move(program)), summary_(std::move(summary)) {}

  void add(const std::string& name, std::string fallback, std::string help) {
    order_.push_back(name);
    entries_[name] = {std::move(fallback), std::move(help), false};
  }

  // false when --help was asked (the help is printed)
  bool parse(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "--help" || arg == "-h") {
        print_help();
        return false;
      }
      if (arg.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + arg + "' (options are --name value)");
      std::string name = arg.substr(2), value;
      if (const auto eq = name.find('='); eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
      } else {
        if (i + 1 >= argc) throw std::invalid_argument("option --" + name + " needs a value");
        value = argv[++i];
      }
      const auto it = entries_.find(name);
      if (it == entries_.end()) throw std::invalid_argument("unknown option --" + name + " (see --help)");
      it->second.value = value;
      it->second.given = true;
    }
    return true;
  }

  const std::string& text(const std::string& name) const { return entries_.at(name).value; }
  bool given(const std::string& name) const { return entries_.at(name).given; }
  long integer(const std::string& name) const {
    const std::string& v = text(name);
    char* end = nullptr;
    const long x = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0') throw std::invalid_argument("option --" + name + ": expected an integer, got '" + v + "'");
    return x;
  }
  double real(const std::string& name) const {
    const std::string& v = text(name);
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0') throw std::invalid_argument("option --" + name + ": expected a number, got '" + v + "'");
    return x;
  }

  void print_help() const {
    std::printf("%s: %s\n\noptions:\n", program_.c_str(), summary_.c_str());
    for (const auto& name : order_) {
      const auto& e = entries_.at(name);
      std::printf("  --%-14s %s (default: %s)\n", name.c_str(), e.help.c_str(), e.value.c_str());
    }
  }

private:
  struct entry {
    std::string value, help;
    bool given;
  };
  std::string program_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, entry> entries_;
};

} // namespace ika_examples
