// TextEncoder over the real tokenizer. Kept in its own file so that code using only the templates (and the tests with
// a fake encoder) does not pull in the tokenizer library.
#include "data/template.h"
#include "tokenizer/tokenizer.h"

namespace sft::data {

TokenizerEncoder::TokenizerEncoder(const tok::Tokenizer& tok) : tok_(tok) {
  // HF encode(add_special_tokens=True) prepends BOS only when the post-processor says so; detect it by probing.
  std::vector<int32_t> with = tok.encode("a", true), without = tok.encode("a", false);
  if (with.size() == without.size() + 1) bos_ = with.front();
}

std::vector<int32_t> TokenizerEncoder::encode(std::string_view text) const { return tok_.encode(text, false); }
std::optional<int32_t> TokenizerEncoder::eos_id() const { return tok_.eos_id(); }
std::optional<int32_t> TokenizerEncoder::token_to_id(std::string_view token) const { return tok_.token_to_id(token); }
std::optional<int32_t> TokenizerEncoder::bos_id() const { return bos_; }
std::string TokenizerEncoder::token_bytes(int32_t id) const { return std::string(tok_.token_bytes(id)); }
bool TokenizerEncoder::is_special(int32_t id) const { return tok_.is_special(id); }

}  // namespace sft::data
