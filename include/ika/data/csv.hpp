// SPDX-License-Identifier: MIT
#pragma once

// Numeric tables from CSV files (raw or gzip'ed): column names and a row-major double matrix.
//
// Each line is a row; blank lines are ignored. Fields are separated by `delimiter` (',' by
// default; ' ' means runs of spaces and tabs, as in sklearn's diabetes files), may be enclosed in
// double quotes ("" inside quotes is one quote) and are trimmed of surrounding spaces. A field
// is a number as std::from_chars reads it (locale-independent, "inf" included, a leading '+'
// allowed) or a missing value: empty, "NA" or "nan" in any case, all read as NaN.
//
// Columns that are not numbers are handled by name, so that nothing is guessed:
//   skip_columns  leaves a column out of the table, its fields unread (e.g. a text date column);
//   nan_columns   keeps the column but reads its non-numbers as NaN (e.g. "n/a", "?").
// Any other field that is not a number, and any row with more or fewer fields than there are
// columns, is refused with a data_error naming the file, the line and the column.
//
//   boston_house_prices.csv (sklearn): a count line "506,13,,..." before the header:
//       read_csv(data_file("boston_house_prices.csv"), {.skip_lines = 1})        506 x 14
//   co2.csv (statsmodels): "date,co2" with date as yyyymmdd and 59 weeks without co2:
//       read_csv(data_file("co2.csv"), {.skip_columns = {"date"}, .drop_nan_rows = true})
//   diabetes_data_raw.csv.gz (sklearn): blank-separated, no header:
//       read_csv(data_file("diabetes_data_raw.csv.gz"), {.delimiter = ' ', .header = false})

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ika/core/error.hpp"
#include "ika/core/tensor_view.hpp"
#include "ika/data/io.hpp"

namespace ika::data {

struct csv_options {
  char delimiter = ',';                    // ' ' = runs of spaces and tabs
  index_t skip_lines = 0;                  // lines before the header (or the first row), read as nothing
  bool header = true;                      // false: the first line is data
  std::vector<std::string> names{};        // with header = false: the column names ("0", "1", ... if empty)
  std::vector<std::string> skip_columns{}; // columns left out, their fields not read
  std::vector<std::string> nan_columns{};  // columns whose non-numeric fields read as NaN
  bool drop_nan_rows = false;              // leave out every row with a NaN in a kept column
};

namespace detail {

// 'a', 'b', 'c': the column names for a message.
inline std::string quoted_list(const std::vector<std::string>& names) {
  std::string list;
  for (const auto& n : names) {
    if (!list.empty()) list += ", ";
    list += '\'';
    list += n;
    list += '\'';
  }
  return list;
}

} // namespace detail

struct csv_table {
  std::vector<std::string> columns;
  std::vector<double> data; // row-major, rows x cols()
  index_t rows = 0;
  index_t dropped_rows = 0; // rows left out by drop_nan_rows

  index_t cols() const { return index_t(columns.size()); }
  double& operator()(index_t r, index_t c) { return data[std::size_t(r * cols() + c)]; }
  double operator()(index_t r, index_t c) const { return data[std::size_t(r * cols() + c)]; }

  // The position of a column; throws ika::invalid_argument listing the columns when there is none.
  index_t column_index(std::string_view name) const {
    const auto it = std::find(columns.begin(), columns.end(), name);
    if (it == columns.end())
      ika::detail::require(false, "name", "one of the columns ", detail::quoted_list(columns), ", got '", name, "'");
    return index_t(it - columns.begin());
  }

