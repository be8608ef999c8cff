// Templates and masks. Prompt and target pieces are encoded separately and their ids concatenated, so label
// alignment is exact by construction (template.h explains why full-text encoding is wrong).
#include "data/template.h"

#include "util/error.h"

namespace sft::data {
namespace {

constexpr const char* kAlpacaWithInput =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:";
constexpr const char* kAlpacaNoInput =
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:";
constexpr const char* kImStart = "<|im_start|>";
constexpr const char* kImEnd = "<|im_end|>";

// Single-pass substitution (a "{input}" inside the instruction text must stay literal).
std::string fill(const std::string& tmpl, const std::string& instruction, const std::string& input) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    if (tmpl.compare(i, 13, "{instruction}") == 0) {
      out += instruction;
      i += 13;
    } else if (tmpl.compare(i, 7, "{input}") == 0) {
      out += input;
      i += 7;
    } else {
      out += tmpl[i++];
    }
  }
  return out;
}

std::string alpaca_prompt(const std::string& instruction, const std::string& input) {
  return input.empty() ? fill(kAlpacaNoInput, instruction, input) : fill(kAlpacaWithInput, instruction, input);
}

std::string plain_prompt(const std::string& instruction, const std::string& input) {
  return instruction + (input.empty() ? "" : "\n" + input) + "\n";
}

// Instruction rows as ChatML turns: one user turn (instruction, "\n\n" + input) and one assistant turn.
std::vector<Message> as_messages(const Example& ex) {
  if (ex.is_chat()) return ex.messages;
  std::string user = ex.instruction + (ex.input.empty() ? "" : "\n\n" + ex.input);
  return {{"user", user}, {"assistant", ex.output}};
}

void add_text(std::vector<Segment>& segs, std::string text, bool target) {
  if (text.empty()) return;
  segs.push_back({std::move(text), target, false, false});
}
void add_special(std::vector<Segment>& segs, const char* tok, bool target) { segs.push_back({tok, target, true, false}); }

// ChatML turns; the system message (row's own, else opts.system_prompt, else none) comes first.
// add_generation_prompt ends with "<|im_start|>assistant\n" for inference.
std::vector<Segment> chatml_segments(const std::vector<Message>& msgs, const TemplateOptions& opts,
                                     bool add_generation_prompt) {
  std::vector<Segment> segs;
  bool has_system = !msgs.empty() && msgs.front().role == "system";
  if (!has_system && !opts.system_prompt.empty()) {
    add_special(segs, kImStart, false);
    add_text(segs, "system\n" + opts.system_prompt, false);
    add_special(segs, kImEnd, false);
    add_text(segs, "\n", false);
  }
  for (const Message& m : msgs) {
    add_special(segs, kImStart, false);
    if (m.role == "assistant") {
      add_text(segs, "assistant\n", false);
      add_text(segs, m.content, true);  // the reply and its <|im_end|> are the targets
      add_special(segs, kImEnd, true);
      add_text(segs, "\n", false);
    } else {
      add_text(segs, m.role + "\n" + m.content, false);
      add_special(segs, kImEnd, false);
      add_text(segs, "\n", false);
    }
  }
  if (add_generation_prompt) {
    add_special(segs, kImStart, false);
    add_text(segs, "assistant\n", false);
  }
  return segs;
}

}  // namespace

Template parse_template(std::string_view name) {
  if (name == "alpaca") return Template::Alpaca;
  if (name == "chatml") return Template::ChatML;
  if (name == "plain") return Template::Plain;
  if (name == "model") return Template::Model;
  throw Error("unknown template \"" + std::string(name) + "\" (expected alpaca, chatml, plain, model or auto)");
}

const char* template_name(Template t) {
  switch (t) {
    case Template::Alpaca: return "alpaca";
    case Template::ChatML: return "chatml";
    case Template::Plain: return "plain";
    case Template::Model: return "model";
  }
  return "?";
}

std::vector<Segment> render(const Example& ex, const TemplateOptions& opts) {
  SFT_CHECK(opts.tmpl != Template::Model, "internal: the model template is rendered by model_template.cpp");
  if (opts.tmpl == Template::ChatML) return chatml_segments(as_messages(ex), opts, false);
  SFT_CHECK(!ex.is_chat(), ex.origin, ": a chat row (\"messages\") needs --template chatml, not ",
            template_name(opts.tmpl));
  std::vector<Segment> segs;
  add_text(segs, opts.tmpl == Template::Alpaca ? alpaca_prompt(ex.instruction, ex.input)
                                               : plain_prompt(ex.instruction, ex.input),
           false);
  segs.push_back({ex.output, true, false, true});  // kept even when empty: the EOS is still a target
  return segs;
}

std::string render_text(const std::vector<Segment>& segs) {
  std::string out;
  for (const Segment& s : segs) out += s.text;
  return out;
}

