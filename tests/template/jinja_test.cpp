// The Jinja subset without Python: whitespace rules, scoping, Python value semantics, generation spans, errors and
// sandbox limits. (Parity with jinja2/transformers on real templates: test_chat_template_parity.py.)
#include <gtest/gtest.h>

#include "template/chat_template.h"
#include "template/jinja.h"
#include "util/error.h"

namespace sft::jinja {
namespace {

std::string render(const std::string& src, Dict ctx = {}) { return Template::parse(src, "t").render(ctx).text; }

std::string error_of(const std::string& src, Dict ctx = {}, RenderLimits lim = {}) {
  try {
    Template::parse(src, "t").render(ctx, lim);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Jinja, WhitespaceControlAsTransformersConfiguresJinja2) {
  // trim_blocks: the newline after a block tag goes; lstrip_blocks: indentation before a block tag goes.
  EXPECT_EQ(render("{% if true %}\n  x\n{% endif %}\n"), "  x\n");
  EXPECT_EQ(render("a\n    {% if true %}b{% endif %}"), "a\nb");
  EXPECT_EQ(render("a  {{- ' b ' -}}  c"), "a b c");
  EXPECT_EQ(render("a\n  {%+ if true %}b{% endif %}"), "a\n  b");  // + keeps the indentation
  EXPECT_EQ(render("x{# c #}\ny"), "xy");
  EXPECT_EQ(render("line\n"), "line");        // one trailing newline dropped
  EXPECT_EQ(render("line\n\n"), "line\n");
  EXPECT_EQ(render("a\r\nb"), "a\nb");
}

TEST(Jinja, ScopesLoopsAndNamespaces) {
  EXPECT_EQ(render("{% set x = 1 %}{% for i in [1, 2] %}{% set x = i * 10 %}{{ x }}{% endfor %}{{ x }}"), "10201");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"),
            "6");
  EXPECT_EQ(render("{% for a, b in [[1, 'x'], [2, 'y']] %}{{ a }}{{ b }}{{ ',' if not loop.last }}{% endfor %}"),
            "1x,2y");
  EXPECT_EQ(render("{% for i in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for i in range(9) if i is odd %}{% if i > 5 %}{% break %}{% endif %}{{ i }}{% endfor %}"), "135");
}

TEST(Jinja, PythonValueSemantics) {
  EXPECT_EQ(render("{{ none }} {{ true }} {{ 1.0 }} {{ 1e20 }} {{ 0.1 + 0.2 }} {{ 7 // -2 }} {{ -7 % 3 }}"),
            "None True 1.0 1e+20 0.30000000000000004 -4 2");
  EXPECT_EQ(render("{{ [1, 'a', none] }} {{ {'k': 'v'} }}"), "[1, 'a', None] {'k': 'v'}");
  EXPECT_EQ(render("{{ 'héllo'[1] }}{{ 'héllo'[-1] }}{{ 'héllo'[1:3] }}{{ 'héllo' | length }}"), "éoél5");
  EXPECT_EQ(render("{{ '\u3000 x \u00a0'.strip() }}|{{ ' a  b '.split() }}|{{ 'a,b,,c'.split(',') }}"),
            "x|['a', 'b']|['a', 'b', '', 'c']");
  EXPECT_EQ(render("{{ {'b': 1, 'a': [true, none, 1.5, 'é\"']} | tojson }}"), R"({"b": 1, "a": [true, null, 1.5, "é\""]})");
  EXPECT_EQ(render("{{ '' or 'x' }}{{ 0 and 1 }}{{ 1 < 2 < 3 }}{{ 'b' in 'abc' }}{{ 2 not in [1] }}"), "x0TrueTrueTrue");
  Dict ctx;
  Dict msg;
  msg.set("role", Value("user"));
  ctx.set("m", Value(msg));
  EXPECT_EQ(render("{{ m.missing }}|{{ m.missing is defined }}|{{ m['role'] }}|{{ m.get('x', 'd') }}", ctx),
            "|False|user|d");
}

