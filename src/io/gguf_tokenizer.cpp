// tokenizer.json <-> GGUF tokenizer metadata. The export side follows llama.cpp's converter (get_vocab_base,
// SpecialVocab: token list padded to the model's vocab_size, control / user-defined types, merges as "a b", special
// ids from tokenizer_config.json then config.json); the import side rebuilds what transformers' GGUF loader builds
// (byte-level BPE with the split regex of tokenizer.ggml.pre) in tokenizer.json form, so the tokenizer layer reads
// a GGUF's vocabulary through the same code as a folder's.
#include "io/gguf_tokenizer.h"

#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file_util.h"
#include "util/utf8.h"

namespace sft::io {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// The split regexes of Qwen2's and Llama 3's tokenizer.json (Split, behavior Isolated, then ByteLevel without regex).
constexpr const char* kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum TokenType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// How each supported tokenizer.ggml.pre pre-tokenizes (llama-vocab.cpp groups names into these kinds).
enum class PreKind { Qwen2, Llama3, Llama3KeepMerges, Digits, Gpt2 };
struct PreName {
  const char* name;
  PreKind kind;
  bool clean_spaces;  // llama.cpp's clean_spaces (transformers' clean_up_tokenization_spaces)
};
constexpr PreName kPreNames[] = {
    {"qwen2", PreKind::Qwen2, false},        {"deepseek-r1-qwen", PreKind::Qwen2, false},
    {"llama-bpe", PreKind::Llama3, true},    {"llama3", PreKind::Llama3, true},
    {"llama-v3", PreKind::Llama3, true},     {"smaug-bpe", PreKind::Llama3KeepMerges, true},
    {"dbrx", PreKind::Llama3KeepMerges, true}, {"smollm", PreKind::Digits, false},
    {"starcoder", PreKind::Digits, true},    {"gpt-2", PreKind::Gpt2, true},
};

const PreName* find_pre(const std::string& name) {
  for (const auto& p : kPreNames)
    if (name == p.name) return &p;
  return nullptr;
}

std::string supported_pre_names() {
  std::string s;
  for (const auto& p : kPreNames) s += (s.empty() ? "" : ", ") + std::string(p.name);
  return s;
}

// The code points GPT-2's bytes_to_unicode maps bytes to: printable Latin-1 maps to itself, the other 68 bytes to
// U+0100..U+0143. A token spelled only in these is a byte-level vocabulary entry.
bool is_byte_level_char(uint32_t c) {
  return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255) || (c >= 256 && c < 256 + 68);
}

bool is_byte_level_spelling(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = 0;
    const uint32_t c = utf8::decode_lenient(s, i, len);
    if (!is_byte_level_char(c)) return false;
    i += len;
  }
  return !s.empty();
}

// The converter's does_token_look_special.
bool looks_special(const std::string& t) {
  auto starts = [&](const std::string& p) { return t.compare(0, p.size(), p) == 0; };
  auto ends = [&](const std::string& p) { return t.size() >= p.size() && t.compare(t.size() - p.size(), p.size(), p) == 0; };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || (starts("<|") && ends("|>")) ||
         (starts("<\xEF\xBD\x9C") && ends("\xEF\xBD\x9C>")) || (starts("<unused") && ends(">"));
}

json parse_json_file(const fs::path& p) {
  json j = json::parse(read_file(p), nullptr, /*allow_exceptions=*/false);
  SFT_CHECK(!j.is_discarded() && j.is_object(), p.string(), ": not a valid JSON object");
  return j;
}

// tokenizer_config.json token fields: a string or an AddedToken-like {"content": ...}.
std::optional<std::string> config_token(const json& cfg, const std::string& key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

// The pre-tokenizer steps of a tokenizer.json (a Sequence flattened).
std::vector<json> pre_steps(const json& pre) {
  if (pre.is_null()) return {};
  if (pre.value("type", "") == "Sequence" && pre.contains("pretokenizers") && pre["pretokenizers"].is_array())
    return {pre["pretokenizers"].begin(), pre["pretokenizers"].end()};
  return {pre};
}

std::string merge_part(const std::string& s) {  // spaces inside a merge part are written as U+0120 (the converter)
  std::string out;
  for (char c : s) out += c == ' ' ? std::string("\xC4\xA0") : std::string(1, c);
  return out;
}

// post_processor: does encode(add_special_tokens=True) put a special token first / last?
void special_ends(const json& pp, bool& leading, bool& trailing) {
  if (!pp.is_object()) return;
  const std::string type = pp.value("type", "");
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    for (const auto& p : pp["processors"]) special_ends(p, leading, trailing);
  } else if (type == "TemplateProcessing" && pp.contains("single") && pp["single"].is_array() &&
             !pp["single"].empty()) {
    leading = leading || pp["single"].front().contains("SpecialToken");
    trailing = trailing || pp["single"].back().contains("SpecialToken");
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    leading = trailing = true;
  }
}

