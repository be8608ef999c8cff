// bfloat16 <-> float conversion with round-to-nearest-even, bit-exact with torch's float->bfloat16 cast
// (NaN stays NaN). Used by io (BF16 tensors), the CPU backend (bf16 compute mode) and tests.
#pragma once
#include <cstdint>
#include <cstring>

namespace sft {

inline float bf16_to_float(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

// IEEE half <-> float (for F16 safetensors).
float f16_to_float(uint16_t h);
uint16_t float_to_f16(float f);

}  // namespace sft
