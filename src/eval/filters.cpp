#include "eval/filters.h"

#include <unicode/locid.h>
#include <unicode/unistr.h>

#include "eval/py_text.h"
#include "util/error.h"

namespace sft::eval {

AnswerFilter::AnswerFilter(const FilterSpec& spec) : name_(spec.name) {
  for (const auto& st : spec.steps) {
    Step s{st, {}};
    if (st.kind == FilterStep::Kind::Regex) s.regex.emplace_back(st.pattern, "filter '" + spec.name + "'");
    steps_.push_back(std::move(s));
  }
}

std::string AnswerFilter::apply(const std::string& response) const {
  std::string r = response;
  for (const auto& s : steps_) {
    if (s.spec.kind == FilterStep::Kind::TakeFirst) continue;  // one response per document: take_first keeps it
    const auto matches = s.regex[0].findall(r);
    if (matches.empty()) {
      r = s.spec.fallback;
      continue;
    }
    const int64_t n = static_cast<int64_t>(matches.size());
    const int64_t i = s.spec.group_select < 0 ? n + s.spec.group_select : s.spec.group_select;
    SFT_CHECK(i >= 0 && i < n, "filter '", name_, "': group_select ", s.spec.group_select, " outside the ", n,
              " matches (lm-eval raises IndexError here)");
    const auto& m = matches[static_cast<size_t>(i)];
    std::string picked;
    bool found = false;
    if (m.size() == 1) {  // findall returns the string itself for 0 or 1 group
      picked = m[0];
      found = true;
    } else {
      for (const auto& g : m)
        if (!g.empty()) {
          picked = g;
          found = true;
          break;
        }
    }
    r = found ? py_strip(picked) : s.spec.fallback;
  }
  return r;
}

std::string py_lower(const std::string& s) {
  std::string out;
  icu::UnicodeString::fromUTF8(s).toLower(icu::Locale::getRoot()).toUTF8String(out);
  return out;
}

ExactMatch::ExactMatch(const MetricSpec& spec) : spec_(spec) {
  for (const auto& r : spec.regexes_to_ignore) ignore_.emplace_back(r, "metric '" + spec.name + "' regexes_to_ignore");
}

std::string ExactMatch::normalise(std::string s) const {
  for (const auto& r : ignore_) s = r.sub(s, "");
  if (spec_.ignore_case) s = py_lower(s);
  if (spec_.ignore_punctuation) {
    static const std::string punct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";  // string.punctuation
    std::string kept;
    for (char c : s)
      if (punct.find(c) == std::string::npos) kept += c;
    s = std::move(kept);
  }
  return s;
}

double ExactMatch::score(const std::string& prediction, const std::string& reference) const {
  return normalise(prediction) == normalise(reference) ? 1.0 : 0.0;
}

}  // namespace sft::eval
