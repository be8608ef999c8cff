// The bits of Python that lm-eval applies to rendered task templates and --gen_kwargs values, on UTF-8 text:
//  - ast.literal_eval for the literals a template can render (str(list) of strings/numbers, an int, a bool, None);
//    lm-eval renders `doc_to_choice: "{{choices.text}}"` to "['a', 'b']" and reads it back with literal_eval;
//  - str.isdigit on ASCII text (a rendered target "2" becomes the int 2 when the task has choices).
// Values are jinja::Value (the template layer's Python-like value), so a parsed list feeds templates unchanged.
#pragma once
#include <string>
#include <string_view>

#include "template/value.h"

namespace sft::eval {

// ast.literal_eval(text) for None, True, False, ints (arbitrary sign, no overflow), floats, str literals (single or
// double quotes, the escapes Python's repr writes plus \a \b \f \v \ooo \uXXXX \UXXXXXXXX), lists and tuples
// (nested up to 64 deep), surrounding whitespace allowed. Throws sft::Error("<what>: not a Python literal ...") on
// anything else (dicts, sets, expressions, names), naming `what`.
jinja::Value py_literal_eval(std::string_view text, const std::string& what);
// str.isdigit() for text of ASCII digits (non-empty); other Unicode digits are not treated as digits (lm-eval's
// literal_eval would reject them anyway).
bool py_isdigit_ascii(std::string_view text);

}  // namespace sft::eval
