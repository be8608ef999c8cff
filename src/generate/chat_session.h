// A multi-turn chat over one Generator: the transcript (chatml turns, or alpaca exchanges concatenated), the
// end-of-turn policy, and /reset. The KV cache is reused across turns (the Generator keeps the longest common
// prefix), so each turn only computes its new tokens. `sft chat` only reads lines and prints what this returns.
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

// The chat template for `sft chat` when none is given: chatml when the vocabulary has <|im_start|>, else alpaca.
data::Template default_chat_template(const tok::Tokenizer& tok);

class ChatSession {
 public:
  // tmpl: ChatML or Alpaca (throws otherwise). opts.eos_ids is replaced by stop_token_ids(gc, tok, tmpl), without
  // <|im_end|> for alpaca.
  ChatSession(Generator& gen, const tok::Tokenizer& tok, const GenerationConfig& gc, GenerateOptions opts,
              data::Template tmpl, std::string system_prompt);

  // One user turn: builds the prompt from the history, generates (streaming through on_text), records the reply.
  GenerateResult send(const std::string& user_text, const std::function<void(const std::string&)>& on_text = {});
  void reset();  // forget the history and the cache
  data::Template template_kind() const { return opts_tmpl_.tmpl; }
  const GenerateOptions& options() const { return opts_; }

 private:
  Generator& gen_;
  const tok::Tokenizer& tok_;
  GenerateOptions opts_;
  data::TemplateOptions opts_tmpl_;
  std::vector<data::Message> history_;  // chatml
  std::string alpaca_history_;          // alpaca has no turn markers: earlier prompt + response + "\n\n"
};

}  // namespace sft::gen
