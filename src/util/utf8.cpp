#include "util/utf8.h"

namespace sft::utf8 {

size_t valid_sequence_length(std::string_view s, size_t i) {
  const size_t n = s.size();
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) return 1;
  auto cont = [&](size_t k, uint8_t lo, uint8_t hi) {
    if (i + k >= n) return false;
    const auto b = static_cast<uint8_t>(s[i + k]);
    return b >= lo && b <= hi;
  };
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1, 0x80, 0xBF) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    // Second-byte ranges exclude overlongs (E0) and UTF-16 surrogates (ED).
    const uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
    return cont(1, lo, hi) && cont(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    const uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
    return cont(1, lo, hi) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

size_t maximal_invalid_subpart(std::string_view s, size_t i) {
  // The longest prefix of a well-formed sequence (same per-position ranges as above), at least one byte.
  const size_t n = s.size();
  const auto b0 = static_cast<uint8_t>(s[i]);
  size_t need = 0;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) need = 1;
  else if (b0 >= 0xE0 && b0 <= 0xEF) { need = 2; if (b0 == 0xE0) lo = 0xA0; if (b0 == 0xED) hi = 0x9F; }
  else if (b0 >= 0xF0 && b0 <= 0xF4) { need = 3; if (b0 == 0xF0) lo = 0x90; if (b0 == 0xF4) hi = 0x8F; }
  else return 1;
  size_t k = 1;
  for (; k <= need && i + k < n; ++k) {
    const auto b = static_cast<uint8_t>(s[i + k]);
    if (b < lo || b > hi) break;
    lo = 0x80; hi = 0xBF;
  }
  return k;
}

int64_t find_invalid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = valid_sequence_length(s, i);
    if (len == 0) return static_cast<int64_t>(i);
    i += len;
  }
  return -1;
}

bool is_valid(std::string_view s) { return find_invalid(s) < 0; }

std::string repair_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (size_t i = 0; i < s.size();) {
    const size_t len = valid_sequence_length(s, i);
    if (len) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out.append("\xEF\xBF\xBD");
      i += maximal_invalid_subpart(s, i);
    }
  }
  return out;
}

void append(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

int64_t count_code_points(std::string_view s) {
  int64_t n = 0;
  for (size_t i = 0; i < s.size(); ++n) {
    const size_t len = valid_sequence_length(s, i);
    i += len ? len : 1;
  }
  return n;
}

}  // namespace sft::utf8
