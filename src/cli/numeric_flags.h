// Numeric flag values of `sft eval`, `sft generate` and `sft chat`, parsed here instead of by CLI11: a bad value is the
// usage error every other bad input gets — one line "sft: error: --flag: expected <what>, got '<text>'", exit code 1
// (CLI11's own conversion/validation errors exit 104/105 with its two-line text) — and it is reported before any model
// is loaded. `sft train` parses its flags through its settings table (train/train_settings.cpp), with the same message.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace sft::cli {

// A decimal integer (optional sign, nothing else: no spaces, no exponent, no fraction) in [lo, hi]; `expected` says
// what the flag wants, e.g. "an integer from 2 to 16777216 (context tokens)".
int64_t parse_int_flag(std::string_view flag, const std::string& text, int64_t lo, int64_t hi,
                       std::string_view expected);
// A decimal integer in [0, 2^64 - 1] (seeds).
uint64_t parse_uint64_flag(std::string_view flag, const std::string& text, std::string_view expected);
// A finite number (strtod syntax, nothing after it) in the range; lo_open / hi_open exclude that bound.
double parse_real_flag(std::string_view flag, const std::string& text, double lo, bool lo_open, double hi, bool hi_open,
                       std::string_view expected);

}  // namespace sft::cli
