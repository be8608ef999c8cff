// Python str semantics that lm-eval's prompt code relies on, reproduced on UTF-8 strings so that prompts are
// byte-identical to lm-evaluation-harness: str.strip/rstrip (Unicode whitespace), str.capitalize (title-case first
// code point, lowercase the rest), len() in code points (acc_norm divides by it), and HellaSwag's preprocess().
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace sft::eval {

bool py_isspace(char32_t c);                      // Python str.isspace() for one code point
std::string py_strip(std::string_view s);         // str.strip()
std::string py_rstrip(std::string_view s);        // str.rstrip()
std::string py_capitalize(std::string_view s);    // str.capitalize() (per-code-point case mapping, see .cpp)
int64_t py_len(std::string_view s);               // len(str): number of code points of UTF-8 text
std::string replace_all(std::string s, std::string_view from, std::string_view to);  // str.replace
// lm-eval tasks/hellaswag/utils.py preprocess(): strip, " [title]" -> ". ", re.sub("\\[.*?\\]", ""), "  " -> " ".
std::string hellaswag_preprocess(std::string_view text);

}  // namespace sft::eval
