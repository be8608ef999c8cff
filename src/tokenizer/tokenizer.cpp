// Tokenizer pipeline, in HF tokenizers' order: repair invalid UTF-8 -> split out raw-text added tokens -> normalize
// each remaining segment -> split out normalized added tokens -> pre-tokenize -> BPE per word -> post-process.
#include "tokenizer/tokenizer.h"

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/normalizer.h"
#include "util/json_number.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/file_util.h"
#include "util/input_file.h"

namespace sft::tok {

using nlohmann::json;

struct Tokenizer::Impl {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  std::optional<BpeModel> model;
  AddedTokenMatcher raw_added;         // normalized=false: matched before normalization
  AddedTokenMatcher normalized_added;  // normalized=true: matched in normalized segments
  VocabMap added_by_content;
  std::vector<int8_t> special_flag;      // by id: 1 = added token with special=true
  std::vector<std::string> id_to_piece;  // by id: stored piece (added tokens override the model's)
  std::vector<std::string> id_bytes;     // by id: what the decoder turns the piece into
  bool byte_level_decoder = false;
  std::vector<int32_t> prefix, suffix;
  std::optional<int32_t> eos, pad, bos;

  void encode_segment(std::string_view raw_segment, std::vector<int32_t>& ids) const;
  void encode_words(std::string_view text, std::vector<int32_t>& ids) const;
};

namespace {

void parse_post_processor(const json& j, const VocabMap& added, const BpeModel& model, std::vector<int32_t>& prefix,
                          std::vector<int32_t>& suffix) {
  if (j.is_null()) return;
  const std::string type = j.value("type", "");
  auto id_of = [&](const std::string& tok) -> int32_t {
    if (auto it = added.find(tok); it != added.end()) return it->second;
    if (auto it = model.vocab().find(tok); it != model.vocab().end()) return it->second;
    throw Error("tokenizer.json: post_processor token '" + tok + "' is not in the vocabulary");
  };
  if (type == "ByteLevel") return;  // only adjusts offsets
  if (type == "Sequence") {
    for (const auto& p : j.at("processors")) parse_post_processor(p, added, model, prefix, suffix);
    return;
  }
  if (type == "TemplateProcessing") {
    bool seen_sequence = false;
    for (const auto& item : j.at("single")) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      const std::string name = item.at("SpecialToken").at("id").get<std::string>();
      const auto& spec = j.at("special_tokens").at(name);
      for (const auto& id : spec.at("ids")) (seen_sequence ? suffix : prefix)
            .push_back(static_cast<int32_t>(json_integer(id, "tokenizer.json: post_processor special token '" + name + "' id", 0,
                                                         kMaxTokenId)));
    }
    return;
  }
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    prefix.push_back(id_of(j.at("cls").at(0).get<std::string>()));
    suffix.push_back(id_of(j.at("sep").at(0).get<std::string>()));
    return;
  }
  throw Error("tokenizer.json: post_processor type '" + type + "' is not supported");
}

// tokenizer_config.json token fields are a string or an AddedToken-like object {"content": ...}.
std::optional<std::string> config_token(const json& cfg, const char* key) {
  const auto it = cfg.find(key);
  if (it == cfg.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && it->at("content").is_string())
    return it->at("content").get<std::string>();
  throw Error(std::string("\"") + key + "\" must be a token string or an object with a string \"content\", got " +
              it->dump());
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::filesystem::path& model_dir) {
  if (io::is_gguf_file(model_dir)) {  // a GGUF's vocabulary, as the tokenizer.json transformers would rebuild from it
    const io::HfTokenizerFiles files = io::hf_tokenizer_files(io::GgufFile(model_dir));
    return from_json_text(files.tokenizer_json, files.tokenizer_config_json,
                          model_dir.string() + " (tokenizer.ggml.* metadata)",
                          model_dir.string() + " (tokenizer.ggml.* metadata)");
  }
  const auto tj_path = model_dir / "tokenizer.json";
  SFT_CHECK(std::filesystem::exists(tj_path), tj_path.string(), ": not found (a Hugging Face tokenizer.json is required)");
  SFT_CHECK(!std::filesystem::is_directory(tj_path), tj_path.string(), ": is a folder, expected a tokenizer.json file");
  const auto cfg_path = model_dir / "tokenizer_config.json";
  std::optional<std::string> cfg_text;
  if (input_present(cfg_path)) cfg_text = read_input_file(cfg_path, input::json_file);
  return from_json_text(read_input_file(tj_path, input::tokenizer_json), cfg_text, tj_path.string(), cfg_path.string());
}

