// SPDX-License-Identifier: MIT
#pragma once

// Minimal SVG charts for the examples: line charts (learning curves) and heat maps (attention
// maps), written with the standard library only.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ika_examples::svg {

struct series {
  std::string name;
  std::vector<double> x, y;
  std::string color = "#1f77b4";
};

inline std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

inline void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// One panel with axes, ticks, a title and a legend; y_log draws a log10 axis.
inline std::string line_chart_panel(const std::vector<series>& lines, const std::string& title, const std::string& x_label,
                                    const std::string& y_label, double left, double top, double width, double height,
                                    bool y_log = false) {
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  auto ty = [&](double v) { return y_log ? std::log10(std::max(v, 1e-12)) : v; };
  for (const auto& s : lines)
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      x0 = std::min(x0, s.x[i]);
      x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, ty(s.y[i]));
      y1 = std::max(y1, ty(s.y[i]));
    }
  if (!(x1 > x0)) x1 = x0 + 1;
  if (!(y1 > y0)) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  const double pl = left + 55, pt = top + 30, pw = width - 70, ph = height - 75;
  auto px = [&](double v) { return pl + (v - x0) / (x1 - x0) * pw; };
  auto py = [&](double v) { return pt + ph - (ty(v) - y0) / (y1 - y0) * ph; };
  std::ostringstream o;
  o << "<text x='" << left + width / 2 << "' y='" << top + 18 << "' text-anchor='middle' font-size='14'>" << title
    << "</text>\n";
  o << "<rect x='" << pl << "' y='" << pt << "' width='" << pw << "' height='" << ph
    << "' fill='none' stroke='#444'/>\n";
  for (int t = 0; t <= 4; ++t) {
    const double xv = x0 + (x1 - x0) * t / 4, yv = y0 + (y1 - y0) * t / 4;
    const double gx = pl + pw * t / 4, gy = pt + ph - ph * t / 4;
    o << "<line x1='" << gx << "' y1='" << pt << "' x2='" << gx << "' y2='" << pt + ph << "' stroke='#ddd'/>\n";
    o << "<line x1='" << pl << "' y1='" << gy << "' x2='" << pl + pw << "' y2='" << gy << "' stroke='#ddd'/>\n";
    o << "<text x='" << gx << "' y='" << pt + ph + 15 << "' text-anchor='middle' font-size='11'>" << number(xv)
      << "</text>\n";
    o << "<text x='" << pl - 5 << "' y='" << gy + 4 << "' text-anchor='end' font-size='11'>"
      << number(y_log ? std::pow(10.0, yv) : yv) << "</text>\n";
  }
  o << "<text x='" << pl + pw / 2 << "' y='" << pt + ph + 33 << "' text-anchor='middle' font-size='12'>" << x_label
    << "</text>\n";
  o << "<text x='" << left + 12 << "' y='" << pt + ph / 2 << "' text-anchor='middle' font-size='12' transform='rotate(-90 "
    << left + 12 << " " << pt + ph / 2 << ")'>" << y_label << "</text>\n";
  for (std::size_t k = 0; k < lines.size(); ++k) {
    const auto& s = lines[k];
    o << "<polyline fill='none' stroke='" << s.color << "' stroke-width='1.8' points='";
    for (std::size_t i = 0; i < s.x.size(); ++i) o << px(s.x[i]) << "," << py(s.y[i]) << " ";
    o << "'/>\n";
    const double ly = pt + 14 + 16 * double(k);
    o << "<line x1='" << pl + pw - 150 << "' y1='" << ly - 4 << "' x2='" << pl + pw - 130 << "' y2='" << ly - 4
      << "' stroke='" << s.color << "' stroke-width='2'/>\n";
    o << "<text x='" << pl + pw - 125 << "' y='" << ly << "' font-size='11'>" << s.name << "</text>\n";
  }
  return o.str();
}

inline std::string document(double width, double height, const std::string& body) {
  std::ostringstream o;
  o << "<svg xmlns='http://www.w3.org/2000/svg' width='" << width << "' height='" << height << "' viewBox='0 0 " << width
    << " " << height << "' font-family='sans-serif'>\n<rect width='100%' height='100%' fill='white'/>\n"
    << body << "</svg>\n";
  return o.str();
}

