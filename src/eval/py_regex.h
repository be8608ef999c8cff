// Python `re` as lm-eval's answer extraction and exact_match use it (re.findall, re.sub), over PCRE2 with UTF + UCP.
// PCRE2 and Python's sre are both backtracking Perl-style engines: leftmost match, alternative order, greedy/lazy
// quantifiers, (?s)/(?i) flags, `$` matching at the end or before a final newline agree for the patterns tasks use.
// Iteration follows Python 3.7+: after an empty match the next match may start at the same position only if it is
// non-empty (PCRE2_NOTEMPTY_ATSTART), and empty matches right after a non-empty match are allowed.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sft::eval {

class PyRegex {
 public:
  // Throws sft::Error naming `what` and PCRE2's message when the pattern does not compile.
  PyRegex(const std::string& pattern, const std::string& what);
  PyRegex(PyRegex&&) noexcept;
  PyRegex& operator=(PyRegex&&) noexcept;
  ~PyRegex();

  int groups() const { return groups_; }
  // re.findall(pattern, text): per match, the whole match (no groups) or every group's text ("" when a group did not
  // take part) — one entry for one group, a tuple (all entries) for several.
  std::vector<std::vector<std::string>> findall(std::string_view text) const;
  // re.sub(pattern, repl, text) with a literal replacement (no backreferences).
  std::string sub(std::string_view text, std::string_view repl) const;
  const std::string& pattern() const { return pattern_; }

 private:
  // Next match at or after `start`; false when none. ovector pairs for group 0..groups_.
  bool match(std::string_view text, size_t start, bool not_empty_at_start, std::vector<size_t>& spans) const;
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  int groups_ = 0;
};

}  // namespace sft::eval
