// SPDX-License-Identifier: MIT
#pragma once

// A progress bar for training loops: redrawn in place on a terminal, plain lines (every tenth of
// the work) when stdout is a file or a pipe, so logs stay readable.

#include <chrono>
#include <cstdio>
#include <string>

#include <unistd.h>

namespace ika_examples {

class progress_bar {
public:
  progress_bar(std::string label, long total, std::string unit = "img")
      : label_(std::move(label)), unit_(std::move(unit)), total_(total), start_(clock::now()),
        terminal_(isatty(fileno(stdout)) != 0) {}

  // `done` units finished; `status` is shown after the bar (loss, accuracy, …)
  void update(long done, const std::string& status) {
    const double seconds = elapsed();
    const double rate = seconds > 0 ? double(done) / seconds : 0.0;
    const double eta = rate > 0 ? double(total_ - done) / rate : 0.0;
    const double fraction = total_ > 0 ? double(done) / double(total_) : 1.0;
    if (terminal_) {
      constexpr int width = 28;
      const int filled = int(fraction * width);
      std::string bar(std::size_t(filled), '#');
      bar.resize(width, '.');
      std::printf("\r%s [%s] %3d%% %s | %.0f %s/s | ETA %s   ", label_.c_str(), bar.c_str(), int(100 * fraction),
                  status.c_str(), rate, unit_.c_str(), clock_text(eta).c_str());
      std::fflush(stdout);
    } else if (int(10 * fraction) > last_tenth_ || done == total_) {
      last_tenth_ = int(10 * fraction);
      std::printf("%s %3d%% %s | %.0f %s/s | ETA %s\n", label_.c_str(), int(100 * fraction), status.c_str(), rate,
                  unit_.c_str(), clock_text(eta).c_str());
      std::fflush(stdout);
    }
  }
  // ends the line of a terminal bar
  void finish() {
    if (terminal_) std::printf("\n");
  }
  double elapsed() const { return std::chrono::duration<double>(clock::now() - start_).count(); }

  static std::string clock_text(double seconds) {
    const long s = long(seconds + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
    return buf;
  }

private:
  using clock = std::chrono::steady_clock;
  std::string label_, unit_;
  long total_;
  clock::time_point start_;
  bool terminal_;
  int last_tenth_ = 0;
};

} // namespace ika_examples
