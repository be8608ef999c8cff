#include "template/chat_template.h"

#include "io/gguf.h"
#include "io/gguf_tokenizer.h"

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/input_file.h"
#include "util/utf8.h"

namespace sft::jinja {
namespace {

namespace fs = std::filesystem;

// ordered_json: Python dicts (and so tojson and items()) keep the file's key order.
Value from_json(const nlohmann::ordered_json& j, int depth = 0) {
  SFT_CHECK(depth < 200, "chat JSON nested deeper than 200 levels");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value(None{});
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned: {
      // Past int64 the template's integers cannot hold it (Python would: a big integer); never wrap it.
      const auto u = j.get<uint64_t>();
      SFT_CHECK(u <= static_cast<uint64_t>(INT64_MAX), "chat JSON integer ", u, " does not fit in 64 bits");
      return Value(static_cast<int64_t>(u));
    }
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List l;
      for (const auto& x : j) l.push_back(from_json(x, depth + 1));
      return Value(std::move(l));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      for (auto it = j.begin(); it != j.end(); ++it) d.items.emplace_back(it.key(), from_json(it.value(), depth + 1));
      return Value(std::move(d));
    }
    default: throw Error("unsupported JSON value in chat data");
  }
}

// transformers' _normalize_chat_messages + _alias_reasoning_fields.
List normalize_messages(const List& messages) {
  List out;
  for (size_t i = 0; i < messages.size(); ++i) {
    SFT_CHECK(messages[i].is_dict(), "chat message ", i, " is not an object");
    Dict m;
    for (const auto& [k, v] : messages[i].as_dict().items)
      if (!v.is_none()) m.items.emplace_back(k, v);
    const Value* reasoning = nullptr;
    for (const char* key : {"reasoning_content", "thinking", "reasoning"})
      if (!reasoning) reasoning = m.find(key);
    if (reasoning) {
      const Value r = *reasoning;
      Dict aliased;
      aliased.items.emplace_back("thinking", r);
      for (const auto& kv : m.items) aliased.set(kv.first, kv.second);
      aliased.set("reasoning_content", r);
      m = std::move(aliased);
    }
    out.emplace_back(std::move(m));
  }
  return out;
}

// Length of the common prefix of a and b.
size_t common_prefix(const std::string& a, const std::string& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

Value value_from_json_text(const std::string& json_text, const std::string& origin) {
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(json_text);
  } catch (const std::exception& e) {
    throw Error(origin + ": malformed JSON (" + e.what() + ")");
  }
  return from_json(j);
}

ChatTemplate::ChatTemplate(const std::string& source, std::vector<std::pair<std::string, std::string>> special_tokens,
                           std::string origin)
    : source_(source), origin_(std::move(origin)), specials_(std::move(special_tokens)),
      tmpl_(std::make_shared<Template>(Template::parse(source, origin_))) {}

std::optional<ChatTemplate> ChatTemplate::load(const fs::path& dir) {
  if (io::is_gguf_file(dir)) {  // tokenizer.chat_template, with the special tokens of the GGUF's vocabulary
    io::HfTokenizerFiles files = io::hf_tokenizer_files(io::GgufFile(dir));
    if (files.chat_template.empty()) return std::nullopt;
    // The same rules as chat_template.jinja (util/input_file.h): UTF-8 and bounded, as transformers requires.
    SFT_CHECK(utf8::is_valid(files.chat_template), dir.string(), ": tokenizer.chat_template is not valid UTF-8");
    SFT_CHECK(files.chat_template.size() <= input::chat_template.max_bytes, dir.string(), ": tokenizer.chat_template holds ",
              files.chat_template.size(), " bytes, more than the ", input::chat_template.max_bytes, " a chat template may have");
    return ChatTemplate(files.chat_template, std::move(files.special_tokens), dir.string() + " (tokenizer.chat_template)");
  }
  std::vector<std::pair<std::string, std::string>> specials;
  std::optional<std::string> source;
  std::string origin;
  const fs::path cfg_path = dir / "tokenizer_config.json";
  if (input_present(cfg_path)) {
    nlohmann::json cfg;
    try {
      cfg = nlohmann::json::parse(read_input_file(cfg_path, input::json_file));
    } catch (const nlohmann::json::exception& e) {
      throw Error(cfg_path.string() + ": malformed JSON (" + e.what() + ")");
    }
    for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
      if (!cfg.contains(key)) continue;
      const auto& v = cfg[key];
      if (v.is_string()) specials.emplace_back(key, v.get<std::string>());
      else if (v.is_object() && v.contains("content") && v["content"].is_string())
        specials.emplace_back(key, v["content"].get<std::string>());
    }
    if (cfg.contains("chat_template")) {
      const auto& t = cfg["chat_template"];
      origin = cfg_path.string();
      if (t.is_string()) {
        source = t.get<std::string>();
      } else if (t.is_array()) {
        std::string names;
        for (const auto& entry : t) {
          SFT_CHECK(entry.is_object() && entry.contains("name") && entry.contains("template") &&
                        entry["name"].is_string() && entry["template"].is_string(),
                    cfg_path.string(), ": chat_template list entries must be {\"name\", \"template\"} strings");
          names += (names.empty() ? "" : ", ") + entry["name"].get<std::string>();
          if (entry["name"] == "default") source = entry["template"].get<std::string>();
        }
        SFT_CHECK(source.has_value(), cfg_path.string(), ": chat_template has named templates (", names,
                  ") but no \"default\" one");
        origin += " (default)";
      } else if (!t.is_null()) {
        throw Error(cfg_path.string() + ": chat_template must be a string or a list of named templates");
      }
    }
  }
  const fs::path jinja_path = dir / "chat_template.jinja";
  if (input_present(jinja_path)) {  // transformers >= 4.52 saves it separately; it wins over tokenizer_config.json
    source = read_input_file(jinja_path, input::chat_template);  // regular file, bounded, UTF-8 (as transformers)
    origin = jinja_path.string();
  }
  if (!source) return std::nullopt;
  SFT_CHECK(source->size() <= input::chat_template.max_bytes, origin, ": the chat template is ", source->size(),
            " bytes, larger than the ", input::chat_template.max_bytes, " sft accepts for a chat template");
  return ChatTemplate(*source, std::move(specials), origin);
}

