// --template as `sft train`, `sft generate` and `sft chat` take it, resolved against a model folder — the one place
// that decides what "model" and "auto" mean:
//   "model"  the folder's own Jinja chat template (tokenizer_config.json or chat_template.jinja); an error naming the
//            folder when it has none;
//   "auto"   the folder's chat template when it has one, else the caller's fallback (train: alpaca; generate: none,
//            the prompt as is; chat: "" = the default for the vocabulary);
//   other    returned as given (each command checks its own list of names).
#pragma once
#include <filesystem>
#include <memory>
#include <string>

namespace sft::jinja {
class ChatTemplate;
}

namespace sft::data {

struct ResolvedTemplate {
  std::string name;  // "model" when the folder's chat template is used; otherwise the name asked for (auto: fallback)
  std::shared_ptr<const jinja::ChatTemplate> chat_template;  // set iff name == "model"
  bool fell_back = false;                                    // "auto" on a folder without a chat template
};

ResolvedTemplate resolve_template(const std::string& name, const std::filesystem::path& model_dir,
                                  const std::string& auto_fallback);

}  // namespace sft::data