Tokenizer Tokenizer::from_json_text(const std::string& tokenizer_json, const std::optional<std::string>& config_json,
                                    const std::string& tj_name, const std::string& cfg_name) {
  json tj;
  try {
    tj = json::parse(tokenizer_json);
  } catch (const json::exception& e) {
    throw Error(tj_name + ": invalid JSON: " + e.what());
  }
  SFT_CHECK(tj.is_object(), tj_name, ": expected a JSON object, got ", tj.type_name());
  auto impl = std::make_unique<Impl>();
  try {
    impl->normalizer = Normalizer::from_json(tj.value("normalizer", json()));
    impl->pre_tokenizer = PreTokenizer::from_json(tj.value("pre_tokenizer", json()));
    const json decoder = tj.value("decoder", json());
    const std::string dtype = decoder.is_null() ? "" : decoder.value("type", "");
    impl->byte_level_decoder = dtype == "ByteLevel";
    SFT_CHECK(decoder.is_null() || impl->byte_level_decoder, "decoder type '", dtype,
              "' is not supported (supported: ByteLevel, null)");
    // The vocabulary is byte-level if either end says so (some files carry only the ByteLevel decoder).
    impl->model.emplace(BpeModel::from_json(tj.at("model"), impl->pre_tokenizer.byte_level() || impl->byte_level_decoder));
    const BpeModel& model = *impl->model;

    impl->id_to_piece = model.id_to_piece();
    std::vector<AddedToken> raw, normalized;
    for (const auto& a : tj.value("added_tokens", json::array())) {
      AddedToken t;
      t.content = a.at("content").get<std::string>();
      t.id = static_cast<int32_t>(json_integer(a.at("id"), "tokenizer.json: added token '" + t.content + "' id", 0,
                                               kMaxTokenId));
      t.single_word = a.value("single_word", false);
      t.lstrip = a.value("lstrip", false);
      t.rstrip = a.value("rstrip", false);
      t.special = a.value("special", false);
      t.normalized = a.value("normalized", !t.special);
      SFT_CHECK(t.id >= 0, "added token '", t.content, "' has a negative id");
      if (static_cast<size_t>(t.id) >= impl->id_to_piece.size()) impl->id_to_piece.resize(static_cast<size_t>(t.id) + 1);
      impl->id_to_piece[static_cast<size_t>(t.id)] = t.content;
      impl->added_by_content[t.content] = t.id;
      if (impl->special_flag.size() <= static_cast<size_t>(t.id)) impl->special_flag.resize(static_cast<size_t>(t.id) + 1, 0);
      impl->special_flag[static_cast<size_t>(t.id)] = t.special ? 1 : 0;
      if (t.normalized) {
        t.content = impl->normalizer.apply(t.content);
        normalized.push_back(std::move(t));
      } else {
        raw.push_back(std::move(t));
      }
    }
    impl->special_flag.resize(impl->id_to_piece.size(), 0);
    impl->raw_added = AddedTokenMatcher(std::move(raw));
    impl->normalized_added = AddedTokenMatcher(std::move(normalized));

    // What each id decodes to. HF's ByteLevel decoder maps a token char by char back to bytes, and keeps a token
    // verbatim when one of its chars is not a byte-level char (e.g. an added token containing a real space).
    const auto& table = utf8::byte_level_table();
    impl->id_bytes.resize(impl->id_to_piece.size());
    for (size_t id = 0; id < impl->id_to_piece.size(); ++id) {
      const std::string& piece = impl->id_to_piece[id];
      if (!impl->byte_level_decoder) {
        impl->id_bytes[id] = piece;
        continue;
      }
      std::string bytes;
      bool all_mapped = true;
      for (size_t i = 0; i < piece.size() && all_mapped;) {
        size_t len = utf8::valid_sequence_length(piece, i);
        uint32_t cp = len ? utf8::decode_at(piece, i, len) : 0xFFFFFFFF;
        if (len == 0 || cp >= table.cp_to_byte.size() || table.cp_to_byte[cp] < 0) all_mapped = false;
        else bytes.push_back(static_cast<char>(table.cp_to_byte[cp]));
        i += len ? len : 1;
      }
      impl->id_bytes[id] = all_mapped ? std::move(bytes) : piece;
    }

    parse_post_processor(tj.value("post_processor", json()), impl->added_by_content, model, impl->prefix, impl->suffix);
  } catch (const json::exception& e) {
    throw Error(tj_name + ": unexpected structure: " + e.what());
  } catch (const Error& e) {
    throw Error(tj_name + ": " + e.what());
  }

  if (config_json) {
    json cfg;
    try {
      cfg = json::parse(*config_json);
    } catch (const json::exception& e) {
      throw Error(cfg_name + ": invalid JSON: " + e.what());
    }
    SFT_CHECK(cfg.is_object(), cfg_name, ": expected a JSON object, got ", cfg.type_name());
    Tokenizer probe(std::move(impl));
    auto resolve = [&](const char* key) -> std::optional<int32_t> {
      std::optional<std::string> tok;
      try {
        tok = config_token(cfg, key);
      } catch (const Error& e) {
        throw Error(cfg_name + ": " + e.what());
      }
      if (!tok) return std::nullopt;
      const auto id = probe.token_to_id(*tok);
      SFT_CHECK(id.has_value(), cfg_name, ": ", key, " '", *tok, "' is not a token of tokenizer.json");
      return id;
    };
    probe.impl_->eos = resolve("eos_token");
    probe.impl_->pad = resolve("pad_token");
    probe.impl_->bos = resolve("bos_token");
    return probe;
  }
  return Tokenizer(std::move(impl));
}