ChatTemplate ChatTemplate::load_required(const fs::path& dir) {
  auto t = load(dir);
  SFT_CHECK(t.has_value(), dir.string(), " has no chat template (neither chat_template.jinja nor a \"chat_template\" in "
            "tokenizer_config.json); use --template chatml|alpaca|plain instead of model");
  return std::move(*t);
}

const std::string* ChatTemplate::special_token(const std::string& name) const {
  for (const auto& [k, v] : specials_)
    if (k == name) return &v;
  return nullptr;
}

RenderResult ChatTemplate::render(const List& messages, bool add_generation_prompt, const Dict& extra) const {
  Dict ctx;
  for (const auto& [k, v] : specials_) ctx.set(k, Value(v));
  for (const auto& [k, v] : extra.items) ctx.set(k, v);  // kwargs overwrite special tokens (as in transformers)
  ctx.set("messages", Value(normalize_messages(messages)));
  ctx.set("tools", Value(None{}));
  ctx.set("documents", Value(None{}));
  ctx.set("add_generation_prompt", Value(add_generation_prompt));
  return tmpl_->render(ctx, limits_);
}

std::vector<ChatTemplate::AssistantSpan> ChatTemplate::assistant_spans(const List& messages) const {
  std::vector<AssistantSpan> spans;
  const RenderResult full = render(messages, false);
  if (tmpl_->uses_generation_blocks()) {
    for (const auto& [b, e] : full.generation_spans) {
      AssistantSpan s;
      s.begin = b;
      s.content_end = e;
      s.from_generation_block = true;
      spans.push_back(s);
    }
    return spans;
  }
  static const std::string kMarker = "\xEE\x80\x80sft\xEE\x80\x81";  // U+E000 "sft" U+E001: never in real text
  for (size_t i = 0; i < messages.size(); ++i) {
    const Value& m = messages[i];
    if (!m.is_dict()) continue;
    const Value* role = m.as_dict().find("role");
    if (!role || !role->is_string() || role->as_string() != "assistant") continue;
    const Value* content = m.as_dict().find("content");
    SFT_CHECK(content && content->is_string(), "message ", i, ": assistant content must be a string for masking");
    const List prefix(messages.begin(), messages.begin() + static_cast<std::ptrdiff_t>(i));
    const std::string prompt = render(prefix, true).text;
    SFT_CHECK(full.text.compare(0, prompt.size(), prompt) == 0 && prompt.size() <= full.text.size(),
              "message ", i, ": the chat template is not prefix-stable (rendering the conversation up to this "
              "assistant turn with add_generation_prompt=True is not a prefix of the whole conversation), so the "
              "assistant tokens cannot be located; use a template with {% generation %} blocks or --template chatml");
    List marked = messages;
    Dict md = m.as_dict();
    md.set("content", Value(content->as_string() + kMarker));
    marked[i] = Value(std::move(md));
    const std::string with_marker = render(marked, false).text;
    const size_t end = common_prefix(full.text, with_marker);
    // The renderings agree up to the end of the content as the template writes it (a template that trims the
    // content, as Llama 3's does, drops trailing whitespace before the marker but not before its own text).
    SFT_CHECK(with_marker.find(kMarker, end) != std::string::npos && end >= prompt.size(),
              "message ", i, ": could not locate the end of the assistant content in the rendered template");
    AssistantSpan s;
    s.message_index = i;
    s.begin = prompt.size();
    s.content_end = end;
    spans.push_back(s);
  }
  return spans;
}

}  // namespace sft::jinja
