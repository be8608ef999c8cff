// A multi-turn chat over one Generator: the transcript (chatml turns, the model folder's own Jinja template re-rendered
// over the whole history, or alpaca exchanges concatenated), the end-of-turn policy, and /reset. The KV cache is
// reused across turns (the Generator keeps the longest common prefix), so each turn only computes its new tokens.
// `sft chat` only reads lines and prints what this returns.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "data/template.h"
#include "generate/generator.h"
#include "tokenizer/tokenizer.h"

namespace sft::gen {

// Token ids generation stops on: generation_config.json's eos ids, the tokenizer's eos, and <|im_end|> when the
// transcript is chatml (Qwen Instruct's end of turn).
std::vector<int32_t> stop_token_ids(const GenerationConfig& gc, const tok::Tokenizer& tok, data::Template tmpl);

// With the model folder's template (Template::Model) its end-of-turn token (<|im_end|>, <|eot_id|>, ...: the special
// token that follows an assistant reply) ends generation too: appended to ids when missing. Other templates: no-op.
void add_end_of_turn(std::vector<int32_t>& ids, const tok::Tokenizer& tok, const data::TemplateOptions& templ);

// The chat template for `sft chat` when none is given: chatml when the vocabulary has <|im_start|>, else alpaca.
data::Template default_chat_template(const tok::Tokenizer& tok);

class ChatSession {
 public:
  // templ.tmpl: ChatML, Alpaca or Model (with templ.chat_template: the folder's template, as apply_chat_template(
  // messages, add_generation_prompt=True) renders the history each turn, encoded without added specials). Throws for
  // Plain. opts.eos_ids is replaced: stop_token_ids(gc, tok, ChatML) for chatml and model templates (plus the model
  // template's end of turn), stop_token_ids(gc, tok, Alpaca) without <|im_end|> for alpaca.
  ChatSession(Generator& gen, const tok::Tokenizer& tok, const GenerationConfig& gc, GenerateOptions opts,
              data::TemplateOptions templ);
  ChatSession(Generator& gen, const tok::Tokenizer& tok, const GenerationConfig& gc, GenerateOptions opts,
              data::Template tmpl, std::string system_prompt);

  // One user turn: builds the prompt from the history, generates (streaming through on_text), records the reply.
  GenerateResult send(const std::string& user_text, const std::function<void(const std::string&)>& on_text = {});
  void reset();  // forget the history and the cache
  data::Template template_kind() const { return templ_.tmpl; }
  const GenerateOptions& options() const { return opts_; }

 private:
  Generator& gen_;
  const tok::Tokenizer& tok_;
  GenerateOptions opts_;
  data::TemplateOptions templ_;
  std::vector<data::Message> history_;  // chatml / model
  std::string alpaca_history_;          // alpaca has no turn markers: earlier prompt + response + "\n\n"
};

}  // namespace sft::gen
