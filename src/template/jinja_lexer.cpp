// Lexer of the Jinja subset; the whitespace rules are jinja2's for transformers' environment (jinja_parser.cpp).
#include "template/jinja_lexer.h"

#include <cctype>
#include <cstdlib>
#include <cstring>

#include "util/error.h"
#include "util/utf8.h"

namespace sft::jinja::lex {


void fail(const std::string& name, int line, const std::string& what) {
  throw Error(name + ":" + std::to_string(line) + ": " + what);
}

// Python's str.splitlines() boundaries -> "\n"; then drop one trailing newline (keep_trailing_newline=False).
std::string normalize_newlines(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '\r') {
      if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
      out += '\n';
    } else if (c == '\n' || c == 0x0b || c == 0x0c || c == 0x1c || c == 0x1d || c == 0x1e) {
      out += '\n';
    } else if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x85) {
      out += '\n';
      ++i;
    } else if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
               (static_cast<unsigned char>(s[i + 2]) == 0xA8 || static_cast<unsigned char>(s[i + 2]) == 0xA9)) {
      out += '\n';
      i += 2;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// ---------------------------------------------------------------------------------------------------------------
// Expression tokens


// Python's "unicode-escape" decoding of a string literal body (what jinja2's lexer applies).
static std::string unescape(const std::string& body, const std::string& name, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c != '\\' || i + 1 >= body.size()) {
      out += c;
      continue;
    }
    const char n = body[++i];
    auto hex = [&](size_t count) {
      uint32_t v = 0;
      for (size_t k = 1; k <= count; ++k) {
        if (i + k >= body.size() || !std::isxdigit(static_cast<unsigned char>(body[i + k])))
          fail(name, line, "bad \\x/\\u escape in a string literal");
        const char h = body[i + k];
        v = v * 16 + static_cast<uint32_t>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
      }
      i += count;
      return v;
    };
    switch (n) {
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case 'r': out += '\r'; break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'v': out += '\v'; break;
      case '\n': break;  // line continuation
      case 'x': utf8::append(out, hex(2)); break;
      case 'u': utf8::append(out, hex(4)); break;
      case 'U': utf8::append(out, hex(8)); break;
      case 'N': fail(name, line, "\\N{...} escapes are not supported");
      default:
        if (n >= '0' && n <= '7') {
          uint32_t v = static_cast<uint32_t>(n - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
            v = v * 8 + static_cast<uint32_t>(body[++i] - '0');
          utf8::append(out, v);
        } else {
          out += '\\';
          out += n;  // unknown escapes stay as they are (Python keeps the backslash)
        }
    }
  }
  return out;
}

