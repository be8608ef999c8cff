#include "report/text.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "util/utf8.h"

namespace sft::report {

std::string xml_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o += c;
    }
  }
  return o;
}

std::string markdown_code(std::string_view s) {
  size_t longest = 0, run = 0;
  for (char c : s) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  const std::string fence(longest + 1, '`');
  // A span that starts or ends with a backtick needs a space between it and the fence (stripped by the renderer).
  const bool pad = !s.empty() && (s.front() == '`' || s.back() == '`');
  return fence + (pad ? " " : "") + std::string(s) + (pad ? " " : "") + fence;
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string signed_fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%+.*f", decimals, v);
  return buf;
}

std::string markdown_table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows,
                           const std::vector<bool>& right_align) {
  auto len = [](const std::string& s) { return utf8::count_code_points(s); };
  std::vector<int64_t> w(headers.size(), 0);
  for (size_t c = 0; c < headers.size(); ++c) {
    w[c] = std::max<int64_t>(w[c], len(headers[c]));
    for (const auto& r : rows) w[c] = std::max<int64_t>(w[c], len(r[c]));
    w[c] = std::max<int64_t>(w[c], 3);
  }
  auto cell = [&](const std::string& s, size_t c, bool right) {
    std::string pad(static_cast<size_t>(w[c] - len(s)), ' ');
    return right ? pad + s : s + pad;
  };
  std::string out = "|";
  for (size_t c = 0; c < headers.size(); ++c) {
    // Centered header as pytablewriter does.
    const int64_t total = w[c] - len(headers[c]);
    out += std::string(static_cast<size_t>(total / 2), ' ') + headers[c] +
           std::string(static_cast<size_t>(total - total / 2), ' ') + "|";
  }
  out += "\n|";
  for (size_t c = 0; c < headers.size(); ++c)
    out += std::string(static_cast<size_t>(w[c] - (right_align[c] ? 1 : 0)), '-') + (right_align[c] ? ":|" : "|");
  out += "\n";
  for (const auto& r : rows) {
    out += "|";
    for (size_t c = 0; c < headers.size(); ++c) out += cell(r[c], c, right_align[c]) + "|";
    out += "\n";
  }
  return out;
}

namespace {

// The cells of one "|a|b|" line, trimmed of spaces.
std::vector<std::string> table_cells(const std::string& line) {
  std::vector<std::string> cells;
  std::string cur;
  for (size_t i = 1; i < line.size(); ++i) {
    if (line[i] == '|') {
      const size_t b = cur.find_first_not_of(' '), e = cur.find_last_not_of(' ');
      cells.push_back(b == std::string::npos ? "" : cur.substr(b, e - b + 1));
      cur.clear();
    } else {
      cur += line[i];
    }
  }
  return cells;
}

}  // namespace

std::string markdown_tables_to_html(const std::string& md, std::string_view table_class) {
  std::string out;
  std::vector<std::string> block;
  auto flush = [&]() {
    if (block.empty()) return;
    out += "<table class=\"" + xml_escape(table_class) + "\">\n";
    for (size_t r = 0; r < block.size(); ++r) {
      if (r == 1) continue;  // the |---| separator
      const char* open = r == 0 ? "<th>" : "<td>";
      const char* close = r == 0 ? "</th>" : "</td>";
      out += "<tr>";
      for (const auto& c : table_cells(block[r])) out += open + xml_escape(c) + close;
      out += "</tr>\n";
    }
    out += "</table>\n";
    block.clear();
  };
  std::istringstream in(md);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line[0] == '|') {
      block.push_back(line);
    } else {
      flush();
      if (!line.empty()) out += "<p>" + xml_escape(line) + "</p>\n";
    }
  }
  flush();
  return out;
}

}  // namespace sft::report
