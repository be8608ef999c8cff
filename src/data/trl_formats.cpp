// TRL's dataset formats tokenised as trl 1.16's SFTTrainer._prepare_dataset does (language modelling,
// prompt-completion, conversational prompt-completion); conversational "messages" rows go through the templates
// (template.cpp, model_template.cpp). template.h states the rules; docs/arch/data.md shows an example of each.
#include "data/template.h"
#include "util/error.h"

namespace sft::data {
namespace {

std::string eos_text(const TextEncoder& enc, const Example& ex) {
  auto eos = enc.eos_token();
  SFT_CHECK(eos.has_value() && !eos->empty(), ex.origin, ": the tokenizer has no eos_token (tokenizer_config.json); ",
            row_format_name(ex.format), " rows end with it, as TRL's SFTTrainer appends it");
  return *eos;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// tokenizer(text) with add_special_tokens=True: the BOS the post-processor adds, then the text.
std::vector<int32_t> encode_with_bos(const TextEncoder& enc, const std::string& text) {
  std::vector<int32_t> ids;
  if (auto bos = enc.bos_id()) ids.push_back(*bos);
  const std::vector<int32_t> body = enc.encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

// Labels = ids from position `first_target` on (the rest masked), position 0 never a target; counts the targets.
Sample finish(std::vector<int32_t> ids, size_t first_target, const Example& ex) {
  Sample s;
  s.ids = std::move(ids);
  SFT_CHECK(!s.ids.empty(), ex.origin, ": the example tokenized to nothing");
  s.labels.assign(s.ids.size(), kIgnoreIndex);
  for (size_t k = std::max<size_t>(first_target, 1); k < s.ids.size(); ++k) s.labels[k] = s.ids[k];
  for (int32_t l : s.labels) s.targets += l != kIgnoreIndex;
  SFT_CHECK(s.targets > 0, ex.origin, ": the example has no target tokens");
  return s;
}

}  // namespace

size_t common_prefix_length(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

Sample tokenize_text_row(const Example& ex, const TemplateOptions& opts, const TextEncoder& enc) {
  const std::string eos = eos_text(enc, ex);
  // TRL appends the eos token as text and encodes the whole; a text that already ends with it keeps it once.
  return finish(encode_with_bos(enc, ends_with(ex.text, eos) ? ex.text : ex.text + eos), 0, ex);
}

Sample tokenize_prompt_completion(const Example& ex, const TemplateOptions& opts, const TextEncoder& enc) {
  const std::string eos = eos_text(enc, ex);
  const std::string completion = ends_with(ex.completion, eos) ? ex.completion : ex.completion + eos;
  std::vector<int32_t> ids = encode_with_bos(enc, ex.prompt + completion);
  // The completion starts where the prompt's own ids and the whole text's ids part: a token merged across the
  // boundary (":The") is the completion's first token, as in TRL.
  const size_t prompt_len = common_prefix_length(encode_with_bos(enc, ex.prompt), ids);
  const bool mask_prompt = opts.completion_only_loss && !opts.train_on_inputs;
  return finish(std::move(ids), mask_prompt ? prompt_len : 0, ex);
}

Sample tokenize_conversational_prompt_completion(const Example& ex, const TemplateOptions& opts,
                                                 const TextEncoder& enc) {
  SFT_CHECK(opts.tmpl == Template::ChatML || opts.tmpl == Template::Model, ex.origin,
            ": a conversational prompt-completion row needs --template chatml or model, not ", template_name(opts.tmpl));
  // The whole conversation, tokenised as a conversational row: ids, and the assistant mask when it applies.
  const bool assistant_only = opts.assistant_only_loss.value_or(false) && !opts.train_on_inputs;
  Example conv;
  conv.format = RowFormat::Conversational;
  conv.origin = ex.origin;
  conv.messages = ex.prompt_messages;
  conv.messages.insert(conv.messages.end(), ex.completion_messages.begin(), ex.completion_messages.end());
  TemplateOptions o = opts;
  o.train_on_inputs = !assistant_only;
  o.assistant_only_loss = assistant_only;
  Sample s = tokenize_example(conv, o, enc);
  // The prompt alone, rendered with the generation prompt (apply_chat_template(prompt, add_generation_prompt=True)).
  const std::vector<int32_t> prompt_ids =
      opts.tmpl == Template::Model ? enc.encode(model_inference_prompt(ex.prompt_messages, opts))
                                   : chatml_ids(ex.prompt_messages, opts, enc, /*add_generation_prompt=*/true, ex.origin);
  if (opts.completion_only_loss && !opts.train_on_inputs) {
    const size_t prompt_len = common_prefix_length(prompt_ids, s.ids);
    for (size_t k = 0; k < prompt_len && k < s.labels.size(); ++k) s.labels[k] = kIgnoreIndex;
  }
  s.labels[0] = kIgnoreIndex;
  s.targets = 0;
  for (int32_t l : s.labels) s.targets += l != kIgnoreIndex;
  SFT_CHECK(s.targets > 0, ex.origin, ": the example has no target tokens in its completion");
  return s;
}

}  // namespace sft::data