// Tokenises the inside of one tag.
std::vector<Tok> lex_expr(const std::string& src, int line, const std::string& name) {
  std::vector<Tok> toks;
  size_t i = 0;
  static const char* ops2[] = {"**", "//", "==", "!=", "<=", ">="};
  while (i < src.size()) {
    const char c = src[i];
    if (is_ws(c)) {
      if (c == '\n') ++line;
      ++i;
      continue;
    }
    Tok t;
    t.line = line;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < src.size() && (std::isalnum(static_cast<unsigned char>(src[j])) || src[j] == '_')) ++j;
      t.type = Tok::Name;
      t.text = src.substr(i, j - i);
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < src.size() && (std::isdigit(static_cast<unsigned char>(src[j])) || src[j] == '_')) ++j;
      bool is_float = false;
      if (j + 1 < src.size() && src[j] == '.' && std::isdigit(static_cast<unsigned char>(src[j + 1]))) {
        is_float = true;
        ++j;
        while (j < src.size() && (std::isdigit(static_cast<unsigned char>(src[j])) || src[j] == '_')) ++j;
      }
      if (j < src.size() && (src[j] == 'e' || src[j] == 'E')) {
        size_t k = j + 1;
        if (k < src.size() && (src[k] == '+' || src[k] == '-')) ++k;
        if (k < src.size() && std::isdigit(static_cast<unsigned char>(src[k]))) {
          is_float = true;
          j = k;
          while (j < src.size() && std::isdigit(static_cast<unsigned char>(src[j]))) ++j;
        }
      }
      std::string digits;
      for (size_t k = i; k < j; ++k)
        if (src[k] != '_') digits += src[k];
      if (is_float) {
        t.type = Tok::Float;
        t.f = std::strtod(digits.c_str(), nullptr);  // Python: 1e999 is inf, 1e-999 is 0.0 (stod would throw)
      } else {
        t.type = Tok::Int;
        try {
          t.i = std::stoll(digits);
        } catch (...) {
          fail(name, line, "integer literal out of range: " + digits);
        }
      }
      i = j;
    } else if (c == '\'' || c == '"') {
      size_t j = i + 1;
      while (j < src.size() && src[j] != c) {
        if (src[j] == '\\') ++j;
        ++j;
      }
      if (j >= src.size()) fail(name, line, "unterminated string literal");
      const std::string body = src.substr(i + 1, j - i - 1);
      for (char b : body)
        if (b == '\n') ++line;
      t.type = Tok::String;
      t.text = unescape(body, name, t.line);
      i = j + 1;
    } else {
      t.type = Tok::Op;
      bool two = false;
      for (const char* op : ops2)
        if (src.compare(i, 2, op) == 0) {
          t.text = op;
          two = true;
          break;
        }
      if (!two) {
        if (!std::strchr("+-*/%~<>=.,:|()[]{}", c)) fail(name, line, std::string("unexpected character '") + c + "'");
        t.text = std::string(1, c);
      }
      i += t.text.size();
    }
    toks.push_back(std::move(t));
  }
  Tok end;
  end.type = Tok::End;
  end.line = line;
  toks.push_back(end);
  return toks;
}

// ---------------------------------------------------------------------------------------------------------------
// Template-level scanning into chunks


namespace {

int count_lines(const std::string& s, size_t b, size_t e) {
  int n = 0;
  for (size_t k = b; k < e; ++k) n += s[k] == '\n';
  return n;
}

// The first tag opening at or after pos: "{{", "{%" or "{#" at `start`, `kind` its second character (0: no tag).
struct TagOpen {
  size_t start = 0;
  char kind = 0;
};

TagOpen find_tag_open(const std::string& src, size_t pos) {
  for (size_t k = pos; k + 1 < src.size(); ++k)
    if (src[k] == '{' && (src[k + 1] == '{' || src[k + 1] == '%' || src[k + 1] == '#')) return {k, src[k + 1]};
  return {};
}

// Whitespace control on the text before a tag. "{{-", "{%-", "{#-" strip all trailing whitespace. Otherwise
// lstrip_blocks: before a block or comment tag (not "{%+"), whitespace between the start of its line and the tag is
// dropped; "the start of its line" needs a newline in the text or the text to start a line itself.
void strip_before_tag(std::string& text, char sign, char kind, bool line_starting) {
  if (sign == '-') {
    size_t e = text.size();
    while (e > 0 && is_ws(text[e - 1])) --e;
    text.resize(e);
  } else if (sign != '+' && kind != '{') {
    const size_t nl = text.rfind('\n');
    const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos > 0 || line_starting) {
      bool all_ws = l_pos < text.size();
      for (size_t k = l_pos; k < text.size() && all_ws; ++k) all_ws = is_ws(text[k]);
      if (all_ws) text.resize(l_pos);
    }
  }
}

// Where a tag's inside ends (`inner_end`), where the text after it starts (`after`) and the whitespace-control sign
// before its closer ('-', '+' or 0).
struct TagEnd {
  size_t inner_end = std::string::npos, after = 0;
  char end_sign = 0;
};

