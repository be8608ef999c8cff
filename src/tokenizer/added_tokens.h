// Added tokens (tokenizer.json "added_tokens"): matched in the text before the model sees it, exactly like HF's
// AddedVocabulary::find_matches: leftmost-longest match (its Aho-Corasick MatchKind::LeftmostLongest), then the
// single_word / lstrip / rstrip rules applied to that match. Tokens with normalized=false are matched in the raw text,
// those with normalized=true in each normalized segment (the caller runs the two passes).
#pragma once
#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sft::tok {

struct AddedToken {
  std::string content;  // for normalized tokens: the normalized content (what is matched)
  int32_t id = 0;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
  bool special = false;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedToken> tokens);
  bool empty() const { return tokens_.empty(); }

  // Splits text into consecutive spans; on_span(begin, end, id) with id = -1 for text between added tokens.
  // Covers the whole text; empty text gives no spans.
  template <class F>
  void split(std::string_view text, F&& on_span) const {
    if (tokens_.empty()) {
      if (!text.empty()) on_span(size_t{0}, text.size(), int32_t{-1});
      return;
    }
    size_t start_offset = 0, search = 0;
    size_t b = 0, e = 0;
    int idx = -1;
    while (find_leftmost_longest(text, search, b, e, idx)) {
      search = e;  // the automaton resumes after this match whether it is kept or not
      const AddedToken& t = tokens_[static_cast<size_t>(idx)];
      if (t.single_word && !(at_word_boundary_before(text, b) && at_word_boundary_after(text, e))) continue;
      if (t.lstrip) b = std::max(whitespace_start_before(text, b), start_offset);
      if (t.rstrip) e = whitespace_end_after(text, e);
      if (start_offset < b) on_span(start_offset, b, int32_t{-1});
      on_span(b, e, t.id);
      start_offset = e;
      if (search < e) search = e;
    }
    if (start_offset < text.size()) on_span(start_offset, text.size(), int32_t{-1});
  }

 private:
  bool find_leftmost_longest(std::string_view text, size_t from, size_t& b, size_t& e, int& idx) const;
  static bool at_word_boundary_before(std::string_view text, size_t pos);
  static bool at_word_boundary_after(std::string_view text, size_t pos);
  static size_t whitespace_start_before(std::string_view text, size_t pos);
  static size_t whitespace_end_after(std::string_view text, size_t pos);

  std::vector<AddedToken> tokens_;
  std::array<std::vector<int>, 256> by_first_byte_;  // token indices, longest content first
};

}  // namespace sft::tok
