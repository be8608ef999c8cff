// lm-eval's --gen_kwargs for generate_until tasks.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sft::eval {

// lm-eval's --gen_kwargs (cli/utils.py MergeDictAction): a JSON object, or key=value pairs split on top-level commas
// (and across several values), each value read as lm-eval's handle_cli_value_string does (true/false, digits -> int,
// float, a Python literal such as ["\n\n", "Question:"], else the text itself). Generation is greedy: do_sample must
// be false or absent with temperature 0; other keys are refused rather than ignored.
struct GenKwargs {
  std::optional<int64_t> max_gen_toks;  // max_gen_toks > max_new_tokens > max_tokens > max_completion_tokens
  std::optional<std::vector<std::string>> until;
};
GenKwargs parse_gen_kwargs(const std::vector<std::string>& values);

}  // namespace sft::eval
