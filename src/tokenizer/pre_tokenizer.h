// tokenizer.json "pre_tokenizer": splits normalized text into pre-token words. Supported shapes (those of byte-level
// BPE models): Split (regex or literal; every SplitDelimiterBehavior; invert), ByteLevel (add_prefix_space, use_regex
// = the GPT-2 pattern), Digits (individual_digits), and Sequence of those. Pieces are byte ranges into an arena string
// so that splitting allocates nothing per token.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/regex.h"

namespace sft::tok {

struct Piece {
  uint32_t begin;
  uint32_t end;
};

class PreTokenizer {
 public:
  static PreTokenizer from_json(const nlohmann::json& j);  // j may be null (whole text is one word)

  // arena holds the text; pieces in/out: on entry one piece per input span, on exit the words. May append to arena
  // (add_prefix_space builds new text there). scratch is caller-owned to avoid allocations.
  void split(std::string& arena, std::vector<Piece>& pieces, std::vector<Piece>& scratch) const;

  // True when some step is ByteLevel: the BPE vocabulary is then written in GPT-2 byte-level characters.
  bool byte_level() const { return byte_level_; }

 private:
  enum class Kind { Split, ByteLevel, Digits };
  enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
  struct Step {
    Kind kind;
    Behavior behavior = Behavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;
    bool individual_digits = false;
    std::shared_ptr<Regex> regex;  // Split, or ByteLevel with use_regex
  };
  static void collect(const nlohmann::json& j, std::vector<Step>& steps, bool& byte_level);
  void apply_step(const Step& st, std::string& arena, const std::vector<Piece>& in, std::vector<Piece>& out) const;

  std::vector<Step> steps_;
  bool byte_level_ = false;
};

}  // namespace sft::tok
