// The template engine's bounds (issue 30): every recursion of parser and renderer, the live memory of the values a
// template builds, 64-bit integer arithmetic that never wraps, and Python's arithmetic rules where they differ from
// C++'s. Each hostile template must end in one sft::Error naming the template line, never a crash or gigabytes.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>

#include "template/chat_template.h"
#include "template/jinja.h"
#include "template/jinja_arith.h"
#include "util/error.h"

namespace sft::jinja {
namespace {

std::string render(const std::string& src, const Dict& ctx = {}, const RenderLimits& lim = {}) {
  return Template::parse(src, "t.jinja").render(ctx, lim).text;
}

// The message of the error parse + render throw ("" when none).
std::string error_of(const std::string& src, const Dict& ctx = {}, const RenderLimits& lim = {}) {
  try {
    Template::parse(src, "t.jinja").render(ctx, lim);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

#define EXPECT_ERROR_HAS(src, needle)                                         \
  do {                                                                         \
    const std::string err_ = error_of(src);                                    \
    EXPECT_NE(err_.find(needle), std::string::npos) << (src) << "\n -> " << err_; \
  } while (0)

TEST(JinjaBounds, DeepInlineIfIsAnErrorNotAStackOverflow) {
  // Used to recurse once per `else` without a bound: ~100k levels segfaulted.
  for (int depth : {300, 100'000}) {
    const std::string src = "\n{{ " + repeat("1 if true else ", depth) + "1 }}";
    EXPECT_ERROR_HAS(src, "t.jinja:2: expression nested too deeply");
  }
  EXPECT_EQ(render("{{ " + repeat("0 if false else ", 50) + "7 }}"), "7");  // real nesting still works
}

TEST(JinjaBounds, EveryExpressionFormIsBounded) {
  // Right-nested forms recurse in the parser; left-associative chains are built by loops and recursed by the
  // evaluator and the destructor: both are bounded by the tree's height.
  const int n = 100'000;
  const std::vector<std::string> sources = {
      "{{ " + repeat("(", n) + "1" + repeat(")", n) + " }}",
      "{{ " + repeat("[", n) + repeat("]", n) + " }}",
      "{{ " + repeat("{'a': ", n) + "1" + repeat("}", n) + " }}",
      "{{ " + repeat("not ", n) + "1 }}",
      "{{ " + repeat("-", n) + "1 }}",
      "{{ " + repeat("1 + ", n) + "1 }}",
      "{{ " + repeat("'a' ~ ", n) + "'a' }}",
      "{{ " + repeat("2 ** ", n) + "1 }}",
      "{{ 1 " + repeat("and 1 ", n) + "}}",
      "{{ x" + repeat(".a", n) + " }}",
      "{{ x" + repeat("[0]", n) + " }}",
      "{{ x" + repeat("()", n) + " }}",
      "{{ 'a'" + repeat("|trim", n) + " }}",
      "{{ 1" + repeat(" is number", n) + " }}",
      "{{ 1 " + repeat("if 1 ", n) + "}}",
      "{{ f(" + repeat("f(", n) + repeat(")", n) + ") }}",
      "{% set x = " + repeat("1 if 1 else ", n) + "1 %}",
      "{% for x in " + repeat("[", n) + repeat("]", n) + " %}{% endfor %}",
      repeat("{% if 1 %}", 1000) + repeat("{% endif %}", 1000),
  };
  for (const auto& src : sources) {
    const std::string e = error_of(src);
    EXPECT_TRUE(e.find("nested too deeply") != std::string::npos) << src.substr(0, 40) << " -> " << e;
  }
}

TEST(JinjaBounds, ValueMemoryIsBoundedAndNamesTheLine) {
  RenderLimits lim;
  lim.max_value_bytes = 8 << 20;  // the default is 64 MiB; the same code at a test-friendly size
  const std::vector<std::string> sources = {
      // doubling a namespace string: 2^64 bytes if unbounded
      "{% set ns = namespace(s='ab') %}\n{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
      "\n{% set x = 'a' * 200000000 %}",
      "\n{% set x = 'a' * 1000000 %}{% set y = x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x ~ x %}",
      "\n{% for m in messages * 100000000 %}{% endfor %}",
      "\n{{ (messages|tojson(indent=1000000000))|length }}",
      "\n{{ (range(100000)|join('x' * 100000))|length }}",
      "\n{{ (('a' * 100000)|replace('a', 'b' * 100000))|length }}",
      "\n{{ ('a' * 100000).replace('a', 'b' * 100000)|length }}",
      "\n{{ (('a,' * 3000000).split(','))|length }}",
      "\n{% set l = ['x' * 1000000] * 1000 %}",
      "\n{% set s = 'x' * 1000000 %}{{ ([s, s, s, s, s, s, s, s, s, s] * 1)|string|length }}",
      "\n{{ ('ab' * 3000000)|list|length }}",
      "\n{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + ['0123456789' * 1000] %}"
      "{% endfor %}",
  };
  Dict ctx;
  List msgs;
  for (int i = 0; i < 4; ++i) {
    Dict m;
    m.set("role", Value("user"));
    m.set("content", Value("hello"));
    msgs.emplace_back(std::move(m));
  }
  ctx.set("messages", Value(msgs));
  for (const auto& src : sources) {
    const std::string e = error_of(src, ctx, lim);
    EXPECT_NE(e.find("t.jinja:2: the values the template builds exceed 8 MiB"), std::string::npos)
        << src << "\n -> " << e;
    EXPECT_EQ(e.find("per_device_train_batch_size"), std::string::npos) << e;
  }
  // The same shapes at sizes a real template meets render normally.
  EXPECT_EQ(render("{% set ns = namespace(s='ab') %}{% for i in range(10) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
                   "{{ ns.s|length }}", {}, lim),
            "2048");
  EXPECT_EQ(render("{{ ('a,' * 1000).split(',')|length }}|{{ (range(3)|join('-')) }}", {}, lim), "1001|0-1-2");
}

TEST(JinjaBounds, BudgetCountsLiveValuesNotEveryValueEverMade) {
  // 1,000 iterations each making and dropping a 100 KB string: 100 MB made in all, 100 KB alive at a time.
  RenderLimits lim;
  lim.max_value_bytes = 8 << 20;
  EXPECT_EQ(render("{% for i in range(1000) %}{% set x = 'a' * 100000 %}{% endfor %}ok", {}, lim), "ok");
  ValueBudget outer(1 << 20);
  {
    Value big(std::string(300000, 'x'));
    EXPECT_GE(outer.used(), size_t{300000});
    Value copy = big;  // a copied string is copied memory
    EXPECT_GE(outer.used(), size_t{600000});
    EXPECT_THROW(Value v(std::string(600000, 'y')), ValueLimitError);
  }
  EXPECT_EQ(outer.used(), size_t{0});  // everything given back
}

TEST(JinjaBounds, TimeIsBounded) {
  // Every iteration works on a long string: few iterations, each slow. The deadline stops it, naming the line.
  RenderLimits lim;
  lim.max_seconds = 0.5;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = error_of("{% set s = 'ab' * 1000000 %}\n{% for i in range(100000) %}{% if s|length %}{% endif %}"
                                 "{% endfor %}", {}, lim);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_NE(e.find("t.jinja:2: rendering took longer than 0.5 s"), std::string::npos) << e;
  EXPECT_LT(secs, 30.0);  // one iteration (a 2 MB length) past the deadline, not 100,000
  lim = {};
  lim.max_loop_iterations = 1000;
  EXPECT_NE(error_of("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", {}, lim)
                .find("too many loop iterations"), std::string::npos);
}

TEST(JinjaBounds, SubstringSearchIsLinear) {
  // ('a' * n).count('a' * m ~ 'b') costs n*m with a naive search: 4e12 steps here; KMP does it in 2e6.
  RenderLimits lim;
  lim.max_seconds = 20;
  EXPECT_EQ(render("{% set s = 'a' * 2000000 %}{% set p = 'a' * 1000000 ~ 'b' %}{{ s.count(p) }} {{ s.find(p) }} "
                   "{{ p in s }} {{ s.split(p)|length }} {{ s.replace(p, 'x')|length }} {{ s.strip(s)|length }}",
                   {}, lim),
            "0 -1 False 1 2000000 0");
  EXPECT_EQ(render("{{ 'abcabcab'.count('abcab') }} {{ 'aXbXXc'.split('X') }} {{ 'banana'.find('ana') }}"
                   " {{ 'aaaa'.replace('aa', 'b') }} {{ 'ab' in 'xaby' }}"),
            "1 ['a', 'b', '', 'c'] 1 bb True");
}

TEST(JinjaBounds, DeeplyNestedValuesAndNamespaceCyclesAreRefused) {
  // Lists built by a loop nest deeper than any literal could; printing or comparing them recursed without a bound.
  EXPECT_ERROR_HAS("{% set ns = namespace(x=[]) %}\n{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}",
                   "t.jinja:2: a list nested deeper than 256 levels");
  EXPECT_EQ(render("{% set ns = namespace(x=[]) %}{% for i in range(3) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}"),
            "[[[[]]]]");
  // A namespace holding a namespace could form a reference cycle (leaked memory, endless tojson).
  EXPECT_ERROR_HAS("{% set ns = namespace(a=1) %}{% set ns2 = namespace(n=ns) %}\n{% set ns.b = [ns2] %}",
                   "t.jinja:2: cannot store a namespace in the attribute 'b' of a namespace");
}

TEST(JinjaBounds, IntegerArithmeticNeverWraps) {
  const char* overflowing[] = {
      "9223372036854775807 + 1",          "-9223372036854775807 - 2",         "4611686018427387904 * 2",
      "2 ** 64",                          "2 ** 63",                          "(-9223372036854775807 - 1) // -1",
      "-(-9223372036854775807 - 1)",      "(-9223372036854775807 - 1) | abs", "3037000500 * 3037000500",
      "(-2) ** 65",                       "'99999999999999999999' | int",     "1e19 | int",
  };
  for (const char* expr : overflowing) EXPECT_ERROR_HAS(std::string("\n{{ ") + expr + " }}", "t.jinja:2:");
  EXPECT_ERROR_HAS("{{ 9223372036854775807 + 1 }}", "integer overflow: 9223372036854775807 + 1 does not fit in 64 bits");
  EXPECT_ERROR_HAS("{{ 2 ** 64 }}", "integer overflow: 2 ** 64");
  EXPECT_ERROR_HAS("{{ 99999999999999999999 }}", "integer literal out of range");
  EXPECT_ERROR_HAS("{{ [1]|tojson(indent=9223372036854775807) }}", "tojson indent 9223372036854775807 is too large");
  // The edges that do fit, as Python computes them.
  EXPECT_EQ(render("{{ 9223372036854775806 + 1 }} {{ (-2) ** 63 }} {{ 2 ** 62 }} {{ -9223372036854775807 - 1 }}"),
            "9223372036854775807 -9223372036854775808 4611686018427387904 -9223372036854775808");
  EXPECT_EQ(render("{{ (-9223372036854775807 - 1) % -1 }} {{ (-9223372036854775807 - 1) is divisibleby(-1) }}"
                   " {{ 1 ** 9223372036854775807 }} {{ 0 ** 9223372036854775807 }} {{ (-1) ** 9223372036854775807 }}"),
            "0 True 1 0 -1");
  EXPECT_EQ(render("{{ range(9223372036854775800, 9223372036854775807, 5) | list }}"),
            "[9223372036854775800, 9223372036854775805]");
  EXPECT_EQ(render("{{ 'abc'[1::9223372036854775807] }}|{{ 'abc'[-1::-9223372036854775807 - 1] }}"), "b|c");
}

TEST(JinjaBounds, PythonArithmeticRules) {
  EXPECT_EQ(render("{{ 7 // -2 }} {{ -7 % 3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 7 % -2.5 }} {{ 2 ** -1 }} {{ 1e999 }}"
                   " {{ -1e999 }} {{ 1e-999 }}"),
            "-4 2 3.0 0.5 -0.5 0.5 inf -inf 0.0");
  EXPECT_ERROR_HAS("{{ 1 / 0 }}", "division by zero");
  EXPECT_ERROR_HAS("{{ 1 // 0 }}", "integer division or modulo by zero");
  EXPECT_ERROR_HAS("{{ 5 % 0.0 }}", "float modulo by zero");
  EXPECT_ERROR_HAS("{{ 0 ** -1 }}", "0.0 cannot be raised to a negative power");
  EXPECT_ERROR_HAS("{{ (-8) ** 0.5 }}", "complex");
  EXPECT_ERROR_HAS("{{ 10.0 ** 400 }}", "overflows");
  // jinja2's int/float filters: int(x), else int(float(x)), else the default; Python's literal syntax.
  EXPECT_EQ(render("{{ '42.9'|int }} {{ ' -7 '|int }} {{ '1_000'|int }} {{ 'x'|int }} {{ 'x'|int(5) }} {{ 'nan'|int }}"
                   " {{ 2.9|int }} {{ -2.9|int }}"),
            "42 -7 1000 0 5 0 2 -2");
  EXPECT_EQ(render("{{ '1e999'|float }} {{ ' 1_0.5 '|float }} {{ '-inf'|float }} {{ '0x10'|float }} {{ '.5'|float }}"),
            "inf 10.5 -inf 0.0 0.5");
  EXPECT_ERROR_HAS("{{ 'inf'|float|int }}", "cannot convert float inf");
  EXPECT_EQ(render("{{ {'a': [1, 2]}|tojson(indent=0) }}|{{ [1]|tojson(indent=-3) }}"),
            "{\n\"a\": [\n1,\n2\n]\n}|[\n1\n]");
}

TEST(JinjaBounds, ArithParsersFollowPython) {
  EXPECT_EQ(arith::parse_int("  +12_3 "), 123);
  EXPECT_EQ(arith::parse_int("-9223372036854775808"), INT64_MIN);
  EXPECT_FALSE(arith::parse_int("1__0").has_value());
  EXPECT_FALSE(arith::parse_int("_1").has_value());
  EXPECT_FALSE(arith::parse_int("1_").has_value());
  EXPECT_FALSE(arith::parse_int("").has_value());
  EXPECT_THROW(arith::parse_int("9223372036854775808"), Error);
  EXPECT_EQ(arith::parse_float("1."), 1.0);
  EXPECT_EQ(arith::parse_float("-1.5E-3"), -1.5e-3);
  EXPECT_TRUE(std::isnan(*arith::parse_float("NaN")));
  EXPECT_EQ(arith::parse_float("Infinity"), HUGE_VAL);
  EXPECT_FALSE(arith::parse_float("1e").has_value());
  EXPECT_FALSE(arith::parse_float(".").has_value());
  EXPECT_FALSE(arith::parse_float("1.5.").has_value());
  EXPECT_EQ(arith::float_to_int(-9223372036854775808.0), INT64_MIN);
  EXPECT_THROW(arith::float_to_int(9223372036854775808.0), Error);
  EXPECT_FALSE(arith::float_to_int(std::nan("")).has_value());
}

TEST(JinjaBounds, ChatJsonIntegersBeyond64BitsAreRefused) {
  EXPECT_THROW(value_from_json_text(R"([{"role": "user", "n": 18446744073709551615}])", "m"), Error);
  EXPECT_EQ(value_from_json_text(R"([9223372036854775807])", "m").as_list()[0].as_int(), INT64_MAX);
}

}  // namespace
}  // namespace sft::jinja
