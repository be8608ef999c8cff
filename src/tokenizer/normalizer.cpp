#include "tokenizer/normalizer.h"

#include <nlohmann/json.hpp>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "util/error.h"

namespace sft::tok {

namespace {
const UNormalizer2* icu_instance(Normalizer::Form f) {
  UErrorCode st = U_ZERO_ERROR;
  const UNormalizer2* n = nullptr;
  switch (f) {
    case Normalizer::Form::NFC: n = unorm2_getNFCInstance(&st); break;
    case Normalizer::Form::NFD: n = unorm2_getNFDInstance(&st); break;
    case Normalizer::Form::NFKC: n = unorm2_getNFKCInstance(&st); break;
    case Normalizer::Form::NFKD: n = unorm2_getNFKDInstance(&st); break;
  }
  SFT_CHECK(U_SUCCESS(st) && n, "tokenizer: ICU normalizer unavailable: ", u_errorName(st));
  return n;
}

void collect(const nlohmann::json& j, std::vector<Normalizer::Form>& forms) {
  if (j.is_null()) return;
  const std::string type = j.value("type", "");
  if (type == "NFC") forms.push_back(Normalizer::Form::NFC);
  else if (type == "NFD") forms.push_back(Normalizer::Form::NFD);
  else if (type == "NFKC") forms.push_back(Normalizer::Form::NFKC);
  else if (type == "NFKD") forms.push_back(Normalizer::Form::NFKD);
  else if (type == "Sequence") {
    for (const auto& sub : j.at("normalizers")) collect(sub, forms);
  } else {
    throw Error("tokenizer.json: normalizer type '" + type +
                "' is not supported (supported: null, NFC, NFD, NFKC, NFKD, Sequence of those)");
  }
}

// Text whose code points are all below U+0300 (the first combining mark; lead bytes < 0xCC) is already NFC: no such
// code point changes under NFC or composes with a neighbour. (Not true for NFD: Latin-1 letters decompose.)
bool trivially_nfc(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0xCC) return false;
  return true;
}
}  // namespace

Normalizer Normalizer::from_json(const nlohmann::json& j) {
  Normalizer n;
  collect(j, n.forms_);
  return n;
}

void Normalizer::apply(std::string_view text, std::string& out) const {
  out.assign(text);
  if (forms_.empty() || out.empty()) return;
  std::u16string u16, norm16;
  for (Form f : forms_) {
    if (f == Form::NFC && trivially_nfc(out)) continue;
    UErrorCode st = U_ZERO_ERROR;
    int32_t len16 = 0;
    u16.resize(out.size() + 1);
    u_strFromUTF8(u16.data(), static_cast<int32_t>(u16.size()), &len16, out.data(), static_cast<int32_t>(out.size()), &st);
    SFT_CHECK(U_SUCCESS(st), "tokenizer: UTF-8 -> UTF-16 failed: ", u_errorName(st));
    const UNormalizer2* n = icu_instance(f);
    // Most text is already normalized: only the tail after the longest quick-check-"yes" prefix is rewritten.
    const int32_t span = unorm2_spanQuickCheckYes(n, u16.data(), len16, &st);
    SFT_CHECK(U_SUCCESS(st), "tokenizer: ICU quick check failed: ", u_errorName(st));
    if (span == len16) continue;
    norm16.assign(u16.data(), span);
    norm16.resize(static_cast<size_t>(len16) * 4 + 16);
    int32_t nlen = unorm2_normalizeSecondAndAppend(n, norm16.data(), span, static_cast<int32_t>(norm16.size()),
                                                   u16.data() + span, len16 - span, &st);
    SFT_CHECK(U_SUCCESS(st), "tokenizer: ICU normalization failed: ", u_errorName(st));
    int32_t len8 = 0;
    st = U_ZERO_ERROR;
    out.resize(static_cast<size_t>(nlen) * 3 + 1);
    u_strToUTF8(out.data(), static_cast<int32_t>(out.size()), &len8, norm16.data(), nlen, &st);
    SFT_CHECK(U_SUCCESS(st), "tokenizer: UTF-16 -> UTF-8 failed: ", u_errorName(st));
    out.resize(len8);
  }
}

}  // namespace sft::tok
