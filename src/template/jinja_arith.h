// Python's arithmetic for the template's numbers (internal to src/template): + - * / // % ** ~ and unary minus on
// int (64-bit), float and bool as jinja2 evaluates them in Python, plus str/list concatenation and repetition.
//
// Integers: Python's are unbounded, ours are 64-bit. A result outside int64 is never wrapped (that would be undefined
// behaviour in C++ and a silently wrong number): it is an error saying which operation overflowed. No chat template
// computes such numbers; `2 ** 64`, `9223372036854775807 + 1` and `-9223372036854775808 // -1` are the probes.
// Floats follow Python too: division by zero is an error (not inf), `//` and `%` use Python's floor semantics,
// `**` of a finite base and exponent that overflows is an error (Python's OverflowError) and a negative base with a
// fractional exponent is refused (Python 3 would return a complex number).
// Every function throws sft::Error without the template line; the renderer adds it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "template/value.h"

namespace sft::jinja::arith {

// a <op> b for op in + - * / // % ** ~ (and/or are short-circuited by the renderer, comparisons elsewhere).
Value binary(const std::string& op, const Value& a, const Value& b);
Value negate(const Value& v);    // unary -
Value absolute(const Value& v);  // the abs filter

// int(x) of a float: truncation toward zero; NaN has no integer value (nullopt); +-inf and values outside int64
// throw (Python's OverflowError / a big integer).
std::optional<int64_t> float_to_int(double d);
// Python int(s) (base 10: surrounding whitespace, a sign, digits with single underscores between them); nullopt when
// s is not such a literal (Python's ValueError); throws when it is one but does not fit in 64 bits.
std::optional<int64_t> parse_int(std::string_view s);
// Python float(s): whitespace, sign, decimal digits with underscores, exponent, inf/infinity/nan in any case; beyond
// double's range gives +-inf or 0 as Python does. nullopt when s is not such a literal.
std::optional<double> parse_float(std::string_view s);

}  // namespace sft::jinja::arith
