#include "tokenizer/pre_tokenizer.h"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <unicode/uchar.h>

#include "tokenizer/utf8.h"
#include "util/error.h"

namespace sft::tok {

namespace {
// HF tokenizers' ByteLevel::use_regex pattern (GPT-2).
constexpr const char* kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Region {
  uint32_t b, e;
  bool match;
};

// Rust char::is_numeric: general category Nd, Nl or No (what HF's Digits pre-tokenizer tests).
bool is_numeric_cp(uint32_t cp) {
  if (cp < 0x80) return cp >= '0' && cp <= '9';
  const int8_t t = u_charType(static_cast<UChar32>(cp));
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}
}  // namespace

void PreTokenizer::collect(const nlohmann::json& j, std::vector<Step>& steps, bool& byte_level) {
  if (j.is_null()) return;
  const std::string type = j.value("type", "");
  if (type == "Sequence") {
    for (const auto& sub : j.at("pretokenizers")) collect(sub, steps, byte_level);
    return;
  }
  Step st;
  if (type == "Split") {
    st.kind = Kind::Split;
    const auto& pat = j.at("pattern");
    if (pat.contains("Regex")) st.regex = std::make_shared<Regex>(pat.at("Regex").get<std::string>(), false);
    else if (pat.contains("String")) st.regex = std::make_shared<Regex>(pat.at("String").get<std::string>(), true);
    else throw Error("tokenizer.json: Split pre-tokenizer pattern must be {\"Regex\": ...} or {\"String\": ...}");
    const std::string b = j.value("behavior", "Isolated");
    if (b == "Removed") st.behavior = Behavior::Removed;
    else if (b == "Isolated") st.behavior = Behavior::Isolated;
    else if (b == "MergedWithPrevious") st.behavior = Behavior::MergedWithPrevious;
    else if (b == "MergedWithNext") st.behavior = Behavior::MergedWithNext;
    else if (b == "Contiguous") st.behavior = Behavior::Contiguous;
    else throw Error("tokenizer.json: unknown Split behavior '" + b + "'");
    st.invert = j.value("invert", false);
  } else if (type == "ByteLevel") {
    st.kind = Kind::ByteLevel;
    st.add_prefix_space = j.value("add_prefix_space", false);
    if (j.value("use_regex", true)) st.regex = std::make_shared<Regex>(kGpt2Pattern, false);
    byte_level = true;
  } else if (type == "Digits") {
    st.kind = Kind::Digits;
    st.individual_digits = j.value("individual_digits", false);
    st.behavior = st.individual_digits ? Behavior::Isolated : Behavior::Contiguous;
  } else {
    throw Error("tokenizer.json: pre_tokenizer type '" + type +
                "' is not supported (supported: Split, ByteLevel, Digits, Sequence of those)");
  }
  steps.push_back(std::move(st));
}

PreTokenizer PreTokenizer::from_json(const nlohmann::json& j) {
  PreTokenizer p;
  collect(j, p.steps_, p.byte_level_);
  return p;
}

void PreTokenizer::split(std::string& arena, std::vector<Piece>& pieces, std::vector<Piece>& scratch) const {
  for (const Step& st : steps_) {
    scratch.clear();
    apply_step(st, arena, pieces, scratch);
    pieces.swap(scratch);
  }
}

void PreTokenizer::apply_step(const Step& st, std::string& arena, const std::vector<Piece>& in,
                              std::vector<Piece>& out) const {
  thread_local std::vector<Region> regions;
  auto emit = [&out](uint32_t b, uint32_t e) {
    if (e > b) out.push_back({b, e});
  };
  for (Piece p : in) {
    if (st.kind == Kind::ByteLevel && st.add_prefix_space && arena[p.begin] != ' ') {
      // HF prepends a space to every split that does not start with one.
      const auto nb = static_cast<uint32_t>(arena.size());
      arena.push_back(' ');
      arena.append(arena, p.begin, p.end - p.begin);
      p = {nb, static_cast<uint32_t>(arena.size())};
    }
    if (!st.regex && st.kind == Kind::ByteLevel) {
      emit(p.begin, p.end);
      continue;
    }
    // Regions covering the piece: matches and the gaps between them (HF's find_matches).
    regions.clear();
    const std::string_view text(arena.data() + p.begin, p.end - p.begin);
    uint32_t prev = 0;
    if (st.kind == Kind::Digits) {
      for (size_t i = 0; i < text.size();) {
        size_t len = 0;
        const uint32_t cp = utf8::decode_at(text, i, len);
        if (is_numeric_cp(cp)) {
          if (prev < i) regions.push_back({prev, static_cast<uint32_t>(i), false});
          regions.push_back({static_cast<uint32_t>(i), static_cast<uint32_t>(i + len), true});
          prev = static_cast<uint32_t>(i + len);
        }
        i += len;
      }
    } else {
      st.regex->for_each_match(text, [&](size_t b, size_t e) {
        if (prev < b) regions.push_back({prev, static_cast<uint32_t>(b), false});
        regions.push_back({static_cast<uint32_t>(b), static_cast<uint32_t>(e), true});
        prev = static_cast<uint32_t>(e);
      });
    }
    if (prev < text.size()) regions.push_back({prev, static_cast<uint32_t>(text.size()), false});
    if (st.invert)
      for (auto& r : regions) r.match = !r.match;

    const Behavior behavior = st.kind == Kind::ByteLevel ? Behavior::Isolated : st.behavior;
    const uint32_t base = p.begin;
    const size_t first_out = out.size();
    bool previous_match = false;
    switch (behavior) {
      case Behavior::Isolated:
        for (const auto& r : regions) emit(base + r.b, base + r.e);
        break;
      case Behavior::Removed:
        for (const auto& r : regions)
          if (!r.match) emit(base + r.b, base + r.e);
        break;
      // The three merging behaviors follow HF's SplitDelimiterBehavior folds literally (tokenizers/src/tokenizer/
      // normalizer.rs, NormalizedString::split), including their treatment of the first region.
      case Behavior::MergedWithPrevious:
        for (const auto& r : regions) {
          if (r.match && !previous_match && out.size() > first_out) out.back().end = base + r.e;
          else out.push_back({base + r.b, base + r.e});
          previous_match = r.match;
        }
        break;
      case Behavior::MergedWithNext:
        for (size_t k = regions.size(); k-- > 0;) {
          const auto& r = regions[k];
          if (r.match && !previous_match && out.size() > first_out) out.back().begin = base + r.b;
          else out.push_back({base + r.b, base + r.e});
          previous_match = r.match;
        }
        std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first_out), out.end());
        break;
      case Behavior::Contiguous:
        for (const auto& r : regions) {
          if (r.match == previous_match && out.size() > first_out) out.back().end = base + r.e;
          else out.push_back({base + r.b, base + r.e});
          previous_match = r.match;
        }
        break;
    }
  }
}

}  // namespace sft::tok
