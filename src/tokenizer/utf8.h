// The GPT-2 byte <-> unicode mapping that byte-level BPE vocabularies are written in, next to the project's UTF-8
// codec (util/utf8.h) under the name the tokenizer uses.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "util/utf8.h"

namespace sft::tok::utf8 {

// The codec itself is util/utf8.h (one decoder for the whole project); the tokenizer reaches it as tok::utf8::.
using sft::utf8::append;
using sft::utf8::decode_at;
using sft::utf8::expected_length;
using sft::utf8::is_valid;
using sft::utf8::maximal_invalid_subpart;
using sft::utf8::repair_lossy;
using sft::utf8::valid_sequence_length;

// GPT-2 bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100.. in order.
struct ByteLevelTable {
  std::array<uint32_t, 256> byte_to_cp{};
  std::array<std::string, 256> byte_to_utf8{};  // the mapped char, encoded (1 or 2 bytes)
  std::array<int16_t, 512> cp_to_byte{};         // inverse; -1 where a code point < 512 is not a mapped char
};
const ByteLevelTable& byte_level_table();

}  // namespace sft::tok::utf8