// tokenizer.ggml.add_sep_token as llama.cpp's converter (gguf-py SpecialVocab) derives it: RobertaProcessing adds a
// separator; a TemplateProcessing whose pair template, without the single template's leading/trailing special tokens,
// reads "A <x> [<y>] B" adds one when <x> (only without a trailing special) or <y> is the sep or eos token of
// tokenizer_config.json (plain strings, as the converter compares them). nullopt: the converter writes no key.
std::optional<bool> pair_separator(const json& pp, const json& cfg) {
  if (!pp.is_object()) return std::nullopt;
  const std::string type = pp.value("type", "");
  if (type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    std::optional<bool> sep;
    for (const auto& p : pp["processors"])
      if (auto s = pair_separator(p, cfg)) sep = s;
    return sep;
  }
  if (type == "RobertaProcessing") return true;
  if (type != "TemplateProcessing") return std::nullopt;
  auto raw = [&](const char* key) { return cfg.contains(key) && cfg[key].is_string() ? cfg[key].get<std::string>() : ""; };
  auto special_id = [](const json& piece) -> std::string {
    if (!piece.is_object() || !piece.contains("SpecialToken") || !piece["SpecialToken"].is_object()) return "";
    const json& st = piece["SpecialToken"];
    return st.contains("id") && st["id"].is_string() ? st["id"].get<std::string>() : "";
  };
  auto sequence_id = [](const json& piece) -> std::string {
    if (!piece.is_object() || !piece.contains("Sequence") || !piece["Sequence"].is_object()) return "";
    const json& sq = piece["Sequence"];
    return sq.contains("id") && sq["id"].is_string() ? sq["id"].get<std::string>() : "";
  };
  const json single = pp.contains("single") && pp["single"].is_array() ? pp["single"] : json::array();
  const json pair = pp.contains("pair") && pp["pair"].is_array() ? pp["pair"] : json::array();
  std::string first, last, eos = raw("eos_token");
  const std::string sep = raw("sep_token");
  if (eos.empty()) eos = sep;
  if (single.size() > 1) {
    first = special_id(single.front());
    last = special_id(single.back());
    if (!last.empty()) eos = last;  // the converter makes a differing trailing special the eos
  }
  if (pair.empty()) return std::nullopt;
  size_t begin = !first.empty() && special_id(pair.front()) == first ? 1 : 0;
  size_t end = !last.empty() && special_id(pair.back()) == last ? pair.size() - 1 : pair.size();
  if (begin >= end) return std::nullopt;
  if (sequence_id(pair[begin]) != "A" || sequence_id(pair[end - 1]) != "B" || end - begin < 3) return std::nullopt;
  const auto is_sep = [&](const std::string& id) { return !id.empty() && (id == sep || id == eos); };
  bool add = is_sep(special_id(pair[begin + 1])) && last.empty();
  if (end - begin - 2 == 2 && is_sep(special_id(pair[begin + 2]))) add = true;
  return add;
}

}  // namespace

std::string gguf_pre_tokenizer_name(const std::string& tokenizer_json, bool clean_up, const std::string& where) {
  json j = json::parse(tokenizer_json, nullptr, false);
  SFT_CHECK(!j.is_discarded() && j.is_object(), where, ": not a valid JSON object");
  const std::vector<json> steps = pre_steps(j.value("pre_tokenizer", json()));
  auto is = [](const json& s, const char* type) { return s.is_object() && s.value("type", "") == type; };
  auto byte_level_regex = [&](const json& s) { return is(s, "ByteLevel") && s.value("use_regex", true); };
  const json model = j.value("model", json::object());
  if (steps.size() == 2 && is(steps[0], "Split") && is(steps[1], "ByteLevel") && !byte_level_regex(steps[1]) &&
      steps[0].value("behavior", "") == "Isolated" && !steps[0].value("invert", false) &&
      steps[0].contains("pattern") && steps[0]["pattern"].is_object() && steps[0]["pattern"].contains("Regex") &&
      steps[0]["pattern"]["Regex"].is_string()) {
    const std::string re = steps[0]["pattern"]["Regex"].get<std::string>();
    if (re == kQwen2Split) return "qwen2";
    if (re == kLlama3Split) return model.is_object() && model.value("ignore_merges", false) ? "llama-bpe" : "smaug-bpe";
  }
  if (steps.size() == 2 && is(steps[0], "Digits") && steps[0].value("individual_digits", false) &&
      byte_level_regex(steps[1]))
    return clean_up ? "starcoder" : "smollm";
  if (steps.size() == 1 && byte_level_regex(steps[0])) return "gpt-2";
  throw Error(where + ": its pre_tokenizer " + j.value("pre_tokenizer", json()).dump().substr(0, 200) +
              " matches none of the pre-tokenizers llama.cpp knows for these model families (qwen2, llama-bpe, "
              "smollm, gpt-2), so tokenizer.ggml.pre cannot be set");
}

