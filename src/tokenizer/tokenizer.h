// Byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json + tokenizer_config.json; ids identical to HF
// `tokenizers` (see tests/tokenizer for the parity corpus).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sft::tok {

class Tokenizer {
 public:
  // Loads <dir>/tokenizer.json and (optional) <dir>/tokenizer_config.json.
  static Tokenizer load(const std::filesystem::path& model_dir);
  // The same from in-memory texts (config_json: tokenizer_config.json, nullopt when absent); the names are used in
  // error messages. Used by load() and by the fuzz targets.
  static Tokenizer from_json_text(const std::string& tokenizer_json, const std::optional<std::string>& config_json,
                                  const std::string& tokenizer_json_name = "tokenizer.json",
                                  const std::string& config_json_name = "tokenizer_config.json");
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Encodes text. Added/special tokens in the text are matched (as HF does with split_special_tokens=False).
  // add_special_tokens prepends BOS when the tokenizer's post-processor adds one (Llama 3), as HF's encode() does.
  // Input that is not valid UTF-8 is first repaired: every ill-formed subsequence becomes U+FFFD (the maximal-subpart
  // rule of bytes.decode("utf-8", "replace")), so encode(b) == HF encode(b.decode("utf-8", "replace")).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  // Appends to ids instead of returning a new vector (no allocation when ids has capacity).
  void encode_into(std::string_view text, bool add_special_tokens, std::vector<int32_t>& ids) const;
  // Decodes ids to text (invalid UTF-8 byte sequences become U+FFFD as HF does); skip_special drops special tokens.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  // The piece of an id as stored in the vocab (byte-level chars), e.g. "Ġthe"; empty for an unknown id.
  std::string id_to_token(int32_t id) const;
  // The bytes one id decodes to (byte-level mapping undone; may be a partial UTF-8 character); empty if unknown.
  std::string_view token_bytes(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
  int64_t vocab_size() const;  // largest id + 1, added tokens included

  // From tokenizer_config.json (eos_token / pad_token / bos_token), resolved to ids; nullopt when unset.
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;
  std::optional<int32_t> bos_id() const;
  bool is_special(int32_t id) const;
  // The ids the post-processor puts around a single sequence when add_special_tokens=true (BOS for Llama 3).
  const std::vector<int32_t>& special_prefix() const;
  const std::vector<int32_t>& special_suffix() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Streaming-safe decode: feed ids one at a time, get back only complete UTF-8 text (partial multi-byte characters are
// held back until completed). Used by `sft generate` / `sft chat` for streaming output.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special_tokens = true);
  std::string push(int32_t id);
  std::string flush();  // whatever is held back (invalid tail -> U+FFFD)

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace sft::tok
