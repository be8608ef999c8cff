// The project's one UTF-8 codec: validation with Python's/Unicode's strictness (overlong forms, UTF-16 surrogates
// and code points above U+10FFFF are ill-formed, as bytes.decode("utf-8") says), lossy repair, code point decoding,
// encoding and counting. Used by the tokenizer, the data readers and eval's Python-string semantics.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace sft::utf8 {

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 when the bytes there are not a complete,
// well-formed sequence.
size_t valid_sequence_length(std::string_view s, size_t i);

// Length of the "maximal subpart" of an ill-formed sequence at s[i] (Unicode ch.3, U+FFFD substitution best practice;
// what Python's errors="replace" and Rust's from_utf8_lossy use): at least 1.
size_t maximal_invalid_subpart(std::string_view s, size_t i);

// Length a well-formed sequence starting with this lead byte has (2..4), or 1 for ASCII and bytes that cannot lead one.
inline size_t expected_length(uint8_t lead) {
  return lead >= 0xF0 && lead <= 0xF4 ? 4 : lead >= 0xE0 && lead <= 0xEF ? 3 : lead >= 0xC2 && lead <= 0xDF ? 2 : 1;
}

bool is_valid(std::string_view s);
// Byte offset of the first ill-formed sequence, or -1 when s is valid UTF-8.
int64_t find_invalid(std::string_view s);

// Every ill-formed subsequence replaced by U+FFFD (EF BF BD), exactly like bytes.decode("utf-8", "replace").
std::string repair_lossy(std::string_view s);

// Decodes the code point at s[i] of VALID UTF-8; sets len to its byte length.
inline uint32_t decode_at(std::string_view s, size_t i, size_t& len) {
  const auto b0 = static_cast<uint8_t>(s[i]);
  if (b0 < 0x80) { len = 1; return b0; }
  if (b0 < 0xE0) { len = 2; return ((b0 & 0x1Fu) << 6) | (static_cast<uint8_t>(s[i + 1]) & 0x3Fu); }
  if (b0 < 0xF0) {
    len = 3;
    return ((b0 & 0x0Fu) << 12) | ((static_cast<uint8_t>(s[i + 1]) & 0x3Fu) << 6) | (static_cast<uint8_t>(s[i + 2]) & 0x3Fu);
  }
  len = 4;
  return ((b0 & 0x07u) << 18) | ((static_cast<uint8_t>(s[i + 1]) & 0x3Fu) << 12) |
         ((static_cast<uint8_t>(s[i + 2]) & 0x3Fu) << 6) | (static_cast<uint8_t>(s[i + 3]) & 0x3Fu);
}

// Decodes the code point at s[i] of ANY bytes: an ill-formed byte decodes as itself (one code point per byte), so
// callers that must not fail (string helpers on already-validated text) never lose or merge bytes.
inline uint32_t decode_lenient(std::string_view s, size_t i, size_t& len) {
  len = valid_sequence_length(s, i);
  if (len) return decode_at(s, i, len);
  len = 1;
  return static_cast<uint8_t>(s[i]);
}

void append(std::string& out, uint32_t cp);

// Number of code points of valid UTF-8 (Python's len(str)); ill-formed bytes count one each.
int64_t count_code_points(std::string_view s);

}  // namespace sft::utf8