// A grid of `rows × cols` cells shaded from white (smallest value) to dark red (largest), or
// gray levels from 0, at (left, top) with square cells of `cell` pixels; an optional caption above it.
inline std::string heat_map(const std::vector<double>& values, int rows, int cols, double left, double top, double cell,
                            const std::string& caption, bool gray = false) {
  std::ostringstream o;
  if (!caption.empty())
    o << "<text x='" << left + cols * cell / 2 << "' y='" << top - 6 << "' text-anchor='middle' font-size='11'>" << caption
      << "</text>\n";
  // scaled from the smallest to the largest value, so near-uniform maps still show their shape
  double lo = values.empty() ? 0 : values[0], hi = lo;
  for (double v : values) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  if (gray) lo = 0;
  if (hi <= lo) hi = lo + 1;
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c) {
      const double v = std::clamp((values[std::size_t(r * cols + c)] - lo) / (hi - lo), 0.0, 1.0);
      int red, green, blue;
      if (gray) {
        red = green = blue = int(255 * (1 - v));
      } else { // white → dark red
        red = int(255 - 75 * v);
        green = blue = int(255 * (1 - v));
      }
      o << "<rect x='" << left + c * cell << "' y='" << top + r * cell << "' width='" << cell << "' height='" << cell
        << "' fill='rgb(" << red << "," << green << "," << blue << ")'/>\n";
    }
  o << "<rect x='" << left << "' y='" << top << "' width='" << cols * cell << "' height='" << rows * cell
    << "' fill='none' stroke='#444'/>\n";
  return o.str();
}

struct bar {
  std::string label;
  double value, error;
};
struct bar_group {
  std::string name;
  std::vector<bar> bars;
};

// Grouped bars with error bars (e.g. mean ± std per method, one group per data set); the legend
// names the bars of the first group, in order, with a colour each.
inline std::string bar_chart(const std::vector<bar_group>& groups, const std::string& title) {
  static const char* colors[] = {"#1f77b4", "#aec7e8", "#d62728", "#ff9896", "#2ca02c",
                                 "#98df8a", "#9467bd", "#c5b0d5", "#ff7f0e", "#ffbb78"};
  std::size_t bars = 0;
  double top = 0;
  for (const auto& g : groups) {
    bars = std::max(bars, g.bars.size());
    for (const auto& b : g.bars)
      if (std::isfinite(b.value)) top = std::max(top, b.value + (std::isfinite(b.error) ? b.error : 0.0));
  }
  if (top <= 0) top = 1;
  const double bar_width = 16, gap = 30, left = 60, plot_top = 40, height = 260;
  const double group_width = double(bars) * bar_width + gap;
  const double width = left + double(groups.size()) * group_width + 230;
  std::ostringstream o;
  o << "<text x='" << width / 2 << "' y='22' text-anchor='middle' font-size='14'>" << title << "</text>\n";
  o << "<line x1='" << left << "' y1='" << plot_top + height << "' x2='" << left + double(groups.size()) * group_width
    << "' y2='" << plot_top + height << "' stroke='#444'/>\n";
  for (int t = 0; t <= 4; ++t) {
    const double v = top * t / 4, y = plot_top + height - height * t / 4;
    o << "<line x1='" << left << "' y1='" << y << "' x2='" << left + double(groups.size()) * group_width << "' y2='" << y
      << "' stroke='#ddd'/>\n<text x='" << left - 5 << "' y='" << y + 4 << "' text-anchor='end' font-size='11'>"
      << number(v) << "</text>\n";
  }
  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const double x0 = left + gap / 2 + double(gi) * group_width;
    for (std::size_t bi = 0; bi < groups[gi].bars.size(); ++bi) {
      const auto& b = groups[gi].bars[bi];
      if (!std::isfinite(b.value)) continue;
      const double x = x0 + double(bi) * bar_width, h = b.value / top * height;
      o << "<rect x='" << x << "' y='" << plot_top + height - h << "' width='" << bar_width - 2 << "' height='" << h
        << "' fill='" << colors[bi % 10] << "'/>\n";
      if (std::isfinite(b.error) && b.error > 0) {
        const double cx = x + (bar_width - 2) / 2, y1 = plot_top + height - (b.value + b.error) / top * height,
                     y2 = plot_top + height - std::max(0.0, b.value - b.error) / top * height;
        o << "<line x1='" << cx << "' y1='" << y1 << "' x2='" << cx << "' y2='" << y2 << "' stroke='#222'/>\n";
      }
    }
    o << "<text x='" << x0 + double(groups[gi].bars.size()) * bar_width / 2 << "' y='" << plot_top + height + 18
      << "' text-anchor='middle' font-size='12'>" << groups[gi].name << "</text>\n";
  }
  if (!groups.empty())
    for (std::size_t bi = 0; bi < groups[0].bars.size(); ++bi) {
      const double x = left + double(groups.size()) * group_width + 20, y = plot_top + 14 * double(bi);
      o << "<rect x='" << x << "' y='" << y << "' width='10' height='10' fill='" << colors[bi % 10] << "'/>\n<text x='"
        << x + 15 << "' y='" << y + 9 << "' font-size='11'>" << groups[0].bars[bi].label << "</text>\n";
    }
  return document(width, plot_top + height + 40, o.str());
}

} // namespace ika_examples::svg
