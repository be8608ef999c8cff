#include "eval/py_literal.h"

#include <cerrno>
#include <cstdlib>
#include <limits>

#include "util/error.h"
#include "util/utf8.h"

namespace sft::eval {
namespace {

using jinja::List;
using jinja::Value;

constexpr int kMaxDepth = 64;

class LiteralParser {
 public:
  LiteralParser(std::string_view s, const std::string& what) : s_(s), what_(what) {}

  Value parse_all() {
    skip_space();
    Value v = parse_expr(0);
    skip_space();
    if (peek() == ',') {  // a bare top-level tuple: "1, 2"
      List items{std::move(v)};
      while (peek() == ',') {
        ++i_;
        skip_space();
        if (i_ >= s_.size()) break;
        items.push_back(parse_expr(0));
        skip_space();
      }
      v = Value(std::move(items));
    }
    if (i_ != s_.size()) fail("unexpected text after the literal");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    std::string shown(s_.substr(0, 80));
    throw Error(what_ + ": not a Python literal (" + why + " at character " + std::to_string(i_) + " of '" + shown +
                (s_.size() > 80 ? "...'" : "'") + ")");
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\f'))
      ++i_;
  }
  bool starts_with(std::string_view w) const { return s_.substr(i_, w.size()) == w; }
  bool word(std::string_view w) {
    if (!starts_with(w)) return false;
    const size_t e = i_ + w.size();
    if (e < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[e])) || s_[e] == '_')) return false;
    i_ = e;
    return true;
  }

  Value parse_expr(int depth) {
    if (depth > kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth));
    skip_space();
    const char c = peek();
    if (c == '[' || c == '(') return parse_sequence(depth, c == '[' ? ']' : ')');
    if (c == '\'' || c == '"' || ((c == 'r' || c == 'R') && (s_.substr(i_ + 1, 1) == "'" || s_.substr(i_ + 1, 1) == "\"")))
      return parse_strings();
    if (c == '-' || c == '+' || (c >= '0' && c <= '9') || c == '.') return parse_number();
    if (word("None")) return Value(jinja::None{});
    if (word("True")) return Value(true);
    if (word("False")) return Value(false);
    fail(i_ >= s_.size() ? "empty" : "unsupported expression");
  }

  Value parse_sequence(int depth, char close) {
    const bool tuple = close == ')';
    ++i_;
    List items;
    bool saw_comma = false;
    skip_space();
    while (peek() != close) {
      if (i_ >= s_.size()) fail(std::string("missing '") + close + "'");
      items.push_back(parse_expr(depth + 1));
      skip_space();
      if (peek() == ',') {
        saw_comma = true;
        ++i_;
        skip_space();
      } else if (peek() != close) {
        fail(std::string("expected ',' or '") + close + "'");
      }
    }
    ++i_;
    if (tuple && items.size() == 1 && !saw_comma) return items[0];  // "(x)" is x, "(x,)" a tuple
    return Value(std::move(items));
  }

  Value parse_number() {
    size_t b = i_;
    bool negative = false;
    while (peek() == '-' || peek() == '+') {  // unary signs, as Python's parser folds them
      negative ^= peek() == '-';
      ++i_;
      skip_space();
    }
    b = i_;
    bool is_float = false;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (c >= '0' && c <= '9') {
        ++i_;
      } else if (c == '.' || c == 'e' || c == 'E') {
        is_float = true;
        ++i_;
        if ((c == 'e' || c == 'E') && (peek() == '+' || peek() == '-')) ++i_;
      } else {
        break;
      }
    }
    const std::string digits(s_.substr(b, i_ - b));
    if (digits.empty() || digits == ".") fail("expected a number");
    if (std::isalpha(static_cast<unsigned char>(peek())) || peek() == '_')
      fail("number forms other than decimal digits are not supported");
    if (!is_float) {
      if (digits.size() > 1 && digits[0] == '0' && digits.find_first_not_of('0') != std::string::npos)
        fail("leading zeros in a decimal integer");
      errno = 0;
      char* end = nullptr;
      const unsigned long long u = std::strtoull(digits.c_str(), &end, 10);
      const unsigned long long lim = negative ? 9223372036854775808ULL : 9223372036854775807ULL;
      if (errno == ERANGE || u > lim) fail("integer outside the 64-bit range");
      return Value(negative ? static_cast<int64_t>(0 - u) : static_cast<int64_t>(u));
    }
    char* end = nullptr;
    const double d = std::strtod(digits.c_str(), &end);
    if (end != digits.c_str() + digits.size()) fail("malformed float");
    return Value(negative ? -d : d);
  }

  static void append_code_point(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  uint32_t hex_digits(size_t n) {
    if (i_ + n > s_.size()) fail("truncated \\x/\\u/\\U escape");
    uint32_t v = 0;
    for (size_t k = 0; k < n; ++k) {
      const char c = s_[i_ + k];
      const int h = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (h < 0) fail("bad hex digit in an escape");
      v = v * 16 + static_cast<uint32_t>(h);
    }
    i_ += n;
    return v;
  }

  void escape(std::string& out) {
    if (i_ >= s_.size()) fail("string ends in a backslash");
    const char c = s_[i_++];
    switch (c) {
      case '\n': return;  // line continuation
      case '\\': out += '\\'; return;
      case '\'': out += '\''; return;
      case '"': out += '"'; return;
      case 'a': out += '\a'; return;
      case 'b': out += '\b'; return;
      case 'f': out += '\f'; return;
      case 'n': out += '\n'; return;
      case 'r': out += '\r'; return;
      case 't': out += '\t'; return;
      case 'v': out += '\v'; return;
      default: break;
    }
    uint32_t cp = 0;
    if (c >= '0' && c <= '7') {
      cp = static_cast<uint32_t>(c - '0');
      for (int k = 0; k < 2 && peek() >= '0' && peek() <= '7'; ++k) cp = cp * 8 + static_cast<uint32_t>(s_[i_++] - '0');
    } else if (c == 'x') {
      cp = hex_digits(2);
    } else if (c == 'u') {
      cp = hex_digits(4);
    } else if (c == 'U') {
      cp = hex_digits(8);
    } else if (c == 'N') {
      fail("\\N{...} escapes are not supported");
    } else {  // an unknown escape keeps its backslash (Python warns and does the same)
      out += '\\';
      --i_;
      return;
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("escape is not a Unicode scalar value");
    append_code_point(out, cp);
  }

  std::string parse_one_string() {
    bool raw = false;
    if (peek() == 'r' || peek() == 'R') {
      raw = true;
      ++i_;
    }
    const char q = s_[i_];
    const bool triple = s_.substr(i_, 3) == std::string(3, q);
    i_ += triple ? 3 : 1;
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_];
      if (triple ? s_.substr(i_, 3) == std::string(3, q) : c == q) {
        i_ += triple ? 3 : 1;
        return out;
      }
      if (c == '\n' && !triple) fail("newline inside a string");
      if (c == '\\') {
        ++i_;
        if (raw) {
          out += '\\';
          if (i_ < s_.size()) out += s_[i_++];
        } else {
          escape(out);
        }
        continue;
      }
      out += c;
      ++i_;
    }
  }

  Value parse_strings() {  // adjacent literals concatenate: 'a' "b" == 'ab'
    std::string out = parse_one_string();
    while (true) {
      const size_t save = i_;
      skip_space();
      const char c = peek();
      if (c == '\'' || c == '"' || ((c == 'r' || c == 'R') && (s_.substr(i_ + 1, 1) == "'" || s_.substr(i_ + 1, 1) == "\""))) {
        out += parse_one_string();
      } else {
        i_ = save;
        break;
      }
    }
    if (!utf8::is_valid(out)) fail("string is not valid UTF-8");
    return Value(std::move(out));
  }

  std::string_view s_;
  const std::string& what_;
  size_t i_ = 0;
};

}  // namespace

jinja::Value py_literal_eval(std::string_view text, const std::string& what) {
  return LiteralParser(text, what).parse_all();
}

bool py_isdigit_ascii(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace sft::eval
