// The 57 MMLU subjects and the category lm-eval 0.4.13 files each under (tasks/mmlu/default/mmlu_<subject>.yaml tags
// mmlu_<category>_tasks; groups mmlu_stem / mmlu_other / mmlu_social_sciences / mmlu_humanities).
#pragma once
#include <string>
#include <vector>

namespace sft::eval {

struct MmluSubject {
  const char* name;      // hendrycks file stem, e.g. "high_school_physics"
  const char* category;  // "stem" | "other" | "social_sciences" | "humanities"
};

const std::vector<MmluSubject>& mmlu_subjects();  // alphabetical, as lm-eval lists them
const MmluSubject* find_mmlu_subject(const std::string& name);  // nullptr when unknown
// lm-eval's group aliases for the table: "stem", "other", "social sciences", "humanities".
std::string mmlu_category_alias(const std::string& category);

}  // namespace sft::eval