std::string inference_prompt(const std::string& instruction, const std::string& input, const TemplateOptions& opts) {
  switch (opts.tmpl) {
    case Template::Alpaca: return alpaca_prompt(instruction, input);
    case Template::Plain: return plain_prompt(instruction, input);
    case Template::ChatML: {
      std::string user = instruction + (input.empty() ? "" : "\n\n" + input);
      return render_text(chatml_segments({{"user", user}}, opts, true));
    }
    case Template::Model: {
      std::string user = instruction + (input.empty() ? "" : "\n\n" + input);
      return model_inference_prompt({{"user", user}}, opts);
    }
  }
  return "";
}

std::string inference_chat_prompt(const std::vector<Message>& messages, const TemplateOptions& opts) {
  if (opts.tmpl == Template::Model) return model_inference_prompt(messages, opts);
  SFT_CHECK(opts.tmpl == Template::ChatML, "chat prompts need the chatml or model template, not ",
            template_name(opts.tmpl));
  return render_text(chatml_segments(messages, opts, true));
}

std::string TextEncoder::token_bytes(int32_t) const {
  throw Error("this encoder cannot give token bytes (needed by --template model)");
}
bool TextEncoder::is_special(int32_t) const { return false; }
std::optional<std::string> TextEncoder::eos_token() const {
  auto eos = eos_id();
  return eos ? std::optional<std::string>(token_bytes(*eos)) : std::nullopt;
}

namespace {

// Ids of rendered pieces with their target flags; the BOS (masked) first when the tokenizer's post-processor adds one.
std::vector<int32_t> encode_segments(const std::vector<Segment>& segs, const TemplateOptions& opts,
                                     const TextEncoder& enc, const std::string& origin, std::vector<char>& target) {
  std::vector<int32_t> ids;
  auto push = [&](int32_t id, bool t) {
    ids.push_back(id);
    target.push_back(t);
  };
  if (auto bos = enc.bos_id()) push(*bos, false);
  for (const Segment& seg : segs) {
    if (seg.special) {
      auto id = enc.token_to_id(seg.text);
      SFT_CHECK(id.has_value(), origin, ": the ", template_name(opts.tmpl), " template needs the token ", seg.text,
                " but the tokenizer has no such token");
      push(*id, seg.target);
    } else {
      for (int32_t id : enc.encode(seg.text)) push(id, seg.target);
    }
    if (seg.append_eos) {
      auto eos = enc.eos_id();
      SFT_CHECK(eos.has_value(), origin, ": the tokenizer has no eos_token (tokenizer_config.json) to end targets");
      push(*eos, seg.target);
    }
  }
  return ids;
}

}  // namespace

std::vector<int32_t> chatml_ids(const std::vector<Message>& msgs, const TemplateOptions& opts, const TextEncoder& enc,
                                bool add_generation_prompt, const std::string& origin, std::vector<char>* target) {
  std::vector<char> flags;
  std::vector<int32_t> ids = encode_segments(chatml_segments(msgs, opts, add_generation_prompt), opts, enc, origin, flags);
  if (target) *target = std::move(flags);
  return ids;
}

Sample tokenize_example(const Example& ex, const TemplateOptions& opts, const TextEncoder& enc) {
  switch (ex.format) {
    case RowFormat::Text: return tokenize_text_row(ex, opts, enc);
    case RowFormat::PromptCompletion: return tokenize_prompt_completion(ex, opts, enc);
    case RowFormat::ConversationalPromptCompletion: return tokenize_conversational_prompt_completion(ex, opts, enc);
    case RowFormat::Instruction:
    case RowFormat::Conversational: break;
  }
  // Every token trains: train_on_inputs, or a conversational row with assistant_only_loss explicitly false (TRL).
  const bool all_tokens = opts.train_on_inputs || (ex.is_chat() && opts.assistant_only_loss == false);
  if (opts.tmpl == Template::Model) {
    if (all_tokens == opts.train_on_inputs) return tokenize_with_model_template(ex, opts, enc);
    TemplateOptions o = opts;
    o.train_on_inputs = all_tokens;
    return tokenize_with_model_template(ex, o, enc);
  }
  std::vector<char> target;
  Sample s;
  s.ids = encode_segments(render(ex, opts), opts, enc, ex.origin, target);
  SFT_CHECK(!s.ids.empty(), ex.origin, ": the example tokenized to nothing");
  s.labels.resize(s.ids.size());
  for (size_t k = 0; k < s.ids.size(); ++k) s.labels[k] = target[k] || all_tokens ? s.ids[k] : kIgnoreIndex;
  s.labels[0] = kIgnoreIndex;  // nothing precedes the first token, so it is never a target
  for (int32_t l : s.labels) s.targets += l != kIgnoreIndex;
  SFT_CHECK(s.targets > 0, ex.origin, ": the example has no target tokens");
  return s;
}

}  // namespace sft::data