  std::vector<double> column(std::string_view name) const {
    const index_t c = column_index(name);
    std::vector<double> out(static_cast<std::size_t>(rows));
    for (index_t r = 0; r < rows; ++r) out[std::size_t(r)] = (*this)(r, c);
    return out;
  }
};

// The named columns of a table, in the order given (a name may repeat).
inline csv_table select_columns(const csv_table& table, const std::vector<std::string>& names) {
  std::vector<index_t> from;
  for (const auto& n : names) from.push_back(table.column_index(n));
  csv_table out;
  out.columns = names;
  out.rows = table.rows;
  out.dropped_rows = table.dropped_rows;
  out.data.reserve(std::size_t(table.rows) * names.size());
  for (index_t r = 0; r < table.rows; ++r)
    for (index_t c : from) out.data.push_back(table(r, c));
  return out;
}

namespace detail {

inline bool is_blank(char c) { return c == ' ' || c == '\t'; }

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
  return s;
}

// Splits one line into fields, quotes removed. Returns an error message, or nullptr.
inline const char* split_csv_line(std::string_view line, char delimiter, std::vector<std::string>& fields) {
  fields.clear();
  const bool runs = delimiter == ' ';
  auto pad = [&](char c) { return is_blank(c) && (runs || c != delimiter); };
  auto at_separator = [&](char c) { return runs ? is_blank(c) : c == delimiter; };
  std::size_t i = 0, n = line.size();
  if (runs) {
    while (i < n && is_blank(line[i])) ++i;
    if (i == n) return nullptr;
  }
  for (;;) {
    std::string field;
    while (i < n && pad(line[i])) ++i;
    if (i < n && line[i] == '"') {
      for (++i;; ++i) {
        if (i == n) return "a quoted field has no closing quote";
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') {
            field += '"';
            ++i;
            continue;
          }
          ++i;
          break;
        }
        field += line[i];
      }
      while (i < n && pad(line[i])) ++i;
      if (i < n && !at_separator(line[i])) return "text follows the closing quote of a field";
    } else {
      while (i < n && !at_separator(line[i])) field += line[i++];
      field = std::string(trim(field));
    }
    fields.push_back(std::move(field));
    if (i == n) return nullptr;
    if (runs) {
      while (i < n && is_blank(line[i])) ++i;
      if (i == n) return nullptr;
    } else {
      ++i; // past the delimiter; a delimiter at the end of the line ends an empty last field
    }
  }
}

enum class parsed { number, missing, not_a_number, out_of_range };

inline parsed parse_field(std::string_view s, double& value) {
  s = trim(s);
  if (s.empty() || s == "NA") {
    value = std::numeric_limits<double>::quiet_NaN();
    return parsed::missing;
  }
  if (s.size() > 1 && s.front() == '+' && s[1] != '-' && s[1] != '+') s.remove_prefix(1); // from_chars refuses '+'
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec == std::errc::result_out_of_range) return parsed::out_of_range;
  if (ec != std::errc() || end != s.data() + s.size()) return parsed::not_a_number;
  return std::isnan(value) ? parsed::missing : parsed::number;
}

} // namespace detail

