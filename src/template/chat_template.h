// A model folder's own chat template (tokenizer_config.json "chat_template" or chat_template.jinja), rendered as
// transformers' tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...) renders it, and
// the assistant spans that training masks are computed from. Nothing from the folder is executed beyond the
// sandboxed template (template/jinja.h).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "template/jinja.h"

namespace sft::jinja {

// nlohmann::json-free conversion of one JSON text (an object/array/...) to a Value; throws sft::Error naming
// `origin` on malformed JSON.
Value value_from_json_text(const std::string& json_text, const std::string& origin);

class ChatTemplate {
 public:
  // Which template a folder provides, in transformers' order: chat_template.jinja, else tokenizer_config.json's
  // "chat_template" (a string, or a list of {"name", "template"} of which "default" is used). nullopt when the folder
  // has none. Special tokens (bos/eos/unk/sep/pad/cls/mask, string or AddedToken dict) come from tokenizer_config.json.
  static std::optional<ChatTemplate> load(const std::filesystem::path& model_dir);
  // As load(), but a folder without a template is an error that says so.
  static ChatTemplate load_required(const std::filesystem::path& model_dir);
  // For tests and tools: a template text plus the special-token variables it sees.
  ChatTemplate(const std::string& source, std::vector<std::pair<std::string, std::string>> special_tokens,
               std::string origin = "chat_template");

  // messages: a list of message dicts ({"role", "content", ...}). Keys whose value is null are dropped and
  // reasoning fields aliased (reasoning_content / thinking / reasoning) exactly as transformers does first.
  RenderResult render(const List& messages, bool add_generation_prompt, const Dict& extra = {}) const;

  // Byte spans of the rendered conversation (render(messages, false).text) that an assistant-only loss trains on.
  // Rule (docs/arch/template.md):
  //  - templates with {% generation %} blocks: exactly those blocks (transformers' return_assistant_tokens_mask);
  //  - otherwise, for each assistant message i: begin = length of render(messages[:i], add_generation_prompt=True)
  //    (everything the model generates after the generation prompt; that rendering must be a prefix of the full
  //    one), end = the end of message i's content in the full rendering (found by rendering again with a marker
  //    appended to that content). The end-of-turn token that follows is added by the caller (data layer), which
  //    knows the tokenizer's special tokens.
  // Throws sft::Error naming the message when the template is not prefix-stable at an assistant turn.
  struct AssistantSpan {
    size_t message_index = 0;
    size_t begin = 0, content_end = 0;
    bool from_generation_block = false;
  };
  std::vector<AssistantSpan> assistant_spans(const List& messages) const;

  // Bounds every render (output, value memory, loop iterations, nesting); the defaults suit real conversations.
  void set_limits(const RenderLimits& limits) { limits_ = limits; }

  const std::string& source() const { return source_; }
  const std::string& origin() const { return origin_; }  // "<dir>/tokenizer_config.json" or ".../chat_template.jinja"
  const std::string* special_token(const std::string& name) const;  // e.g. "eos_token"

 private:
  std::string source_, origin_;
  std::vector<std::pair<std::string, std::string>> specials_;
  std::shared_ptr<Template> tmpl_;
  RenderLimits limits_;
};

}  // namespace sft::jinja
