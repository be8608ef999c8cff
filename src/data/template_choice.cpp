#include "data/template_choice.h"

#include "template/chat_template.h"

namespace sft::data {

ResolvedTemplate resolve_template(const std::string& name, const std::filesystem::path& model_dir,
                                  const std::string& auto_fallback) {
  ResolvedTemplate r;
  if (name == "model") {
    r.chat_template = std::make_shared<const jinja::ChatTemplate>(jinja::ChatTemplate::load_required(model_dir));
  } else if (name == "auto") {
    if (auto t = jinja::ChatTemplate::load(model_dir)) r.chat_template = std::make_shared<const jinja::ChatTemplate>(std::move(*t));
  } else {
    r.name = name;
    return r;
  }
  r.fell_back = r.chat_template == nullptr;
  r.name = r.fell_back ? auto_fallback : "model";
  return r;
}

}  // namespace sft::data
