#include "generate/chat_session.h"

#include <algorithm>

#include "util/error.h"

namespace sft::gen {

std::vector<int32_t> stop_token_ids(const GenerationConfig& gc, const tok::Tokenizer& tok, data::Template tmpl) {
  std::vector<int32_t> ids = gc.eos_token_ids;
  auto add = [&](int32_t id) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  if (auto e = tok.eos_id()) add(*e);
  if (tmpl == data::Template::ChatML)
    if (auto e = tok.token_to_id("<|im_end|>")) add(*e);
  return ids;
}

data::Template default_chat_template(const tok::Tokenizer& tok) {
  return tok.token_to_id("<|im_start|>") ? data::Template::ChatML : data::Template::Alpaca;
}

ChatSession::ChatSession(Generator& gen, const tok::Tokenizer& tok, const GenerationConfig& gc, GenerateOptions opts,
                         data::Template tmpl, std::string system_prompt)
    : gen_(gen), tok_(tok), opts_(std::move(opts)) {
  SFT_CHECK(tmpl == data::Template::ChatML || tmpl == data::Template::Alpaca,
            "sft chat supports --template chatml or alpaca, got '", data::template_name(tmpl), "'");
  opts_.eos_ids = stop_token_ids(gc, tok, tmpl);
  if (tmpl == data::Template::Alpaca)  // not an end marker in an alpaca transcript, even where generation_config
    if (auto e = tok.token_to_id("<|im_end|>")) std::erase(opts_.eos_ids, *e);  // lists it (Qwen Instruct)
  opts_tmpl_.tmpl = tmpl;
  opts_tmpl_.system_prompt = std::move(system_prompt);
}

GenerateResult ChatSession::send(const std::string& user_text, const std::function<void(const std::string&)>& on_text) {
  std::string text;
  if (opts_tmpl_.tmpl == data::Template::ChatML) {
    history_.push_back({"user", user_text});
    text = data::inference_chat_prompt(history_, opts_tmpl_);
  } else {
    text = alpaca_history_ + data::inference_prompt(user_text, "", opts_tmpl_);
  }
  const auto ids = tok_.encode(text, true);  // as HF tokenizer(text): BOS where the post-processor adds one
  GenerateResult r = gen_.generate(ids, opts_, on_text);
  if (opts_tmpl_.tmpl == data::Template::ChatML) history_.push_back({"assistant", r.text});
  else alpaca_history_ = text + r.text + "\n\n";
  return r;
}

void ChatSession::reset() {
  history_.clear();
  alpaca_history_.clear();
  gen_.reset();
}

}  // namespace sft::gen