// Reads a numeric table; see the top of this file. Throws data_error for a missing or malformed
// file (with the line and column where there is one), ika::invalid_argument for bad options.
inline csv_table read_csv(const std::filesystem::path& path, const csv_options& options = {}) {
  const csv_options& o = options;
  ika::detail::require(o.skip_lines >= 0, "skip_lines", "a number of lines >= 0, got ", o.skip_lines);
  ika::detail::require(o.delimiter != '"' && o.delimiter != '\n' && o.delimiter != '\r' && o.delimiter != '\0',
                       "delimiter", "a character other than a quote, a line break or NUL");
  ika::detail::require(!o.header || o.names.empty(), "names",
                       "no names when header = true (the header line names the columns)");
  for (const auto& s : o.skip_columns)
    ika::detail::require(std::find(o.nan_columns.begin(), o.nan_columns.end(), s) == o.nan_columns.end(),
                         "nan_columns", "no column that skip_columns also names, got '", s, "' in both");

  const file_bytes file = read_file(path);
  std::string_view text(reinterpret_cast<const char*>(file.bytes.data()), file.bytes.size());
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3); // a UTF-8 byte order mark

  long line_no = 0;
  std::size_t at = 0;
  auto next_line = [&](std::string_view& line) {
    if (at >= text.size()) return false;
    const std::size_t end = std::min(text.find('\n', at), text.size());
    line = text.substr(at, end - at);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    at = end + 1;
    ++line_no;
    return true;
  };
  auto is_blank_line = [](std::string_view line) { return detail::trim(line).empty(); };
  auto fail = [&](const std::string& problem, long column = 0) {
    throw data_error(path,
                     (column ? ika::detail::concat("line ", line_no, ", column ", column, ": ")
                             : ika::detail::concat("line ", line_no, ": ")) +
                         problem,
                     line_no, column);
  };

  std::string_view line;
  for (index_t k = 0; k < o.skip_lines; ++k)
    if (!next_line(line))
      throw data_error(path, ika::detail::concat("has ", line_no, " lines, fewer than skip_lines = ", o.skip_lines));

  std::vector<std::string> fields, names;
  std::string names_from; // where the number of columns comes from, for the ragged-row message
  if (o.header) {
    do {
      if (!next_line(line))
        throw data_error(path, ika::detail::concat("no header line (", line_no, " lines, ", o.skip_lines,
                                                   " skipped, the rest blank)"));
    } while (is_blank_line(line));
    if (const char* e = detail::split_csv_line(line, o.delimiter, names)) fail(e);
    names_from = ika::detail::concat("the header (line ", line_no, ")");
  } else if (!o.names.empty()) {
    names = o.names;
    names_from = "csv_options::names";
  }

  csv_table table;
  std::vector<char> keep, lenient;
  // Names from the file are the file's problem (data_error), names from the options the caller's.
  auto set_columns = [&](bool from_file) {
    for (std::size_t i = 0; i < names.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (names[i] == names[j]) {
          const std::string twice =
              ika::detail::concat("column name '", names[i], "' appears twice (columns ", j + 1, " and ", i + 1, ")");
          if (from_file)
            fail(twice + (o.header ? " (is the header further down? csv_options::skip_lines skips lines above it)" : ""),
                 long(i + 1));
          ika::detail::require(false, "names", "distinct names, got ", twice);
        }
    auto require_known = [&](const std::vector<std::string>& wanted, const char* option) {
      for (const auto& w : wanted)
        if (std::find(names.begin(), names.end(), w) == names.end()) {
          const std::string list = detail::quoted_list(names);
          if (from_file)
            fail(ika::detail::concat(option, " names '", w, "', which is not a column (the columns are ", list, ")"));
          ika::detail::require(false, option, "names of columns (", list, "), got '", w, "'");
        }
    };
    require_known(o.skip_columns, "skip_columns");
    require_known(o.nan_columns, "nan_columns");
    for (const auto& n : names) {
      keep.push_back(std::find(o.skip_columns.begin(), o.skip_columns.end(), n) == o.skip_columns.end());
      lenient.push_back(std::find(o.nan_columns.begin(), o.nan_columns.end(), n) != o.nan_columns.end());
      if (keep.back()) table.columns.push_back(n);
    }
  };
  if (!names.empty()) set_columns(o.header);

  std::vector<double> row;
  while (next_line(line)) {
    if (is_blank_line(line)) continue;
    if (const char* e = detail::split_csv_line(line, o.delimiter, fields)) fail(e);
    if (keep.empty() && names.empty()) { // no header and no names: the first row sets the count
      for (std::size_t c = 0; c < fields.size(); ++c) names.push_back(std::to_string(c));
      names_from = ika::detail::concat("the first row (line ", line_no, ")");
      set_columns(true);
    }
    if (fields.size() < names.size())
      fail(ika::detail::concat(fields.size(), " fields where ", names_from, " has ", names.size(), ": column '",
                               names[fields.size()], "' is missing"),
           long(fields.size() + 1));
    if (fields.size() > names.size())
      fail(ika::detail::concat(fields.size(), " fields where ", names_from, " has ", names.size(), ": '",
                               fields[names.size()], "' is ",
                               fields.size() == names.size() + 1 ? "one too many" : "the first of the extra ones"),
           long(names.size() + 1));
    row.clear();
    bool has_nan = false;
    for (std::size_t c = 0; c < fields.size(); ++c) {
      if (!keep[c]) continue;
      double v = 0;
      const detail::parsed p = detail::parse_field(fields[c], v);
      if (p == detail::parsed::not_a_number || p == detail::parsed::out_of_range) {
        if (!lenient[c])
          fail(ika::detail::concat("'", fields[c], "' in column '", names[c], "' ",
                                   p == detail::parsed::out_of_range ? "is out of the range of double"
                                                                     : "is not a number",
                                   " (missing values are empty, NA or nan; csv_options::nan_columns reads a "
                                   "column's non-numbers as NaN, skip_columns leaves it out)"),
               long(c + 1));
        v = std::numeric_limits<double>::quiet_NaN();
      }
      has_nan = has_nan || std::isnan(v);
      row.push_back(v);
    }
    if (o.drop_nan_rows && has_nan) {
      ++table.dropped_rows;
      continue;
    }
    table.data.insert(table.data.end(), row.begin(), row.end());
    ++table.rows;
  }
  return table;
}

} // namespace ika::data
