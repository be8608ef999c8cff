#include "template/py_string.h"

#include <algorithm>

#include "util/error.h"
#include "util/utf8.h"

namespace sft::jinja::py {

std::vector<uint32_t> code_points(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + static_cast<size_t>(len) > s.size()) {
      out.push_back(c);
      ++i;
      continue;
    }
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = true;
    for (int k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      if ((b & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (b & 0x3F);
    }
    if (!ok) {
      out.push_back(c);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += static_cast<size_t>(len);
  }
  return out;
}

std::string from_code_points(const std::vector<uint32_t>& cps, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end && i < cps.size(); ++i) utf8::append(out, cps[i]);
  return out;
}

size_t length(std::string_view s) { return code_points(s).size(); }

bool is_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

Finder::Finder(std::string_view pattern) : pat_(pattern), fail_(pattern.size(), 0) {
  for (size_t i = 1, k = 0; i < pat_.size(); ++i) {
    while (k > 0 && pat_[i] != pat_[k]) k = fail_[k - 1];
    if (pat_[i] == pat_[k]) ++k;
    fail_[i] = static_cast<uint32_t>(k);
  }
}

size_t Finder::find(std::string_view s, size_t from) const {
  if (pat_.empty()) return from <= s.size() ? from : std::string_view::npos;
  if (pat_.size() == 1) return s.find(pat_[0], from);  // memchr
  for (size_t i = from, k = 0; i < s.size(); ++i) {
    while (k > 0 && s[i] != pat_[k]) k = fail_[k - 1];
    if (s[i] == pat_[k] && ++k == pat_.size()) return i + 1 - k;
  }
  return std::string_view::npos;
}

std::string strip(std::string_view s, const std::string* chars, Side side) {
  const auto cps = code_points(s);
  std::vector<uint32_t> set;
  if (chars) set = code_points(*chars);
  std::sort(set.begin(), set.end());  // O(log m) per code point: s.strip(s) must not cost |s|^2
  auto drop = [&](uint32_t cp) { return chars ? std::binary_search(set.begin(), set.end(), cp) : is_space(cp); };
  size_t b = 0, e = cps.size();
  if (side != Side::Right)
    while (b < e && drop(cps[b])) ++b;
  if (side != Side::Left)
    while (e > b && drop(cps[e - 1])) --e;
  return from_code_points(cps, b, e);
}

void split(std::string_view s, const std::string* sep, int64_t maxsplit,
           const std::function<void(std::string)>& part) {
  int64_t parts = 0;
  auto emit = [&](std::string p) {
    ++parts;
    part(std::move(p));
  };
  if (sep) {
    SFT_CHECK(!sep->empty(), "chat template: split() with an empty separator");
    const Finder finder(*sep);
    size_t pos = 0;
    while (maxsplit < 0 || parts < maxsplit) {
      const size_t f = finder.find(s, pos);
      if (f == std::string_view::npos) break;
      emit(std::string(s.substr(pos, f - pos)));
      pos = f + sep->size();
    }
    emit(std::string(s.substr(pos)));
    return;
  }
  const auto cps = code_points(s);
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && is_space(cps[i])) ++i;
    if (i >= cps.size()) break;
    if (maxsplit >= 0 && parts == maxsplit) {
      size_t e = cps.size();
      while (e > i && is_space(cps[e - 1])) --e;
      emit(from_code_points(cps, i, e));
      break;
    }
    size_t j = i;
    while (j < cps.size() && !is_space(cps[j])) ++j;
    emit(from_code_points(cps, i, j));
    i = j;
  }
}

std::string replace(std::string_view s, std::string_view old, std::string_view repl, int64_t count) {
  std::string out;
  if (old.empty()) {
    // Python inserts repl between every code point (and at both ends).
    const auto cps = code_points(s);
    int64_t n = 0;
    for (size_t i = 0; i <= cps.size(); ++i) {
      if (count < 0 || n < count) {
        out += repl;
        ++n;
      }
      if (i < cps.size()) out += from_code_points(cps, i, i + 1);
    }
    return out;
  }
  const Finder finder(old);
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t f = finder.find(s, pos);
    if (f == std::string_view::npos) break;
    out.append(s.substr(pos, f - pos));
    out.append(repl);
    pos = f + old.size();
    ++n;
  }
  out.append(s.substr(pos));
  return out;
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(length(s)) + 1;
  int64_t n = 0;
  const Finder finder(sub);
  for (size_t pos = finder.find(s); pos != std::string_view::npos; pos = finder.find(s, pos + sub.size())) ++n;
  return n;
}

namespace {
void require_ascii(std::string_view s, const char* what) {
  for (unsigned char c : s)
    SFT_CHECK(c < 0x80, "chat template: ", what, "() on non-ASCII text is not supported (Python's Unicode case "
              "mappings are not implemented)");
}
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char up(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }
char low(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
}  // namespace

std::string upper(std::string_view s) {
  require_ascii(s, "upper");
  std::string out(s);
  for (char& c : out) c = up(c);
  return out;
}
std::string lower(std::string_view s) {
  require_ascii(s, "lower");
  std::string out(s);
  for (char& c : out) c = low(c);
  return out;
}
std::string title(std::string_view s) {
  require_ascii(s, "title");
  std::string out(s);
  bool prev_cased = false;
  for (char& c : out) {
    c = prev_cased ? low(c) : up(c);
    prev_cased = is_alpha(c);
  }
  return out;
}
std::string capitalize(std::string_view s) {
  require_ascii(s, "capitalize");
  std::string out(s);
  for (size_t i = 0; i < out.size(); ++i) out[i] = i == 0 ? up(out[i]) : low(out[i]);
  return out;
}

}  // namespace sft::jinja::py