void Tokenizer::Impl::encode_words(std::string_view text, std::vector<int32_t>& ids) const {
  thread_local std::string arena;
  thread_local std::vector<Piece> pieces, scratch;
  arena.assign(text);
  pieces.clear();
  pieces.push_back({0, static_cast<uint32_t>(arena.size())});
  pre_tokenizer.split(arena, pieces, scratch);
  for (const Piece& p : pieces) model->encode_word(std::string_view(arena).substr(p.begin, p.end - p.begin), ids);
}

void Tokenizer::Impl::encode_segment(std::string_view raw_segment, std::vector<int32_t>& ids) const {
  thread_local std::string normalized_text;
  std::string_view text = raw_segment;
  if (!normalizer.is_identity()) {
    normalizer.apply(raw_segment, normalized_text);
    text = normalized_text;
  }
  if (normalized_added.empty()) {
    encode_words(text, ids);
    return;
  }
  normalized_added.split(text, [&](size_t b, size_t e, int32_t id) {
    if (id >= 0) ids.push_back(id);
    else encode_words(text.substr(b, e - b), ids);  // copies into its own arena; text stays valid
  });
}

void Tokenizer::encode_into(std::string_view text, bool add_special_tokens, std::vector<int32_t>& ids) const {
  std::string repaired;
  if (!utf8::is_valid(text)) {
    repaired = utf8::repair_lossy(text);
    text = repaired;
  }
  if (add_special_tokens) ids.insert(ids.end(), impl_->prefix.begin(), impl_->prefix.end());
  impl_->raw_added.split(text, [&](size_t b, size_t e, int32_t id) {
    if (id >= 0) ids.push_back(id);
    else impl_->encode_segment(text.substr(b, e - b), ids);
  });
  if (add_special_tokens) ids.insert(ids.end(), impl_->suffix.begin(), impl_->suffix.end());
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  encode_into(text, add_special_tokens, ids);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  bool first = true;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= impl_->id_bytes.size()) continue;  // HF skips unknown ids
    if (impl_->id_to_piece[static_cast<size_t>(id)].empty() && impl_->id_bytes[static_cast<size_t>(id)].empty()) continue;
    if (skip_special_tokens && impl_->special_flag[static_cast<size_t>(id)]) continue;
    if (!impl_->byte_level_decoder && !first) bytes.push_back(' ');  // HF joins with spaces without a decoder
    bytes += impl_->id_bytes[static_cast<size_t>(id)];
    first = false;
  }
  return utf8::repair_lossy(bytes);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_to_piece.size()) return {};
  return impl_->id_to_piece[static_cast<size_t>(id)];
}

std::string_view Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= impl_->id_bytes.size()) return {};
  return impl_->id_bytes[static_cast<size_t>(id)];
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto it = impl_->added_by_content.find(token); it != impl_->added_by_content.end()) return it->second;
  if (auto it = impl_->model->vocab().find(token); it != impl_->model->vocab().end()) return it->second;
  return std::nullopt;
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->id_to_piece.size()); }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad; }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->special_flag.size() && impl_->special_flag[static_cast<size_t>(id)];
}
const std::vector<int32_t>& Tokenizer::special_prefix() const { return impl_->prefix; }
const std::vector<int32_t>& Tokenizer::special_suffix() const { return impl_->suffix; }

// ---- StreamDecoder ----

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special_tokens) : tok_(tok), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_.is_special(id)) return {};
  pending_ += tok_.token_bytes(id);
  // Emit everything up to a trailing incomplete (but so far well-formed) multi-byte character; ill-formed bytes
  // elsewhere become U+FFFD exactly as a whole-sequence decode would.
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const size_t len = utf8::valid_sequence_length(pending_, i);
    if (len) {
      out.append(pending_, i, len);
      i += len;
      continue;
    }
    const size_t bad = utf8::maximal_invalid_subpart(pending_, i);
    const size_t need = utf8::expected_length(static_cast<uint8_t>(pending_[i]));
    if (i + bad == pending_.size() && bad < need) break;  // may still be completed by the next token
    out.append("\xEF\xBF\xBD");
    i += bad;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = utf8::repair_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace sft::tok
