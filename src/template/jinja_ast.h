// Parsed form of a template (internal to src/template).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "template/value.h"

namespace sft::jinja {

struct Expr {
  enum class Kind { Literal, Name, List, Tuple, Dict, Attr, Index, Slice, Call, Filter, Test, Unary, Binary, Compare, Cond };
  Kind kind = Kind::Literal;
  int line = 0;
  Value literal;                                // Literal
  std::string name;                             // Name / Attr / Filter / Test name; Unary and Binary operator
  std::vector<std::unique_ptr<Expr>> args;      // children (see parser for the layout of each kind)
  std::vector<std::pair<std::string, std::unique_ptr<Expr>>> kwargs;  // Call / Filter / Test keyword arguments
  std::vector<std::string> ops;                 // Compare: the operators between args[i] and args[i+1]
  bool negated = false;                         // Test: `is not`
  int height = 1;  // 1 + the tallest child: bounded by the parser, so evaluating or destroying it cannot overflow the stack
};

struct Node {
  enum class Kind { Text, Output, If, For, Set, SetBlock, Generation, Break, Continue };
  Kind kind = Kind::Text;
  int line = 0;
  std::string text;                                                   // Text
  std::unique_ptr<Expr> expr;                                         // Output, Set value, For iterable
  std::vector<std::pair<std::unique_ptr<Expr>, std::vector<Node>>> branches;  // If: (condition, body) per if/elif
  std::vector<Node> body, else_body;                                  // For / SetBlock / Generation body; If/For else
  std::vector<std::string> targets;                                   // For / Set target names
  std::string attr;                                                   // Set: `set ns.attr = ...` (targets[0] = ns)
  std::unique_ptr<Expr> loop_filter;                                  // For: `for x in xs if cond`
};

std::vector<Node> parse_template(const std::string& source, const std::string& name);

}  // namespace sft::jinja