TEST(Jinja, GenerationSpans) {
  auto r = Template::parse("a{% generation %}bc{% endgeneration %}d{% generation %}{% endgeneration %}").render({});
  EXPECT_EQ(r.text, "abcd");
  ASSERT_EQ(r.generation_spans.size(), 2u);
  EXPECT_EQ(r.generation_spans[0], std::make_pair(size_t{1}, size_t{3}));
  EXPECT_EQ(r.generation_spans[1], std::make_pair(size_t{4}, size_t{4}));
}

TEST(Jinja, UnsupportedAndRuntimeErrorsAreOneLineAndNameTheLine) {
  EXPECT_NE(error_of("\n{% macro m() %}{% endmacro %}").find("t:2: unsupported template tag"), std::string::npos);
  EXPECT_NE(error_of("{{ x | wordcount }}").find("unsupported filter 'wordcount'"), std::string::npos);
  EXPECT_NE(error_of("{{ x is prime }}").find("unsupported test 'prime'"), std::string::npos);
  EXPECT_NE(error_of("{{ 'a'.zfill(3) }}").find("str.zfill is not supported"), std::string::npos);
  EXPECT_NE(error_of("{{ raise_exception('Only user and assistant roles') }}").find("Only user and assistant roles"),
            std::string::npos);
  EXPECT_NE(error_of("{{ x.y }}").find("'x' is undefined"), std::string::npos);
  EXPECT_NE(error_of("{{ 'a' + 1 }}").find("unsupported operand"), std::string::npos);
  EXPECT_NE(error_of("{{ [1].append(2) }}").find("sandbox"), std::string::npos);
  EXPECT_NE(error_of("{% if x %}").find("missing '{% endif %}'"), std::string::npos);
  EXPECT_NE(error_of("{{ 'é'.upper() }}").find("non-ASCII"), std::string::npos);
  for (const auto& src : {"{% macro m() %}{% endmacro %}", "{{ 'a' + 1 }}"}) {
    const std::string e = error_of(src);
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
}

TEST(Jinja, SandboxLimits) {
  RenderLimits lim;
  lim.max_output_bytes = 1000;
  EXPECT_NE(error_of("{% for i in range(2000) %}x{% endfor %}", {}, lim).find("exceeds 1000 bytes"), std::string::npos);
  EXPECT_NE(error_of("{{ range(100001) | length }}").find("100000"), std::string::npos);
  lim = {};
  lim.max_loop_iterations = 10;
  EXPECT_NE(error_of("{% for i in range(5) %}{% for j in range(5) %}{% endfor %}{% endfor %}", {}, lim)
                .find("too many loop iterations"), std::string::npos);
  std::string deep;
  for (int i = 0; i < 300; ++i) deep += "(";
  deep += "1";
  for (int i = 0; i < 300; ++i) deep += ")";
  EXPECT_NE(error_of("{{ " + deep + " }}").find("nested too deeply"), std::string::npos);
}

TEST(ChatTemplate, AssistantSpansOnChatML) {
  const std::string chatml =
      "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  ChatTemplate t(chatml, {{"eos_token", "<|im_end|>"}});
  List msgs;
  for (auto [role, content] : {std::pair{"user", "Hi"}, {"assistant", "Hello"}, {"user", "x"}, {"assistant", ""}}) {
    Dict d;
    d.set("role", Value(role));
    d.set("content", Value(content));
    msgs.emplace_back(std::move(d));
  }
  const std::string text = t.render(msgs, false).text;
  const auto spans = t.assistant_spans(msgs);
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(text.substr(spans[0].begin, spans[0].content_end - spans[0].begin), "Hello");
  EXPECT_EQ(text.substr(spans[0].content_end, 10), "<|im_end|>");
  EXPECT_EQ(spans[1].begin, spans[1].content_end);  // empty reply: only the end-of-turn token will be a target
  // Not prefix-stable (the generation prompt differs from what the turn renders): a clear error.
  ChatTemplate bad("{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}"
                   "<assistant>{% endif %}", {});
  try {
    bad.assistant_spans(msgs);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not prefix-stable"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace sft::jinja
