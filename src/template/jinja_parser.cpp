// Lexer and parser of the Jinja subset. The lexer reproduces jinja2.lexer's whitespace rules for the environment
// transformers uses (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
//   - newlines in the source are normalised to "\n" (Python's str.splitlines() line breaks) and ONE trailing newline
//     of the template is dropped;
//   - "{%-" / "{{-" / "{#-" strip all whitespace before the tag, "-%}" / "-}}" / "-#}" all whitespace after;
//   - lstrip_blocks: before "{%" / "{#" (not "{{", not "{%+"), spaces/tabs from the start of the line are removed when
//     nothing else precedes the tag on that line;
//   - trim_blocks: one "\n" right after "%}" / "#}" (not "+%}", not "}}") is removed.
#include <algorithm>
#include <cctype>

#include "template/jinja_ast.h"
#include "template/jinja_lexer.h"
#include "util/error.h"

namespace sft::jinja {
namespace {

using lex::Chunk;
using lex::fail;
using lex::is_ws;
using lex::lex_expr;
using lex::Tok;

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

  // Every expression tree is at most this tall, whatever its form: the parser's own recursion is bounded by guard(),
  // and left-associative chains that a loop builds (`1 + 1 + ...`, `x.a.b...`, `x|f|f...`, `a if b if c ...`) by the
  // height each finished node records here. The evaluator and the destructor recurse along the tree.
  static constexpr int kMaxHeight = 200;
  P seal(P e) {
    int h = 0;
    for (const auto& a : e->args)
      if (a) h = std::max(h, a->height);
    for (const auto& kv : e->kwargs) h = std::max(h, kv.second->height);
    e->height = h + 1;
    if (e->height > kMaxHeight) error("expression nested too deeply");
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
    return seal(std::move(tup));
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
        node->args.push_back(expression());  // right-nested `a if b else c if d else ...`: guarded recursion
      }
      e = seal(std::move(node));
    }
    return e;
  }
  P binary(const char* op, P l, P r, int line) {
    P n = make(Expr::Kind::Binary, line);
    n->name = op;
    n->args.push_back(std::move(l));
    n->args.push_back(std::move(r));
    return seal(std::move(n));
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
      return seal(std::move(n));
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
    return cmp ? seal(std::move(cmp)) : std::move(first);
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
      node = seal(std::move(node));
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
        e = seal(std::move(tup));
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
      return seal(std::move(l));
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
      return seal(std::move(d));
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
        node = seal(std::move(a));
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
        node = seal(std::move(s));
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
    return seal(std::move(c));
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
        node = seal(std::move(f));
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
        node = seal(std::move(t));
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
  StmtParser p(lex::scan(lex::normalize_newlines(source), name), name);
  return p.parse_all();
}

}  // namespace sft::jinja
