// Lexing of the Jinja subset (internal to src/template): the template text into text/tag chunks with jinja2's
// whitespace rules, and the inside of one tag into expression tokens. See jinja_parser.cpp for the rules.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sft::jinja::lex {

struct Tok {
  enum Type { Name, Int, Float, String, Op, End } type = End;
  std::string text;  // name / operator / decoded string
  int64_t i = 0;
  double f = 0;
  int line = 0;
};

struct Chunk {
  enum Type { Text, Var, Block } type;
  std::string text;  // Text: data; Var/Block: the inside of the tag
  int line = 0;
};

[[noreturn]] void fail(const std::string& name, int line, const std::string& what);
bool is_ws(char c);
// Python's str.splitlines() boundaries -> "\n"; then one trailing newline dropped (keep_trailing_newline=False).
std::string normalize_newlines(const std::string& s);
// Template text -> chunks (whitespace control, lstrip_blocks, trim_blocks applied; comments dropped).
std::vector<Chunk> scan(const std::string& src, const std::string& name);
// The inside of one tag -> tokens (strings unescaped with Python's unicode-escape rules), ending with End.
std::vector<Tok> lex_expr(const std::string& src, int line, const std::string& name);

}  // namespace sft::jinja::lex
