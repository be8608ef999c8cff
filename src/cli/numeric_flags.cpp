#include "cli/numeric_flags.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "util/error.h"

namespace sft::cli {
namespace {

[[noreturn]] void bad(std::string_view flag, const std::string& text, std::string_view expected) {
  // The value is shown as given (bounded: a flag value can be anything the shell passes).
  const std::string shown = text.size() > 60 ? text.substr(0, 60) + "..." : text;
  throw Error(std::string(flag) + ": expected " + std::string(expected) + ", got '" + shown + "'");
}

bool plain_integer(const std::string& t, bool allow_minus) {
  size_t k = 0;
  if (!t.empty() && (t[0] == '+' || (allow_minus && t[0] == '-'))) k = 1;
  if (k == t.size()) return false;
  for (; k < t.size(); ++k)
    if (t[k] < '0' || t[k] > '9') return false;
  return true;
}

}  // namespace

int64_t parse_int_flag(std::string_view flag, const std::string& text, int64_t lo, int64_t hi,
                       std::string_view expected) {
  if (!plain_integer(text, true)) bad(flag, text, expected);
  errno = 0;
  const long long v = std::strtoll(text.c_str(), nullptr, 10);
  if (errno == ERANGE || v < lo || v > hi) bad(flag, text, expected);
  return v;
}

uint64_t parse_uint64_flag(std::string_view flag, const std::string& text, std::string_view expected) {
  if (!plain_integer(text, false)) bad(flag, text, expected);  // strtoull would wrap "-1" to 2^64 - 1
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), nullptr, 10);
  if (errno == ERANGE) bad(flag, text, expected);
  return v;
}

double parse_real_flag(std::string_view flag, const std::string& text, double lo, bool lo_open, double hi, bool hi_open,
                       std::string_view expected) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) bad(flag, text, expected);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  if (!end || *end != '\0' || errno == ERANGE || !std::isfinite(v)) bad(flag, text, expected);
  if ((lo_open ? v <= lo : v < lo) || (hi_open ? v >= hi : v > hi)) bad(flag, text, expected);
  return v;
}

}  // namespace sft::cli
