#include "generate/chat_session.h"

#include <algorithm>

#include "util/error.h"

namespace sft::gen {

namespace {

void add_unique(std::vector<int32_t>& ids, int32_t id) {
  if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
}

}  // namespace

std::vector<int32_t> stop_token_ids(const GenerationConfig& gc, const tok::Tokenizer& tok, data::Template tmpl) {
  std::vector<int32_t> ids = gc.eos_token_ids;
  if (auto e = tok.eos_id()) add_unique(ids, *e);
  if (tmpl == data::Template::ChatML)
    if (auto e = tok.token_to_id("<|im_end|>")) add_unique(ids, *e);
  return ids;
}

void add_end_of_turn(std::vector<int32_t>& ids, const tok::Tokenizer& tok, const data::TemplateOptions& templ) {
  if (templ.tmpl != data::Template::Model) return;
  const data::TokenizerEncoder enc(tok);
  if (auto e = data::model_end_of_turn(templ, enc)) add_unique(ids, *e);
}

data::Template default_chat_template(const tok::Tokenizer& tok) {
  return tok.token_to_id("<|im_start|>") ? data::Template::ChatML : data::Template::Alpaca;
}

ChatSession::ChatSession(Generator& gen, const tok::Tokenizer& tok, const GenerationConfig& gc, GenerateOptions opts,
                         data::TemplateOptions templ)
    : gen_(gen), tok_(tok), opts_(std::move(opts)), templ_(std::move(templ)) {
  const data::Template t = templ_.tmpl;
  SFT_CHECK(t == data::Template::ChatML || t == data::Template::Alpaca || t == data::Template::Model,
            "sft chat supports --template model, auto, chatml or alpaca, got '", data::template_name(t), "'");
  // A model template's transcript is turn-based like chatml: the same eos ids, plus the template's own end of turn.
  opts_.eos_ids = stop_token_ids(gc, tok, t == data::Template::Alpaca ? data::Template::Alpaca : data::Template::ChatML);
  if (t == data::Template::Alpaca)  // not an end marker in an alpaca transcript, even where generation_config
    if (auto e = tok.token_to_id("<|im_end|>")) std::erase(opts_.eos_ids, *e);  // lists it (Qwen Instruct)
  add_end_of_turn(opts_.eos_ids, tok, templ_);
}

ChatSession::ChatSession(Generator& gen, const tok::Tokenizer& tok, const GenerationConfig& gc, GenerateOptions opts,
                         data::Template tmpl, std::string system_prompt)
    : ChatSession(gen, tok, gc, std::move(opts), [&] {
        data::TemplateOptions t;
        t.tmpl = tmpl;
        t.system_prompt = std::move(system_prompt);
        return t;
      }()) {}

GenerateResult ChatSession::send(const std::string& user_text, const std::function<void(const std::string&)>& on_text) {
  const bool turns = templ_.tmpl != data::Template::Alpaca;
  std::string text;
  if (turns) {
    history_.push_back({"user", user_text});
    text = data::inference_chat_prompt(history_, templ_);
  } else {
    text = alpaca_history_ + data::inference_prompt(user_text, "", templ_);
  }
  // As HF tokenizer(text): BOS where the post-processor adds one; a chat template writes its own BOS
  // (apply_chat_template encodes with add_special_tokens=False).
  const auto ids = tok_.encode(text, templ_.tmpl != data::Template::Model);
  GenerateResult r = gen_.generate(ids, opts_, on_text);
  if (turns) history_.push_back({"assistant", r.text});
  else alpaca_history_ = text + r.text + "\n\n";
  return r;
}

void ChatSession::reset() {
  history_.clear();
  alpaca_history_.clear();
  gen_.reset();
}

}  // namespace sft::gen