std::vector<std::pair<std::string, GgufValue>> gguf_tokenizer_metadata(const fs::path& dir, int64_t vocab_size,
                                                                       const ConfigTokenIds& config_ids) {
  const fs::path tj_path = dir / "tokenizer.json", cfg_path = dir / "tokenizer_config.json";
  SFT_CHECK(fs::exists(tj_path), tj_path.string(), ": not found (GGUF export needs the model's tokenizer.json)");
  const std::string tj_text = read_file(tj_path);
  json tj = json::parse(tj_text, nullptr, false);
  SFT_CHECK(!tj.is_discarded() && tj.is_object(), tj_path.string(), ": not a valid JSON object");
  const json cfg = fs::exists(cfg_path) ? parse_json_file(cfg_path) : json::object();
  const json& model = tj.contains("model") ? tj["model"] : json();
  SFT_CHECK(model.is_object() && model.value("type", "") == "BPE" && model.contains("vocab") &&
                model["vocab"].is_object() && model.contains("merges") && model["merges"].is_array(),
            tj_path.string(), ": GGUF export needs a byte-level BPE model with vocab and merges (model.type BPE)");
  const bool clean_up = cfg.value("clean_up_tokenization_spaces", false) == true;
  const std::string pre = gguf_pre_tokenizer_name(tj_text, clean_up, tj_path.string());

  // tokens and types, one per id of the model's embedding (the converter's get_vocab_base)
  std::vector<std::string> tokens(static_cast<size_t>(vocab_size));
  std::vector<int32_t> types(static_cast<size_t>(vocab_size), kUnused);
  std::vector<bool> set(static_cast<size_t>(vocab_size), false);
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    SFT_CHECK(it.value().is_number_integer(), tj_path.string(), ": vocab entry \"", it.key(), "\" has no integer id");
    const int64_t id = it.value().get<int64_t>();
    SFT_CHECK(id >= 0 && id < vocab_size, tj_path.string(), ": token \"", it.key(), "\" has id ", id,
              ", outside the model's vocab_size ", vocab_size);
    tokens[id] = it.key();
    types[id] = kNormal;
    set[id] = true;
  }
  std::map<std::string, int64_t> added_ids;  // first id of each added token's content (SpecialVocab's lookup)
  for (const auto& a : tj.value("added_tokens", json::array())) {
    SFT_CHECK(a.is_object() && a.contains("id") && a["id"].is_number_integer() && a.contains("content") &&
                  a["content"].is_string(),
              tj_path.string(), ": added_tokens entries need an integer id and a string content");
    const int64_t id = a["id"].get<int64_t>();
    const std::string content = a["content"].get<std::string>();
    SFT_CHECK(id >= 0 && id < vocab_size, tj_path.string(), ": added token \"", content, "\" has id ", id,
              ", outside the model's vocab_size ", vocab_size);
    tokens[id] = content;
    types[id] = a.value("special", false) || looks_special(content) ? kControl : kUserDefined;
    set[id] = true;
    added_ids.emplace(content, id);
  }
  for (int64_t id = 0; id < vocab_size; ++id)
    if (!set[id]) tokens[id] = "[PAD" + std::to_string(id) + "]";

  std::vector<std::string> merges;
  merges.reserve(model["merges"].size());
  for (const auto& m : model["merges"]) {
    if (m.is_string()) {
      merges.push_back(m.get<std::string>());
    } else {
      SFT_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), tj_path.string(),
                ": merges must be \"a b\" strings or [a, b] pairs");
      merges.push_back(merge_part(m[0].get<std::string>()) + " " + merge_part(m[1].get<std::string>()));
    }
  }

  std::vector<std::pair<std::string, GgufValue>> md;
  md.emplace_back("tokenizer.ggml.model", GgufValue::str("gpt2"));
  md.emplace_back("tokenizer.ggml.pre", GgufValue::str(pre));
  md.emplace_back("tokenizer.ggml.tokens", GgufValue::strings(std::move(tokens)));
  md.emplace_back("tokenizer.ggml.token_type", GgufValue::i32s(types));
  md.emplace_back("tokenizer.ggml.merges", GgufValue::strings(std::move(merges)));

  // special ids: tokenizer_config.json's token (an added token's id), else config.json's id
  auto special = [&](const char* typ, const char* gguf_key, std::optional<int64_t> fallback) {
    std::optional<int64_t> id;
    if (auto t = config_token(cfg, std::string(typ) + "_token")) {
      if (auto it = added_ids.find(*t); it != added_ids.end()) id = it->second;
    }
    if (!id) id = fallback;
    if (id && *id >= 0 && *id < vocab_size) md.emplace_back(gguf_key, GgufValue::u32(static_cast<uint32_t>(*id)));
  };
  special("bos", "tokenizer.ggml.bos_token_id", config_ids.bos);
  special("eos", "tokenizer.ggml.eos_token_id", config_ids.eos);
  special("unk", "tokenizer.ggml.unknown_token_id", std::nullopt);
  special("pad", "tokenizer.ggml.padding_token_id", config_ids.pad);
  bool leading = false, trailing = false;
  special_ends(tj.value("post_processor", json()), leading, trailing);
  md.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(leading));
  md.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::boolean(trailing));
  if (auto sep = pair_separator(tj.value("post_processor", json()), cfg))
    md.emplace_back("tokenizer.ggml.add_sep_token", GgufValue::boolean(*sep));

  // chat template, in transformers' order: chat_template.jinja, else tokenizer_config.json (a string, or the
  // "default" entry of a list of named templates)
  std::optional<std::string> tmpl;
  if (fs::exists(dir / "chat_template.jinja")) {
    tmpl = read_file(dir / "chat_template.jinja");
  } else if (cfg.contains("chat_template")) {
    const json& t = cfg["chat_template"];
    if (t.is_string()) tmpl = t.get<std::string>();
    else if (t.is_array())
      for (const auto& e : t)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
          tmpl = e["template"].get<std::string>();
  }
  if (tmpl) md.emplace_back("tokenizer.chat_template", GgufValue::str(*tmpl));
  return md;
}

