// A byte-level BPE tokenizer between its Hugging Face files (tokenizer.json, tokenizer_config.json,
// chat_template.jinja) and GGUF metadata (tokenizer.ggml.*, tokenizer.chat_template) as llama.cpp's converter writes
// and llama.cpp's vocabulary loader reads it. Both directions are plain format conversion: no model knowledge.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "io/gguf.h"

namespace sft::io {

// Token ids config.json states; used where tokenizer_config.json names no token (as the converter's SpecialVocab).
struct ConfigTokenIds {
  std::optional<int64_t> bos, eos, pad;
};

// tokenizer.ggml.model = "gpt2", .pre, .tokens (vocab_size entries: ids the tokenizer lacks become "[PAD<id>]",
// type UNUSED), .token_type (1 normal, 3 control, 4 user-defined, 5 unused), .merges ("a b"), bos/eos/unknown/padding
// ids, add_bos_token / add_eos_token, and tokenizer.chat_template when the folder has one. Throws naming the file
// for a tokenizer llama.cpp cannot run as it is (not byte-level BPE, a pre-tokenizer with no llama.cpp name).
std::vector<std::pair<std::string, GgufValue>> gguf_tokenizer_metadata(const std::filesystem::path& model_dir,
                                                                       int64_t vocab_size,
                                                                       const ConfigTokenIds& config_ids);

// llama.cpp's name for a tokenizer.json's pre-tokenization (tokenizer.ggml.pre). The converter hashes the ids of a
// check string and looks the hash up in a table of known models; this decides from what those ids depend on: the
// pre-tokenizer (its split regex or Digits + ByteLevel), ignore_merges, and clean_up_tokenization_spaces.
// "qwen2", "llama-bpe", "smaug-bpe", "smollm", "starcoder" or "gpt-2"; throws naming `where` otherwise.
std::string gguf_pre_tokenizer_name(const std::string& tokenizer_json, bool clean_up_tokenization_spaces,
                                    const std::string& where);

// The Hugging Face files a GGUF's tokenizer metadata stands for, rebuilt as transformers' GGUF loader does:
// tokenizer.json (BPE vocab and merges, control / user-defined tokens as added tokens, the normalizer and
// pre-tokenizer of tokenizer.ggml.pre, a BOS-adding post-processor when add_bos_token) and tokenizer_config.json
// (bos/eos/pad/unk tokens, add_bos_token, chat_template). Errors name the file and key.
struct HfTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
  std::string chat_template;  // "" when the file has none
  std::vector<std::pair<std::string, std::string>> special_tokens;  // {"bos_token", "<s>"}, ... (those present)
};
HfTokenizerFiles hf_tokenizer_files(const GgufFile& f);

}  // namespace sft::io
