// A deterministic byte-level encoder for unit tests: every byte b becomes id 100 + b, and a few special tokens have
// their own ids. It is NOT BPE (no merges), which makes expected ids easy to write by hand; the BPE boundary
// behaviour is tested against the real Qwen tokenizer in alignment_test.cpp.
#pragma once
#include <map>
#include <optional>
#include <string>

#include "data/template.h"

namespace sft::data::testing {

class FakeEncoder : public TextEncoder {
 public:
  static constexpr int32_t kEos = 3, kImStart = 1, kImEnd = 2, kBos = 4;
  explicit FakeEncoder(bool with_chatml = true, bool with_eos = true, bool with_bos = false)
      : chatml_(with_chatml), eos_(with_eos), bos_(with_bos) {}
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(100 + c);
    return ids;
  }
  std::optional<int32_t> eos_id() const override { return eos_ ? std::optional<int32_t>(kEos) : std::nullopt; }
  std::optional<int32_t> bos_id() const override { return bos_ ? std::optional<int32_t>(kBos) : std::nullopt; }
  std::optional<int32_t> token_to_id(std::string_view t) const override {
    if (chatml_ && t == "<|im_start|>") return kImStart;
    if (chatml_ && t == "<|im_end|>") return kImEnd;
    return std::nullopt;
  }
  static std::vector<int32_t> bytes(std::string_view text) { return FakeEncoder().encode(text); }

 private:
  bool chatml_, eos_, bos_;
};

}  // namespace sft::data::testing