namespace {

json pre_tokenizer_json(PreKind kind) {
  auto split = [](const char* re) {
    return json{{"type", "Split"}, {"pattern", {{"Regex", re}}}, {"behavior", "Isolated"}, {"invert", false}};
  };
  const json byte_level_plain = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
                                 {"use_regex", false}};
  const json byte_level_regex = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                                 {"use_regex", true}};
  switch (kind) {
    case PreKind::Qwen2:
      return {{"type", "Sequence"}, {"pretokenizers", json::array({split(kQwen2Split), byte_level_plain})}};
    case PreKind::Llama3:
    case PreKind::Llama3KeepMerges:
      return {{"type", "Sequence"}, {"pretokenizers", json::array({split(kLlama3Split), byte_level_plain})}};
    case PreKind::Digits:
      return {{"type", "Sequence"},
              {"pretokenizers",
               json::array({json{{"type", "Digits"}, {"individual_digits", true}}, byte_level_regex})}};
    case PreKind::Gpt2: return byte_level_regex;
  }
  return json();
}

// tokenizer.ggml.model and .pre: a byte-level BPE vocabulary whose pre-tokenization this file can rebuild.
const PreName& gguf_pre(const GgufFile& f) {
  const std::string& file = f.name();
  const std::string model = f.get_string("tokenizer.ggml.model");
  SFT_CHECK(model == "gpt2", file, ": tokenizer.ggml.model is \"", model,
            "\"; sft reads byte-level BPE vocabularies (gpt2) only");
  SFT_CHECK(f.find("tokenizer.ggml.pre"), file, ": tokenizer.ggml.pre is missing: how the vocabulary was "
            "pre-tokenized is unknown (supported: ", supported_pre_names(), ")");
  const std::string pre_name = f.get_string("tokenizer.ggml.pre");
  const PreName* pre = find_pre(pre_name);
  SFT_CHECK(pre, file, ": tokenizer.ggml.pre \"", pre_name, "\" is not supported (supported: ", supported_pre_names(),
            ")");
  return *pre;
}

