#define PCRE2_CODE_UNIT_WIDTH 8
#include "eval/py_regex.h"

#include <pcre2.h>

#include "util/error.h"
#include "util/utf8.h"

namespace sft::eval {

PyRegex::PyRegex(const std::string& pattern, const std::string& what) : pattern_(pattern) {
  int err = 0;
  PCRE2_SIZE off = 0;
  auto* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                             &err, &off, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw Error(what + ": regex '" + pattern + "' does not compile at offset " + std::to_string(off) + ": " +
                reinterpret_cast<const char*>(msg));
  }
  code_ = code;
  uint32_t n = 0;
  pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &n);
  groups_ = static_cast<int>(n);
}

PyRegex::PyRegex(PyRegex&& o) noexcept : pattern_(std::move(o.pattern_)), code_(o.code_), groups_(o.groups_) {
  o.code_ = nullptr;
}
PyRegex& PyRegex::operator=(PyRegex&& o) noexcept {
  if (this != &o) {
    if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
    pattern_ = std::move(o.pattern_);
    code_ = o.code_;
    groups_ = o.groups_;
    o.code_ = nullptr;
  }
  return *this;
}
PyRegex::~PyRegex() {
  if (code_) pcre2_code_free(static_cast<pcre2_code*>(code_));
}

bool PyRegex::match(std::string_view text, size_t start, bool not_empty_at_start, std::vector<size_t>& spans) const {
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(static_cast<pcre2_code*>(code_), nullptr);
  SFT_CHECK(md, "out of memory creating regex match data");
  const int rc = pcre2_match(static_cast<pcre2_code*>(code_), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(),
                             start, not_empty_at_start ? PCRE2_NOTEMPTY_ATSTART : 0u, md, nullptr);
  bool found = rc >= 0;
  if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
    pcre2_match_data_free(md);
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(rc, msg, sizeof msg);
    throw Error("regex '" + pattern_ + "': " + reinterpret_cast<const char*>(msg));
  }
  if (found) {
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    spans.assign(ov, ov + 2 * (groups_ + 1));
    // Groups beyond rc did not take part (PCRE2 leaves them unset).
    for (int g = rc; g <= groups_; ++g) spans[2 * g] = spans[2 * g + 1] = PCRE2_UNSET;
  }
  pcre2_match_data_free(md);
  return found;
}

std::vector<std::vector<std::string>> PyRegex::findall(std::string_view text) const {
  SFT_CHECK(utf8::is_valid(text), "regex '", pattern_, "': the text is not valid UTF-8");
  std::vector<std::vector<std::string>> out;
  std::vector<size_t> sp;
  size_t pos = 0;
  bool last_empty = false;
  while (pos <= text.size() && match(text, pos, last_empty, sp)) {
    std::vector<std::string> m;
    if (groups_ == 0) {
      m.emplace_back(text.substr(sp[0], sp[1] - sp[0]));
    } else {
      for (int g = 1; g <= groups_; ++g)
        m.emplace_back(sp[2 * g] == PCRE2_UNSET ? std::string() : std::string(text.substr(sp[2 * g], sp[2 * g + 1] - sp[2 * g])));
    }
    out.push_back(std::move(m));
    last_empty = sp[0] == sp[1];
    pos = sp[1];
  }
  return out;
}

std::string PyRegex::sub(std::string_view text, std::string_view repl) const {
  SFT_CHECK(utf8::is_valid(text), "regex '", pattern_, "': the text is not valid UTF-8");
  std::string out;
  std::vector<size_t> sp;
  size_t pos = 0, copied = 0;
  bool last_empty = false;
  while (pos <= text.size() && match(text, pos, last_empty, sp)) {
    out.append(text.substr(copied, sp[0] - copied));
    out.append(repl);
    copied = sp[1];
    last_empty = sp[0] == sp[1];
    pos = sp[1];
  }
  out.append(text.substr(copied));
  return out;
}

}  // namespace sft::eval
