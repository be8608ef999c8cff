// Lexer and parser of the Jinja subset. The lexer reproduces jinja2.lexer's whitespace rules for the environment
// transformers uses (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
//   - newlines in the source are normalised to "\n" (Python's str.splitlines() line breaks) and ONE trailing newline
//     of the template is dropped;
//   - "{%-" / "{{-" / "{#-" strip all whitespace before the tag, "-%}" / "-}}" / "-#}" all whitespace after;
//   - lstrip_blocks: before "{%" / "{#" (not "{{", not "{%+"), spaces/tabs from the start of the line are removed when
//     nothing else precedes the tag on that line;
//   - trim_blocks: one "\n" right after "%}" / "#}" (not "+%}", not "}}") is removed.
#include <cctype>
#include <cstring>

#include "template/jinja_ast.h"
#include "util/error.h"

namespace sft::jinja {
namespace {

[[noreturn]] void fail(const std::string& name, int line, const std::string& what) {
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
struct Tok {
  enum Type { Name, Int, Float, String, Op, End } type = End;
  std::string text;  // name / operator / decoded string
  int64_t i = 0;
  double f = 0;
  int line = 0;
};

void append_utf8(std::string& out, uint32_t cp) {
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

// Python's "unicode-escape" decoding of a string literal body (what jinja2's lexer applies).
std::string unescape(const std::string& body, const std::string& name, int line) {
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
      case 'x': append_utf8(out, hex(2)); break;
      case 'u': append_utf8(out, hex(4)); break;
      case 'U': append_utf8(out, hex(8)); break;
      case 'N': fail(name, line, "\\N{...} escapes are not supported");
      default:
        if (n >= '0' && n <= '7') {
          uint32_t v = static_cast<uint32_t>(n - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
            v = v * 8 + static_cast<uint32_t>(body[++i] - '0');
          append_utf8(out, v);
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
        t.f = std::stod(digits);
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
struct Chunk {
  enum Type { Text, Var, Block } type;
  std::string text;  // Text: data; Var/Block: the inside of the tag
  int line = 0;
};

std::vector<Chunk> scan(const std::string& src, const std::string& name) {
  std::vector<Chunk> chunks;
  size_t pos = 0;
  int line = 1;
  bool line_starting = true;  // the text about to be scanned starts a line (template start or after "\n")
  auto count_lines = [](const std::string& s, size_t b, size_t e) {
    int n = 0;
    for (size_t k = b; k < e; ++k) n += s[k] == '\n';
    return n;
  };
  while (pos <= src.size()) {
    size_t start = pos;
    char kind = 0;
    for (size_t k = pos; k + 1 < src.size(); ++k) {
      if (src[k] == '{' && (src[k + 1] == '{' || src[k + 1] == '%' || src[k + 1] == '#')) {
        start = k;
        kind = src[k + 1];
        break;
      }
    }
    if (!kind) {
      if (pos < src.size()) chunks.push_back({Chunk::Text, src.substr(pos), line});
      break;
    }
    std::string text = src.substr(pos, start - pos);
    const int text_line = line;
    line += count_lines(src, pos, start);
    const char sign = start + 2 < src.size() ? src[start + 2] : 0;
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
    if (!text.empty()) chunks.push_back({Chunk::Text, text, text_line});
    size_t inner_begin = start + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
    // Find the end of the tag outside string literals and brackets.
    const char end_char = kind == '{' ? '}' : kind == '%' ? '%' : '#';
    size_t k = inner_begin;
    size_t inner_end = std::string::npos, after = 0;
    char end_sign = 0;
    if (kind == '#') {
      const size_t e = src.find("#}", inner_begin);
      if (e == std::string::npos) fail(name, line, "unterminated comment");
      inner_end = e;
      end_sign = (e > inner_begin && src[e - 1] == '-') ? '-' : (e > inner_begin && src[e - 1] == '+') ? '+' : 0;
      after = e + 2;
    } else {
      int depth = 0;
      while (k < src.size()) {
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
          inner_end = k;
          if (k > inner_begin && (src[k - 1] == '-' || src[k - 1] == '+')) {
            end_sign = src[k - 1];
            inner_end = k - 1;
          }
          after = k + 2;
          break;
        }
        ++k;
      }
      if (inner_end == std::string::npos) fail(name, line, kind == '{' ? "unterminated {{ ... }}" : "unterminated {% ... %}");
    }
    if (kind == '{') chunks.push_back({Chunk::Var, src.substr(inner_begin, inner_end - inner_begin), line});
    if (kind == '%') chunks.push_back({Chunk::Block, src.substr(inner_begin, inner_end - inner_begin), line});
    line += count_lines(src, start, after);
    pos = after;
    if (end_sign == '-') {
      while (pos < src.size() && is_ws(src[pos])) {
        line += src[pos] == '\n';
        ++pos;
      }
    } else if (end_sign != '+' && kind != '{' && pos < src.size() && src[pos] == '\n') {
      ++pos;  // trim_blocks
      ++line;
    }
    line_starting = pos > 0 && src[pos - 1] == '\n';
    if (pos >= src.size()) break;
  }
  return chunks;
}

// ---------------------------------------------------------------------------------------------------------------
// Expression parser (jinja2.parser precedence)
class ExprParser {
 public:
  ExprParser(std::vector<Tok> toks, const std::string& name) : t_(std::move(toks)), name_(name) {}

  const Tok& peek(size_t k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool at_end() const { return peek().type == Tok::End; }
  bool is_op(const char* op, size_t k = 0) const { return peek(k).type == Tok::Op && peek(k).text == op; }
  bool is_name(const char* n, size_t k = 0) const { return peek(k).type == Tok::Name && peek(k).text == n; }
  Tok next() {
    Tok t = peek();
    if (p_ < t_.size() - 1) ++p_;
    return t;
  }
  [[noreturn]] void error(const std::string& what) const { fail(name_, peek().line, what); }
  void expect_op(const char* op) {
    if (!is_op(op)) error(std::string("expected '") + op + "', got '" + describe(peek()) + "'");
    next();
  }
  std::string expect_name() {
    if (peek().type != Tok::Name) error("expected a name, got '" + describe(peek()) + "'");
    return next().text;
  }
  static std::string describe(const Tok& t) {
    if (t.type == Tok::End) return "end of tag";
    if (t.type == Tok::String) return "string";
    if (t.type == Tok::Int) return std::to_string(t.i);
    return t.text;
  }
  void expect_end() {
    if (!at_end()) error("unexpected '" + describe(peek()) + "'");
  }

  using P = std::unique_ptr<Expr>;
  P make(Expr::Kind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  P expression() {
    guard();
    P e = cond_expr();
    --depth_;
    return e;
  }

  // `a, b` at top level (for targets of set / tuple results); returns a Tuple when there is a comma.
  P tuple_expression() {
    P first = expression();
    if (!is_op(",")) return first;
    P tup = make(Expr::Kind::Tuple, first->line);
    tup->args.push_back(std::move(first));
    while (is_op(",")) {
      next();
      if (at_end() || is_op(")") || is_op("]")) break;
      tup->args.push_back(expression());
    }
    return tup;
  }

 private:
  void guard() {
    if (++depth_ > 200) error("expression nested too deeply");
  }

  P cond_expr() {
    P e = or_expr();
    while (is_name("if")) {
      const int line = next().line;
      P cond = or_expr();
      P node = make(Expr::Kind::Cond, line);
      node->args.push_back(std::move(e));
      node->args.push_back(std::move(cond));
      if (is_name("else")) {
        next();
        node->args.push_back(cond_expr());
      }
      e = std::move(node);
    }
    return e;
  }
  P binary(const char* op, P l, P r, int line) {
    P n = make(Expr::Kind::Binary, line);
    n->name = op;
    n->args.push_back(std::move(l));
    n->args.push_back(std::move(r));
    return n;
  }
  P or_expr() {
    P l = and_expr();
    while (is_name("or")) {
      const int line = next().line;
      l = binary("or", std::move(l), and_expr(), line);
    }
    return l;
  }
  P and_expr() {
    P l = not_expr();
    while (is_name("and")) {
      const int line = next().line;
      l = binary("and", std::move(l), not_expr(), line);
    }
    return l;
  }
  P not_expr() {
    if (is_name("not")) {
      const int line = next().line;
      guard();
      P n = make(Expr::Kind::Unary, line);
      n->name = "not";
      n->args.push_back(not_expr());
      --depth_;
      return n;
    }
    return compare();
  }
  P compare() {
    P first = math1();
    P cmp;
    while (true) {
      std::string op;
      if (peek().type == Tok::Op && (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
                                      peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::Compare, first->line);
        cmp->args.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(math1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }
  P math1() {
    P l = concat();
    while (is_op("+") || is_op("-")) {
      const Tok op = next();
      l = binary(op.text == "+" ? "+" : "-", std::move(l), concat(), op.line);
    }
    return l;
  }
  P concat() {
    P l = math2();
    while (is_op("~")) {
      const int line = next().line;
      l = binary("~", std::move(l), math2(), line);
    }
    return l;
  }
  P math2() {
    P l = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Tok op = next();
      const char* o = op.text == "*" ? "*" : op.text == "/" ? "/" : op.text == "//" ? "//" : "%";
      l = binary(o, std::move(l), power(), op.line);
    }
    return l;
  }
  P power() {
    P l = unary(true);
    while (is_op("**")) {
      const int line = next().line;
      l = binary("**", std::move(l), unary(true), line);
    }
    return l;
  }
  P unary(bool with_filter) {
    guard();
    P node;
    if (is_op("-") || is_op("+")) {
      const Tok op = next();
      node = make(Expr::Kind::Unary, op.line);
      node->name = op.text == "-" ? "-" : "+";
      node->args.push_back(unary(false));
    } else {
      node = primary();
    }
    node = postfix(std::move(node));
    if (with_filter) node = filter_expr(std::move(node));
    --depth_;
    return node;
  }
  P primary() {
    const Tok t = peek();
    if (t.type == Tok::Name) {
      next();
      P n = make(Expr::Kind::Literal, t.line);
      if (t.text == "true" || t.text == "True") n->literal = Value(true);
      else if (t.text == "false" || t.text == "False") n->literal = Value(false);
      else if (t.text == "none" || t.text == "None") n->literal = Value(None{});
      else {
        n->kind = Expr::Kind::Name;
        n->name = t.text;
      }
      return n;
    }
    if (t.type == Tok::String) {
      std::string s;
      while (peek().type == Tok::String) s += next().text;  // adjacent literals concatenate
      P n = make(Expr::Kind::Literal, t.line);
      n->literal = Value(std::move(s));
      return n;
    }
    if (t.type == Tok::Int || t.type == Tok::Float) {
      next();
      P n = make(Expr::Kind::Literal, t.line);
      n->literal = t.type == Tok::Int ? Value(t.i) : Value(t.f);
      return n;
    }
    if (is_op("(")) {
      next();
      if (is_op(")")) {
        next();
        return make(Expr::Kind::Tuple, t.line);
      }
      P e = expression();
      if (is_op(",")) {
        P tup = make(Expr::Kind::Tuple, t.line);
        tup->args.push_back(std::move(e));
        while (is_op(",")) {
          next();
          if (is_op(")")) break;
          tup->args.push_back(expression());
        }
        e = std::move(tup);
      }
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      next();
      P l = make(Expr::Kind::List, t.line);
      while (!is_op("]")) {
        l->args.push_back(expression());
        if (!is_op(",")) break;
        next();
      }
      expect_op("]");
      return l;
    }
    if (is_op("{")) {
      next();
      P d = make(Expr::Kind::Dict, t.line);
      while (!is_op("}")) {
        d->args.push_back(expression());
        expect_op(":");
        d->args.push_back(expression());
        if (!is_op(",")) break;
        next();
      }
      expect_op("}");
      return d;
    }
    error("unexpected '" + describe(t) + "'");
  }
  P postfix(P node) {
    while (true) {
      if (is_op(".")) {
        const int line = next().line;
        P a = make(Expr::Kind::Attr, line);
        if (peek().type == Tok::Int) {
          a->kind = Expr::Kind::Index;
          a->args.push_back(std::move(node));
          P idx = make(Expr::Kind::Literal, line);
          idx->literal = Value(next().i);
          a->args.push_back(std::move(idx));
        } else {
          a->name = expect_name();
          a->args.push_back(std::move(node));
        }
        node = std::move(a);
      } else if (is_op("[")) {
        const int line = next().line;
        P parts[3];
        bool is_slice = false;
        int part = 0;
        while (!is_op("]")) {
          if (is_op(":")) {
            next();
            is_slice = true;
            if (++part > 2) error("bad slice");
            continue;
          }
          if (parts[part]) error("bad subscript");
          parts[part] = expression();
        }
        expect_op("]");
        P s = make(is_slice ? Expr::Kind::Slice : Expr::Kind::Index, line);
        s->args.push_back(std::move(node));
        if (is_slice) {
          for (auto& p : parts) s->args.push_back(std::move(p));
        } else {
          if (!parts[0]) error("empty subscript");
          s->args.push_back(std::move(parts[0]));
        }
        node = std::move(s);
      } else if (is_op("(")) {
        node = call(std::move(node));
      } else {
        return node;
      }
    }
  }
  P call(P callee) {
    const int line = peek().line;
    P c = make(Expr::Kind::Call, line);
    c->args.push_back(std::move(callee));
    parse_args(*c);
    return c;
  }
  void parse_args(Expr& target) {
    expect_op("(");
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) error("*args / **kwargs in calls are not supported");
      if (peek().type == Tok::Name && is_op("=", 1)) {
        std::string key = next().text;
        next();
        target.kwargs.emplace_back(std::move(key), expression());
      } else {
        if (!target.kwargs.empty()) error("positional argument after a keyword argument");
        target.args.push_back(expression());
      }
      if (!is_op(",")) break;
      next();
    }
    expect_op(")");
  }
  P filter_expr(P node) {
    while (true) {
      if (is_op("|")) {
        const int line = next().line;
        P f = make(Expr::Kind::Filter, line);
        f->name = expect_name();
        while (is_op(".")) {
          next();
          f->name += "." + expect_name();
        }
        f->args.push_back(std::move(node));
        if (is_op("(")) parse_args(*f);
        node = std::move(f);
      } else if (is_name("is")) {
        const int line = next().line;
        P t = make(Expr::Kind::Test, line);
        if (is_name("not")) {
          next();
          t->negated = true;
        }
        t->name = expect_name();
        t->args.push_back(std::move(node));
        if (is_op("(")) {
          parse_args(*t);
        } else {
          const Tok& n = peek();
          const bool arg_follows =
              n.type == Tok::String || n.type == Tok::Int || n.type == Tok::Float || is_op("[") || is_op("{") ||
              (n.type == Tok::Name && n.text != "else" && n.text != "or" && n.text != "and" && n.text != "if" &&
               n.text != "in" && n.text != "is" && n.text != "not");
          if (arg_follows) t->args.push_back(primary_postfix());
        }
        node = std::move(t);
      } else if (is_op("(")) {
        node = call(std::move(node));
      } else {
        return node;
      }
    }
  }
  P primary_postfix() { return postfix(primary()); }

  std::vector<Tok> t_;
  size_t p_ = 0;
  const std::string& name_;
  int depth_ = 0;
};

// ---------------------------------------------------------------------------------------------------------------
// Statement parser
class StmtParser {
 public:
  StmtParser(std::vector<Chunk> chunks, const std::string& name) : c_(std::move(chunks)), name_(name) {}

  std::vector<Node> parse_all() {
    std::vector<Node> out = parse_body({});
    if (i_ < c_.size()) fail(name_, c_[i_].line, "unexpected '{% " + first_word(c_[i_]) + " %}'");
    return out;
  }

 private:
  static std::string first_word(const Chunk& c) {
    size_t b = 0;
    while (b < c.text.size() && is_ws(c.text[b])) ++b;
    size_t e = b;
    while (e < c.text.size() && (std::isalnum(static_cast<unsigned char>(c.text[e])) || c.text[e] == '_')) ++e;
    return c.text.substr(b, e - b);
  }

  // Parses nodes until a block tag whose first word is in `stops` (left unconsumed) or the end.
  std::vector<Node> parse_body(const std::vector<std::string>& stops) {
    if (++depth_ > 100) fail(name_, i_ < c_.size() ? c_[i_].line : 0, "statements nested too deeply");
    std::vector<Node> out;
    while (i_ < c_.size()) {
      const Chunk& ch = c_[i_];
      if (ch.type == Chunk::Text) {
        Node n;
        n.kind = Node::Kind::Text;
        n.text = ch.text;
        n.line = ch.line;
        out.push_back(std::move(n));
        ++i_;
      } else if (ch.type == Chunk::Var) {
        ExprParser p(lex_expr(ch.text, ch.line, name_), name_);
        Node n;
        n.kind = Node::Kind::Output;
        n.line = ch.line;
        n.expr = p.tuple_expression();
        p.expect_end();
        out.push_back(std::move(n));
        ++i_;
      } else {
        const std::string word = first_word(ch);
        for (const auto& s : stops)
          if (word == s) {
            --depth_;
            return out;
          }
        out.push_back(parse_statement(word));
      }
    }
    if (!stops.empty()) fail(name_, c_.empty() ? 0 : c_.back().line, "missing '{% " + stops.back() + " %}'");
    --depth_;
    return out;
  }

  Node parse_statement(const std::string& word) {
    const Chunk& ch = c_[i_];
    ExprParser p(lex_expr(ch.text, ch.line, name_), name_);
    p.next();  // the keyword
    Node n;
    n.line = ch.line;
    ++i_;
    if (word == "if") {
      n.kind = Node::Kind::If;
      auto cond = p.expression();
      p.expect_end();
      n.branches.emplace_back(std::move(cond), parse_body({"elif", "else", "endif"}));
      while (true) {
        const Chunk& stop = c_[i_];
        const std::string w = first_word(stop);
        ExprParser sp(lex_expr(stop.text, stop.line, name_), name_);
        sp.next();
        ++i_;
        if (w == "elif") {
          auto c = sp.expression();
          sp.expect_end();
          n.branches.emplace_back(std::move(c), parse_body({"elif", "else", "endif"}));
        } else if (w == "else") {
          sp.expect_end();
          n.else_body = parse_body({"endif"});
          ExprParser ep(lex_expr(c_[i_].text, c_[i_].line, name_), name_);
          ep.next();
          ep.expect_end();
          ++i_;
          break;
        } else {
          sp.expect_end();
          break;
        }
      }
    } else if (word == "for") {
      n.kind = Node::Kind::For;
      const bool paren = p.is_op("(");
      if (paren) p.next();
      n.targets.push_back(p.expect_name());
      while (p.is_op(",")) {
        p.next();
        if (p.is_op(")") || p.is_name("in")) break;
        n.targets.push_back(p.expect_name());
      }
      if (paren) p.expect_op(")");
      if (!p.is_name("in")) p.error("expected 'in' in a for statement");
      p.next();
      n.expr = p.expression();  // jinja parses the iterable without the `if` filter part
      if (n.expr->kind == Expr::Kind::Cond) {
        // `for x in xs if cond`: the parser took `xs if cond` as a conditional expression without else.
        if (n.expr->args.size() != 2) p.error("unexpected 'else' in a for statement");
        n.loop_filter = std::move(n.expr->args[1]);
        n.expr = std::move(n.expr->args[0]);
      }
      if (p.is_name("recursive")) p.error("recursive loops are not supported");
      p.expect_end();
      n.body = parse_body({"else", "endfor"});
      if (first_word(c_[i_]) == "else") {
        ++i_;
        n.else_body = parse_body({"endfor"});
      }
      ++i_;
    } else if (word == "set") {
      std::string target = p.expect_name();
      if (p.is_op(".")) {
        p.next();
        n.attr = p.expect_name();
      }
      n.targets.push_back(target);
      while (n.attr.empty() && p.is_op(",")) {
        p.next();
        n.targets.push_back(p.expect_name());
      }
      if (p.is_op("=")) {
        p.next();
        n.kind = Node::Kind::Set;
        n.expr = p.tuple_expression();
        p.expect_end();
      } else {
        if (p.is_op("|")) p.error("filtered block set is not supported");
        p.expect_end();
        if (!n.attr.empty() || n.targets.size() != 1) p.error("block set needs a single name");
        n.kind = Node::Kind::SetBlock;
        n.body = parse_body({"endset"});
        ++i_;
      }
    } else if (word == "generation") {
      p.expect_end();
      n.kind = Node::Kind::Generation;
      n.body = parse_body({"endgeneration"});
      ++i_;
    } else if (word == "break" || word == "continue") {
      p.expect_end();
      n.kind = word == "break" ? Node::Kind::Break : Node::Kind::Continue;
    } else {
      fail(name_, ch.line, "unsupported template tag '{% " + word + " %}' (sft supports if/for/set/generation/"
                           "break/continue)");
    }
    return n;
  }

  std::vector<Chunk> c_;
  size_t i_ = 0;
  const std::string& name_;
  int depth_ = 0;
};

}  // namespace

std::vector<Node> parse_template(const std::string& source, const std::string& name) {
  StmtParser p(scan(normalize_newlines(source), name), name);
  return p.parse_all();
}

}  // namespace sft::jinja