// tokenizer.json's model.vocab (the tokens spelled in the byte-level alphabet) and added_tokens (control,
// user-defined and unknown tokens; the control and user-defined ones may be spelled in any UTF-8, since the
// tokenizer matches them before BPE). Unused entries (the converter's padding to vocab_size) appear in neither.
struct HfVocab {
  json vocab = json::object(), added = json::array();
};

HfVocab hf_vocab(const std::string& file, const GgufValue& tokens, const GgufValue& types) {
  HfVocab v;
  for (size_t id = 0; id < tokens.strs.size(); ++id) {
    const std::string& t = tokens.strs[id];
    const int64_t type = types.int_at(id);
    SFT_CHECK(type >= kNormal && type <= kByte, file, ": tokenizer.ggml.token_type[", id, "] is ", type,
              " (expected 1..6)");
    if (type == kUnused) continue;
    SFT_CHECK(!t.empty() && utf8::is_valid(t), file, ": tokenizer.ggml.tokens[", id,
              "] is empty or not valid UTF-8");
    if (is_byte_level_spelling(t)) {
      SFT_CHECK(!v.vocab.contains(t), file, ": tokenizer.ggml.tokens holds \"", t, "\" twice (ids ",
                v.vocab.contains(t) ? v.vocab[t].get<int64_t>() : 0, " and ", id, ")");
      v.vocab[t] = id;
    } else {
      SFT_CHECK(type == kControl || type == kUserDefined, file, ": tokenizer.ggml.tokens[", id, "] \"", t,
                "\" is not spelled in the byte-level alphabet of a gpt2 vocabulary");
    }
    if (type == kControl || type == kUserDefined || type == kUnknown)
      v.added.push_back({{"id", id}, {"content", t}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                         {"normalized", false}, {"special", type != kUserDefined}});
  }
  return v;
}

// tokenizer.ggml.merges ("a b": two tokens, one space) as tokenizer.json's [a, b] pairs.
json hf_merge_pairs(const std::string& file, const GgufValue& merges) {
  json pairs = json::array();
  for (size_t k = 0; k < merges.strs.size(); ++k) {
    const std::string& m = merges.strs[k];
    const size_t sp = m.find(' ');
    SFT_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < m.size() && m.find(' ', sp + 1) == std::string::npos &&
                  utf8::is_valid(m),
              file, ": tokenizer.ggml.merges[", k, "] is not \"a b\" (two tokens and one space)");
    pairs.push_back(json::array({m.substr(0, sp), m.substr(sp + 1)}));
  }
  return pairs;
}

// tokenizer_config.json's bos/eos/unk/pad tokens: the text of the token each tokenizer.ggml.*_token_id names (null
// without the key). The ones present are also listed in `specials`. An id must name a used token.
json special_token_config(const GgufFile& f, const GgufValue& tokens, const GgufValue& types,
                          std::vector<std::pair<std::string, std::string>>& specials) {
  const std::string& file = f.name();
  const size_t n = tokens.strs.size();
  auto token_of = [&](const char* key) -> std::optional<std::string> {
    const GgufValue* v = f.find(key);
    if (!v) return std::nullopt;
    const int64_t id = f.get_int(key);
    SFT_CHECK(id >= 0 && static_cast<size_t>(id) < n, file, ": ", key, " ", id, " is not a token id (", n,
              " tokens)");
    SFT_CHECK(types.int_at(static_cast<size_t>(id)) != kUnused, file, ": ", key, " ", id, " names an unused token");
    return tokens.strs[static_cast<size_t>(id)];
  };
  json cfg = json::object();
  const std::pair<const char*, const char*> special_keys[] = {{"bos_token", "tokenizer.ggml.bos_token_id"},
                                                              {"eos_token", "tokenizer.ggml.eos_token_id"},
                                                              {"unk_token", "tokenizer.ggml.unknown_token_id"},
                                                              {"pad_token", "tokenizer.ggml.padding_token_id"}};
  for (const auto& [name, key] : special_keys) {
    auto t = token_of(key);
    cfg[name] = t ? json(*t) : json(nullptr);
    if (t) specials.emplace_back(name, *t);
  }
  return cfg;
}

