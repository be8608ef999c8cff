#include "tokenizer/added_tokens.h"

#include <algorithm>
#include <cstring>

#include <unicode/uchar.h>

#include "tokenizer/utf8.h"

namespace sft::tok {

namespace {
// Rust char::is_alphanumeric (Alphabetic property or general category N*), which HF's single_word test uses.
bool is_alnum_cp(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return u_isUAlphabetic(static_cast<UChar32>(cp)) || t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER ||
         t == U_OTHER_NUMBER;
}
// Rust char::is_whitespace: the White_Space property.
bool is_space_cp(uint32_t cp) { return u_isUWhiteSpace(static_cast<UChar32>(cp)); }

// Start of the code point that ends right before pos (valid UTF-8).
size_t prev_cp_start(std::string_view s, size_t pos) {
  size_t i = pos - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return i;
}
}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens) : tokens_(std::move(tokens)) {
  std::erase_if(tokens_, [](const AddedToken& t) { return t.content.empty(); });
  for (size_t i = 0; i < tokens_.size(); ++i)
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(static_cast<int>(i));
  for (auto& bucket : by_first_byte_)
    std::stable_sort(bucket.begin(), bucket.end(),
                     [&](int a, int b) { return tokens_[a].content.size() > tokens_[b].content.size(); });
}

bool AddedTokenMatcher::find_leftmost_longest(std::string_view text, size_t from, size_t& b, size_t& e, int& idx) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    const auto& bucket = by_first_byte_[static_cast<unsigned char>(text[pos])];
    for (int i : bucket) {  // longest first, so the first hit is the longest match at this position
      const std::string& c = tokens_[static_cast<size_t>(i)].content;
      if (c.size() <= text.size() - pos && std::memcmp(text.data() + pos, c.data(), c.size()) == 0) {
        b = pos;
        e = pos + c.size();
        idx = i;
        return true;
      }
    }
  }
  return false;
}

bool AddedTokenMatcher::at_word_boundary_before(std::string_view text, size_t pos) {
  if (pos == 0) return true;
  size_t len = 0;
  return !is_alnum_cp(utf8::decode_at(text, prev_cp_start(text, pos), len));
}

bool AddedTokenMatcher::at_word_boundary_after(std::string_view text, size_t pos) {
  if (pos >= text.size()) return true;
  size_t len = 0;
  return !is_alnum_cp(utf8::decode_at(text, pos, len));
}

size_t AddedTokenMatcher::whitespace_start_before(std::string_view text, size_t pos) {
  while (pos > 0) {
    const size_t p = prev_cp_start(text, pos);
    size_t len = 0;
    if (!is_space_cp(utf8::decode_at(text, p, len))) break;
    pos = p;
  }
  return pos;
}

size_t AddedTokenMatcher::whitespace_end_after(std::string_view text, size_t pos) {
  while (pos < text.size()) {
    size_t len = 0;
    if (!is_space_cp(utf8::decode_at(text, pos, len))) break;
    pos += len;
  }
  return pos;
}

}  // namespace sft::tok
