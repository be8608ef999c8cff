// Python str semantics over UTF-8 (util/utf8.h decodes). The task readers reject invalid UTF-8 as Python's decoding
// would; should a stray byte reach here anyway it counts as one code point, so nothing is dropped.
#include "eval/py_text.h"

#include <unicode/uchar.h>

#include <vector>

#include "util/utf8.h"

namespace sft::eval {
namespace {

struct CodePoint {
  char32_t cp;
  size_t begin, end;  // byte range in the source
};

std::vector<CodePoint> decode_utf8(std::string_view s) {
  std::vector<CodePoint> out;
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const uint32_t cp = utf8::decode_lenient(s, i, len);
    out.push_back({cp, i, i + len});
  }
  return out;
}

}  // namespace

// CPython's _PyUnicode_IsWhitespace: bidirectional class WS, B or S, or category Zs. The full list is short and fixed.
bool py_isspace(char32_t c) {
  switch (c) {
    case 0x09: case 0x0A: case 0x0B: case 0x0C: case 0x0D: case 0x1C: case 0x1D: case 0x1E: case 0x1F:
    case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

std::string py_strip(std::string_view s) {
  auto cps = decode_utf8(s);
  size_t b = 0, e = cps.size();
  while (b < e && py_isspace(cps[b].cp)) ++b;
  while (e > b && py_isspace(cps[e - 1].cp)) --e;
  if (b == e) return {};
  return std::string(s.substr(cps[b].begin, cps[e - 1].end - cps[b].begin));
}

std::string py_rstrip(std::string_view s) {
  auto cps = decode_utf8(s);
  size_t e = cps.size();
  while (e > 0 && py_isspace(cps[e - 1].cp)) --e;
  if (e == 0) return {};
  return std::string(s.substr(0, cps[e - 1].end));
}

// Python 3.8+: first character to title case, the rest to lower case. ICU's simple (1:1) mappings are used; Python
// applies the full mappings (e.g. U+0130 -> "i̇", final sigma), which differ only for a handful of code points that
// do not occur in HellaSwag's English contexts.
std::string py_capitalize(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  bool first = true;
  for (const auto& c : decode_utf8(s)) {
    utf8::append(out, static_cast<uint32_t>(first ? u_totitle(static_cast<UChar32>(c.cp))
                                                 : u_tolower(static_cast<UChar32>(c.cp))));
    first = false;
  }
  return out;
}

int64_t py_len(std::string_view s) { return utf8::count_code_points(s); }

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s, pos, std::string::npos);
  return out;
}

std::string hellaswag_preprocess(std::string_view text) {
  std::string t = replace_all(py_strip(text), " [title]", ". ");
  // re.sub("\\[.*?\\]", "", t): '.' matches anything but '\n'; lazy, so each match ends at the first ']' after '['.
  std::string removed;
  size_t i = 0;
  while (i < t.size()) {
    if (t[i] == '[') {
      size_t j = i + 1;
      while (j < t.size() && t[j] != ']' && t[j] != '\n') ++j;
      if (j < t.size() && t[j] == ']') {
        i = j + 1;
        continue;
      }
    }
    removed += t[i++];
  }
  return replace_all(removed, "  ", " ");
}

}  // namespace sft::eval