// The post-processor transformers' GGUF loader sets up: a TemplateProcessing that puts BOS before / EOS after each
// sequence ("A", and "A" "B" for pairs) when add_bos_token / add_eos_token ask for it and the config has that token,
// else a plain ByteLevel (which adds nothing).
json post_processor_json(bool add_bos, bool add_eos, const json& cfg, const HfVocab& v) {
  const json& bos = cfg.at("bos_token");
  const json& eos = cfg.at("eos_token");
  if (!(add_bos && bos.is_string()) && !(add_eos && eos.is_string()))
    return {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  json single = json::array(), pair = json::array(), specials = json::object();
  auto add_special = [&](const std::string& tok, json& seq, int type_id) {
    seq.push_back({{"SpecialToken", {{"id", tok}, {"type_id", type_id}}}});
    specials[tok] = {{"id", tok}, {"ids", {v.vocab.contains(tok) ? v.vocab.at(tok) : json(nullptr)}}, {"tokens", {tok}}};
  };
  for (int s = 0; s < 2; ++s) {
    json& seq = s == 0 ? single : pair;
    for (int part = 0; part < (s == 0 ? 1 : 2); ++part) {
      if (add_bos && bos.is_string()) add_special(bos.get<std::string>(), seq, part);
      seq.push_back({{"Sequence", {{"id", part == 0 ? "A" : "B"}, {"type_id", part}}}});
      if (add_eos && eos.is_string()) add_special(eos.get<std::string>(), seq, part);
    }
  }
  for (auto& [tok, spec] : specials.items()) {  // ids of added tokens outside the byte-level vocab
    if (!spec["ids"][0].is_null()) continue;
    for (const auto& a : v.added)
      if (a["content"] == tok) spec["ids"][0] = a["id"];
  }
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", specials}};
}

// The whole tokenizer.json: NFC normalization for the Qwen2 pre-tokenizer names, byte-level decoding, and
// ignore_merges for the Llama 3 names (llama-bpe, llama3, llama-v3: Llama 3's own tokenizer.json sets it; the
// smaug-bpe / dbrx split keeps merges, see gguf_pre_tokenizer_name).
json hf_tokenizer_json(const PreName& pre, const HfVocab& v, const json& merge_pairs, const json& post) {
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", v.added},
          {"normalizer", pre.kind == PreKind::Qwen2 ? json{{"type", "NFC"}} : json(nullptr)},
          {"pre_tokenizer", pre_tokenizer_json(pre.kind)},
          {"post_processor", post},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
          {"model",
           {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
            {"ignore_merges", pre.kind == PreKind::Llama3}, {"vocab", v.vocab}, {"merges", merge_pairs}}}};
}

}  // namespace

HfTokenizerFiles hf_tokenizer_files(const GgufFile& f) {
  const std::string& file = f.name();
  const PreName& pre = gguf_pre(f);
  const GgufValue& tokens = f.get_array("tokenizer.ggml.tokens", GgufType::STRING);
  const GgufValue& types = f.get_array("tokenizer.ggml.token_type", GgufType::INT32);
  const GgufValue& merges = f.get_array("tokenizer.ggml.merges", GgufType::STRING);
  const size_t n = tokens.strs.size();
  SFT_CHECK(n > 0 && types.count == n, file, ": tokenizer.ggml.token_type has ", types.count, " entries for ", n,
            " tokens");
  const HfVocab vocab = hf_vocab(file, tokens, types);
  const json merge_pairs = hf_merge_pairs(file, merges);

  HfTokenizerFiles out;
  json cfg = special_token_config(f, tokens, types, out.special_tokens);
  const bool add_bos = f.get_bool("tokenizer.ggml.add_bos_token", pre.kind == PreKind::Llama3);
  const bool add_eos = f.get_bool("tokenizer.ggml.add_eos_token", false);
  const json post = post_processor_json(add_bos, add_eos, cfg, vocab);
  out.tokenizer_json = hf_tokenizer_json(pre, vocab, merge_pairs, post).dump();
  cfg["add_bos_token"] = add_bos;
  cfg["add_eos_token"] = add_eos;
  cfg["clean_up_tokenization_spaces"] = pre.clean_spaces;
  cfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  if (const GgufValue* t = f.find("tokenizer.chat_template")) {
    SFT_CHECK(t->type == GgufType::STRING && utf8::is_valid(t->s), file,
              ": tokenizer.chat_template must be a UTF-8 string");
    out.chat_template = t->s;
    cfg["chat_template"] = t->s;
  }
  out.tokenizer_config_json = cfg.dump(2) + "\n";
  return out;
}

}  // namespace sft::io
