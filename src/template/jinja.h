// A sandboxed Jinja2 subset for chat templates, rendering byte-identically to transformers' apply_chat_template
// (jinja2 ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) + loopcontrols + {% generation %}).
//
// Why our own: neither Debian nor PyPI ships a maintained C++ Jinja engine (Debian has only Python/Rust/R ones; the
// PyPI package `minja` 1.2.0 is a 60-line pure-Python variable substituter, not Google's C++ minja), and the product
// may only depend on Debian packages or native wheels (see docs/arch/template.md).
//
// Supported: text with {{ }}, {% %}, {# #}, whitespace control (-, +), trim_blocks/lstrip_blocks, the trailing
// newline rule; statements if/elif/else, for (tuple targets, `if` filter, else, loop.* variables), set (names,
// namespace attributes, tuple unpacking, block set), generation, break, continue; expressions: literals, lists,
// tuples, dicts, attribute/subscript/slice access, calls, filters, tests, not/and/or, comparisons, in, ~, + - * / //
// % **, conditional expressions; the Python string/dict methods and Jinja filters/tests chat templates use (list in
// docs/arch/template.md). Everything else (macro, call, include, extends, raw, unknown filters/tests/methods, ...) is a
// one-line sft::Error naming the template line; it never renders something silently different.
// Sandbox: nothing but the given values is reachable; output size, the live memory of values, loop iterations, time,
// range() and nesting (parser, renderer, values) are bounded; integer arithmetic never wraps (jinja_arith.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "template/value.h"

namespace sft::jinja {

struct Node;  // parsed statement (jinja_ast.h)

struct RenderLimits {
  size_t max_output_bytes = size_t{256} << 20;
  // Live memory of the values the template builds (strings, lists, dicts: see ValueBudget in value.h). Chat templates
  // need a few MB for a long conversation; `'a' * 10**9`, `ns.s = ns.s ~ ns.s` in a loop or `messages * 10**8` stop
  // here with an error naming the line. One operation's temporary text is at most a small multiple of this.
  size_t max_value_bytes = size_t{64} << 20;
  // Time: loop iterations in all (a conversation needs thousands), and wall-clock time (checked every 1024
  // statements/expressions), which also bounds loops whose every iteration works on a long string. A real render
  // takes milliseconds; jinja2's sandbox bounds only range().
  int64_t max_loop_iterations = 10'000'000;
  double max_seconds = 60.0;
  int max_depth = 256;  // nesting of statements/expressions while rendering
};

struct RenderResult {
  std::string text;
  // Byte ranges [begin, end) of text produced inside {% generation %} ... {% endgeneration %} blocks (in order).
  std::vector<std::pair<size_t, size_t>> generation_spans;
};

class Template {
 public:
  // Parses a template; throws sft::Error "<name>:<line>: ..." on syntax it does not support.
  static Template parse(const std::string& source, const std::string& name = "chat_template");
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;
  ~Template();

  // Renders with `context` (a dict of top-level variables) plus the built-ins raise_exception, namespace, range and
  // strftime_now. Throws sft::Error naming the template line on a runtime error or raise_exception().
  RenderResult render(const Dict& context, const RenderLimits& limits = {}) const;
  bool uses_generation_blocks() const;

 struct Impl;  // public so the evaluator's internals can reach it; defined in jinja_eval.cpp

 private:
  Template();
  std::unique_ptr<Impl> impl_;
};

}  // namespace sft::jinja
