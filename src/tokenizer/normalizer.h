// tokenizer.json "normalizer": null, NFC / NFD / NFKC / NFKD (ICU), or a Sequence of those.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace sft::tok {

class Normalizer {
 public:
  enum class Form { NFC, NFD, NFKC, NFKD };
  Normalizer() = default;  // identity
  static Normalizer from_json(const nlohmann::json& j);  // j may be null

  bool is_identity() const { return forms_.empty(); }
  // Normalizes valid UTF-8 text into out (out is overwritten).
  void apply(std::string_view text, std::string& out) const;
  std::string apply(std::string_view text) const {
    std::string out;
    apply(text, out);
    return out;
  }

 private:
  std::vector<Form> forms_;  // applied in order
};

}  // namespace sft::tok
