// A compiled PCRE2 pattern (UTF + UCP, JIT when available) that reports non-empty matches over valid UTF-8.
// PCRE2 instead of a hand-written matcher: the pre-tokenizer pattern is data (read from tokenizer.json), so any
// byte-level model's regex works unchanged; Oniguruma (what HF uses) and PCRE2 are both Perl-style backtracking
// engines, so leftmost-alternative priority, lazy/greedy and lookahead behave the same. Parity is checked by tests.
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace sft::tok {

class Regex {
 public:
  // literal=true: the pattern is a plain string (tokenizer.json's {"String": ...}), matched as is.
  Regex(const std::string& pattern, bool literal);
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;
  ~Regex();

  // Calls on_match(begin, end) (byte offsets into text) for every successive non-overlapping, non-empty match.
  // text must be valid UTF-8 (the tokenizer repairs input first).
  template <class F>
  void for_each_match(std::string_view text, F&& on_match) const {
    size_t pos = 0, b = 0, e = 0;
    while (pos < text.size() && next_match(text, pos, b, e)) {
      if (e > b) { on_match(b, e); pos = e; }
      else pos = b + 1;  // an empty match: step over one byte (then realign to a character start)
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
  }

  const std::string& pattern() const { return pattern_; }

 private:
  bool next_match(std::string_view text, size_t start, size_t& b, size_t& e) const;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

}  // namespace sft::tok