// A comment ends at the first "#}". A variable or block tag ends at its "}}" / "%}" outside string literals and
// brackets, so "{{ '}}' }}" and "{{ {'a': 1} }}" are one tag each.
TagEnd find_tag_end(const std::string& src, char kind, size_t inner_begin, const std::string& name, int line) {
  TagEnd end;
  if (kind == '#') {
    const size_t e = src.find("#}", inner_begin);
    if (e == std::string::npos) fail(name, line, "unterminated comment");
    end.inner_end = e;
    end.end_sign = (e > inner_begin && src[e - 1] == '-') ? '-' : (e > inner_begin && src[e - 1] == '+') ? '+' : 0;
    end.after = e + 2;
    return end;
  }
  const char end_char = kind == '{' ? '}' : '%';
  int depth = 0;
  for (size_t k = inner_begin; k < src.size();) {
    const char c = src[k];
    if (c == '\'' || c == '"') {
      size_t j = k + 1;
      while (j < src.size() && src[j] != c) {
        if (src[j] == '\\') ++j;
        ++j;
      }
      k = j + 1;
      continue;
    }
    if (c == '(' || c == '[' || c == '{') ++depth;
    if ((c == ')' || c == ']' || (c == '}' && depth > 0)) && depth > 0) {
      --depth;
      ++k;
      continue;
    }
    if (depth == 0 && c == end_char && k + 1 < src.size() && src[k + 1] == '}') {
      end.inner_end = k;
      if (k > inner_begin && (src[k - 1] == '-' || src[k - 1] == '+')) {
        end.end_sign = src[k - 1];
        end.inner_end = k - 1;
      }
      end.after = k + 2;
      return end;
    }
    ++k;
  }
  fail(name, line, kind == '{' ? "unterminated {{ ... }}" : "unterminated {% ... %}");
}

// Whitespace control after a tag ending at `pos`: "-}}", "-%}", "-#}" skip all following whitespace; otherwise
// trim_blocks drops the one newline right after a block or comment tag (not "+%}"). Returns the new position and
// counts the newlines it passes into `line`.
size_t skip_after_tag(const std::string& src, size_t pos, char end_sign, char kind, int& line) {
  if (end_sign == '-') {
    while (pos < src.size() && is_ws(src[pos])) {
      line += src[pos] == '\n';
      ++pos;
    }
  } else if (end_sign != '+' && kind != '{' && pos < src.size() && src[pos] == '\n') {
    ++pos;
    ++line;
  }
  return pos;
}

}  // namespace

std::vector<Chunk> scan(const std::string& src, const std::string& name) {
  std::vector<Chunk> chunks;
  size_t pos = 0;
  int line = 1;
  bool line_starting = true;  // the text about to be scanned starts a line (template start or after "\n")
  while (pos <= src.size()) {
    const TagOpen open = find_tag_open(src, pos);
    if (!open.kind) {
      if (pos < src.size()) chunks.push_back({Chunk::Text, src.substr(pos), line});
      break;
    }
    std::string text = src.substr(pos, open.start - pos);
    const int text_line = line;
    line += count_lines(src, pos, open.start);
    const char sign = open.start + 2 < src.size() ? src[open.start + 2] : 0;
    strip_before_tag(text, sign, open.kind, line_starting);
    if (!text.empty()) chunks.push_back({Chunk::Text, text, text_line});
    const size_t inner_begin = open.start + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
    const TagEnd end = find_tag_end(src, open.kind, inner_begin, name, line);
    if (open.kind != '#')  // comments are dropped
      chunks.push_back({open.kind == '{' ? Chunk::Var : Chunk::Block,
                        src.substr(inner_begin, end.inner_end - inner_begin), line});
    line += count_lines(src, open.start, end.after);
    pos = skip_after_tag(src, end.after, end.end_sign, open.kind, line);
    line_starting = pos > 0 && src[pos - 1] == '\n';
    if (pos >= src.size()) break;
  }
  return chunks;
}


}  // namespace sft::jinja::lex
