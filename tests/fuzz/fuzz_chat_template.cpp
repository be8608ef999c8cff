// Chat template engine (src/template): a random template rendered against random messages, as `sft tokenize --chat`,
// `--template model` training (assistant spans) and `sft generate --template model` do.
// Input: "<template>\n----\n<messages JSON>" (no separator: the whole input is the template and a fixed conversation
// is used; messages that are not a JSON list of objects become the contents of a fixed conversation).
// Properties: only sft::Error escapes; every recursion and the memory of values are bounded (libFuzzer's -rss_limit_mb
// and -timeout catch what is not); generation spans lie inside the rendered text.
#include "fuzz_util.h"
#include "template/chat_template.h"
#include "util/utf8.h"

namespace {

using sft::jinja::Dict;
using sft::jinja::List;
using sft::jinja::Value;

List fixed_conversation(const std::string& content) {
  List messages;
  for (const char* role : {"system", "user", "assistant", "user", "assistant"}) {
    Dict m;
    m.set("role", Value(role));
    m.set("content", Value(content));
    messages.emplace_back(std::move(m));
  }
  return messages;
}

List messages_from(std::string_view text) {
  if (text.empty()) return fixed_conversation("Hello, how are you?");
  try {
    const Value v = sft::jinja::value_from_json_text(std::string(text), "messages");
    if (v.is_list()) {
      bool all_dicts = true;
      for (const auto& m : v.as_list()) all_dicts = all_dicts && m.is_dict();
      if (all_dicts) return v.as_list();
    }
  } catch (const sft::Error&) {
  }
  // Message text reaches the engine as UTF-8 (the dataset readers validate it).
  return fixed_conversation(sft::utf8::repair_lossy(text));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto parts = sft::fuzz::split2(in);  // not a structured binding: clang 14 cannot capture one in a lambda
  const std::string_view source = parts.first, rest = parts.second;
  // Small limits keep one input fast and its memory well under -rss_limit_mb; the bounds are the same code at any size.
  sft::jinja::RenderLimits limits;
  limits.max_output_bytes = 256 << 10;
  limits.max_value_bytes = 1 << 20;
  limits.max_loop_iterations = 100'000;
  limits.max_seconds = 2;  // libFuzzer's -timeout would report anything much slower as a hang
  sft::fuzz::expect_clean([&] {
    sft::jinja::ChatTemplate tmpl(std::string(source), {{"bos_token", "<s>"}, {"eos_token", "</s>"}}, "fuzz.jinja");
    tmpl.set_limits(limits);
    const List messages = messages_from(rest);
    for (bool gen : {false, true}) {
      const auto r = tmpl.render(messages, gen);
      for (const auto& [b, e] : r.generation_spans)
        if (b > e || e > r.text.size()) std::abort();  // spans lie inside the text
    }
    tmpl.assistant_spans(messages);
  });
  return 0;
}
