// --template model: the model folder's Jinja chat template, rendered as transformers renders it, encoded as one text
// (apply_chat_template(tokenize=True) semantics), with assistant-only targets located on the rendered text.
#include "data/template.h"
#include "template/chat_template.h"
#include "util/error.h"

namespace sft::data {
namespace {

jinja::List to_values(const std::vector<Message>& msgs) {
  jinja::List out;
  for (const Message& m : msgs) {
    jinja::Dict d;
    d.set("role", jinja::Value(m.role));
    d.set("content", jinja::Value(m.content));
    out.emplace_back(std::move(d));
  }
  return out;
}

const jinja::ChatTemplate& require_template(const TemplateOptions& opts) {
  SFT_CHECK(opts.chat_template != nullptr, "--template model needs the model folder's chat template (none loaded)");
  return *opts.chat_template;
}

}  // namespace

std::vector<Message> row_messages(const Example& ex, const TemplateOptions& opts) {
  std::vector<Message> msgs;
  const bool has_system = ex.is_chat() && !ex.messages.empty() && ex.messages.front().role == "system";
  if (!has_system && !opts.system_prompt.empty()) msgs.push_back({"system", opts.system_prompt});
  if (ex.is_chat()) {
    msgs.insert(msgs.end(), ex.messages.begin(), ex.messages.end());
  } else {
    msgs.push_back({"user", ex.instruction + (ex.input.empty() ? "" : "\n\n" + ex.input)});
    msgs.push_back({"assistant", ex.output});
  }
  return msgs;
}

std::string model_inference_prompt(const std::vector<Message>& messages, const TemplateOptions& opts) {
  std::vector<Message> msgs;
  const bool has_system = !messages.empty() && messages.front().role == "system";
  if (!has_system && !opts.system_prompt.empty()) msgs.push_back({"system", opts.system_prompt});
  msgs.insert(msgs.end(), messages.begin(), messages.end());
  return require_template(opts).render(to_values(msgs), true).text;
}

std::optional<int32_t> model_end_of_turn(const TemplateOptions& opts, const TextEncoder& enc) {
  Example probe;
  probe.messages = {{"user", "Hi"}, {"assistant", "Hello"}};
  probe.origin = "end-of-turn probe";
  TemplateOptions o = opts;
  o.train_on_inputs = false;
  const Sample s = tokenize_with_model_template(probe, o, enc);
  for (size_t k = s.ids.size(); k-- > 0;)
    if (s.labels[k] != kIgnoreIndex) return enc.is_special(s.ids[k]) ? std::optional<int32_t>(s.ids[k]) : std::nullopt;
  return std::nullopt;
}

Sample tokenize_with_model_template(const Example& ex, const TemplateOptions& opts, const TextEncoder& enc) {
  const jinja::ChatTemplate& tmpl = require_template(opts);
  const jinja::List messages = to_values(row_messages(ex, opts));
  std::string text;
  std::vector<jinja::ChatTemplate::AssistantSpan> spans;
  try {
    text = tmpl.render(messages, false).text;
    // Every token trains with train_on_inputs: no spans needed (nor their prefix-stability requirement).
    if (!opts.train_on_inputs) spans = tmpl.assistant_spans(messages);
  } catch (const Error& e) {
    throw Error(ex.origin + ": " + e.what());
  }
  Sample s;
  s.ids = enc.encode(text);
  SFT_CHECK(!s.ids.empty(), ex.origin, ": the example tokenized to nothing");

  // Byte offsets of every token in the text the tokenizer saw. With a normalizer that changes bytes (NFC on
  // non-composed input) the decoded tokens do not spell the rendered text; then every span boundary is mapped into
  // the normalized text by encoding the prefix up to it (the prefix's decoded length).
  std::vector<size_t> off(s.ids.size() + 1, 0);
  std::string decoded;
  for (size_t k = 0; k < s.ids.size(); ++k) {
    decoded += enc.token_bytes(s.ids[k]);
    off[k + 1] = decoded.size();
  }
  auto map_pos = [&](size_t pos) -> size_t {
    if (decoded == text) return pos;
    size_t n = 0;
    for (int32_t id : enc.encode(std::string_view(text).substr(0, pos))) n += enc.token_bytes(id).size();
    return n;
  };
  std::vector<char> target(s.ids.size(), 0);
  for (const auto& span : spans) {
    const size_t b = map_pos(span.begin), e = map_pos(span.content_end);
    for (size_t k = 0; k < s.ids.size(); ++k) {
      if (off[k + 1] > b && off[k] < e) target[k] = 1;
      // The end-of-turn token: a special token starting exactly where the content ends.
      if (!span.from_generation_block && off[k] == e && off[k + 1] > off[k] && enc.is_special(s.ids[k])) target[k] = 1;
    }
  }
  s.labels.resize(s.ids.size());
  for (size_t k = 0; k < s.ids.size(); ++k)
    s.labels[k] = target[k] || opts.train_on_inputs ? s.ids[k] : kIgnoreIndex;
  s.labels[0] = kIgnoreIndex;
  for (int32_t l : s.labels) s.targets += l != kIgnoreIndex;
  SFT_CHECK(s.targets > 0, ex.origin, ": the example has no target tokens (no assistant turn in the rendered template)");
  return s;
}

}  // namespace sft::data
