// Answer extraction and exact match for generate_until tasks, as lm-eval 0.4.13 computes them:
//  - filters/extraction.py RegexFilter: re.findall(pattern, response); no match -> fallback ("[invalid]"); else the
//    match at group_select (negative counts from the end); a tuple of groups -> its first non-empty group (none ->
//    fallback); the result .strip()'ed. TakeFirstFilter: the first response (one response per document here).
//  - api/metrics.py exact_match_hf_evaluate: each of regexes_to_ignore removed (re.sub) from prediction and reference
//    in order, then lower() when ignore_case, ASCII punctuation (string.punctuation) removed when ignore_punctuation,
//    then equality.
#pragma once
#include <string>
#include <vector>

#include "eval/py_regex.h"
#include "eval/task_spec.h"

namespace sft::eval {

class AnswerFilter {
 public:
  explicit AnswerFilter(const FilterSpec& spec);  // throws naming the filter when a regex does not compile
  std::string apply(const std::string& response) const;
  const std::string& name() const { return name_; }

 private:
  struct Step {
    FilterStep spec;
    std::vector<PyRegex> regex;  // one for Kind::Regex, none for TakeFirst
  };
  std::string name_;
  std::vector<Step> steps_;
};

class ExactMatch {
 public:
  explicit ExactMatch(const MetricSpec& spec);
  double score(const std::string& prediction, const std::string& reference) const;  // 1 or 0

 private:
  std::string normalise(std::string s) const;
  MetricSpec spec_;
  std::vector<PyRegex> ignore_;
};

// Python str.lower() (full Unicode case mapping, ICU root locale).
std::string py_lower(const std::string& s);

}  // namespace sft::eval
