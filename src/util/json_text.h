// JSON string literals written by hand (streams of rows, template filters) where building an nlohmann::json value
// per string would cost more than the text itself.
#pragma once
#include <string>
#include <string_view>

namespace sft::json_text {

// Appends s as a quoted JSON string the way Python's json.dumps(s, ensure_ascii=False) writes it: ", \ and the
// control characters escaped (\n \r \t \b \f by name, the others as \u00XX), every other byte copied, so valid
// UTF-8 stays readable text.
void append_quoted(std::string& out, std::string_view s);

inline std::string quoted(std::string_view s) {
  std::string out;
  append_quoted(out, s);
  return out;
}

}  // namespace sft::json_text
