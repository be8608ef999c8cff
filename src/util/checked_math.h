// 64-bit size arithmetic that cannot overflow silently: tensor sizes, parameter counts and memory estimates come from
// files and flags, so a product that does not fit is a bad input (an sft::Error naming what was computed), never
// undefined behaviour.
#pragma once
#include <cstdint>
#include <string_view>

#include "util/error.h"

namespace sft {

inline int64_t checked_mul(int64_t a, int64_t b, std::string_view what) {
  int64_t r = 0;
  SFT_CHECK(!__builtin_mul_overflow(a, b, &r), what, ": ", a, " x ", b, " does not fit in 64-bit arithmetic");
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, std::string_view what) {
  int64_t r = 0;
  SFT_CHECK(!__builtin_add_overflow(a, b, &r), what, ": ", a, " + ", b, " does not fit in 64-bit arithmetic");
  return r;
}

}  // namespace sft
