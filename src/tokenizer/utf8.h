// UTF-8 helpers shared by the tokenizer: validation, lossy repair (the policy for invalid input), code point
// iteration, and the GPT-2 byte <-> unicode mapping that byte-level BPE vocabularies are written in.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace sft::tok::utf8 {

// Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 when the bytes there are not a complete,
// well-formed sequence (overlong forms, surrogates and code points above U+10FFFF are ill-formed).
size_t valid_sequence_length(std::string_view s, size_t i);

// Length of the "maximal subpart" of an ill-formed sequence at s[i] (Unicode ch.3, U+FFFD substitution best practice;
// what Python's errors="replace" and Rust's from_utf8_lossy use): at least 1.
size_t maximal_invalid_subpart(std::string_view s, size_t i);

bool is_valid(std::string_view s);

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

void append(std::string& out, uint32_t cp);

// GPT-2 bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in order.
struct ByteLevelTable {
  std::array<uint32_t, 256> byte_to_cp{};
  std::array<std::string, 256> byte_to_utf8{};  // the mapped char, encoded (1 or 2 bytes)
  std::array<int16_t, 512> cp_to_byte{};         // inverse; -1 where a code point < 512 is not a mapped char
};
const ByteLevelTable& byte_level_table();

}  // namespace sft::tok::utf8
