// Encoding arbitrary bytes with real tokenizers: the tiny byte-level BPE of tests/fixtures/train, plus every folder
// listed in SFT_FUZZ_TOKENIZERS (colon-separated; scripts/fuzz.sh passes the Qwen3 and Llama 3 fixtures).
// Properties: ids inside the vocabulary; for printable ASCII without '<' (no added-token text), byte-level
// decode(encode(x)) gives x back exactly (NFC leaves ASCII alone).
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

#include <memory>
#include <vector>

#ifndef SFT_SOURCE_DIR
#define SFT_SOURCE_DIR "."
#endif

namespace {
std::vector<std::unique_ptr<sft::tok::Tokenizer>>& tokenizers() {
  static std::vector<std::unique_ptr<sft::tok::Tokenizer>> toks = [] {
    std::vector<std::unique_ptr<sft::tok::Tokenizer>> v;
    v.push_back(std::make_unique<sft::tok::Tokenizer>(
        sft::tok::Tokenizer::load(std::filesystem::path(SFT_SOURCE_DIR) / "tests/fixtures/train/tiny_tokenizer")));
    if (const char* env = std::getenv("SFT_FUZZ_TOKENIZERS")) {
      std::string s = env;
      size_t pos = 0;
      while (pos <= s.size()) {
        size_t end = s.find(':', pos);
        if (end == std::string::npos) end = s.size();
        if (end > pos) v.push_back(std::make_unique<sft::tok::Tokenizer>(sft::tok::Tokenizer::load(s.substr(pos, end - pos))));
        pos = end + 1;
      }
    }
    return v;
  }();
  return toks;
}
}  // namespace

// Loading the real tokenizers (MBs of JSON) happens here, outside libFuzzer's per-input timeout.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tokenizers();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  bool plain_ascii = true;
  for (char c : text) plain_ascii &= (c >= 0x20 && c < 0x7f) || c == '\n' || c == '\t';
  plain_ascii &= text.find('<') == std::string_view::npos;  // added tokens (<|endoftext|>, <think>) decode as special
  for (const auto& tok : tokenizers()) {
    for (bool special : {false, true}) {
      const auto ids = tok->encode(text, special);
      for (int32_t id : ids)
        if (id < 0 || id >= tok->vocab_size()) std::abort();
      const std::string back = tok->decode(ids, /*skip_special_tokens=*/true);
      if (plain_ascii && back != text) std::abort();  // byte-level BPE is lossless on plain ASCII
    }
  }
  return 0;
}
