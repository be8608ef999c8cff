// Integers read out of parsed JSON (nlohmann). get<int>() on a JSON float static_casts it — undefined behaviour when
// the value does not fit (an id of 1e300 in tokenizer.json) — and a wide integer is truncated silently; this checks
// the JSON type and the range and names the value on failure.
#pragma once
#include <cstdint>
#include <limits>
#include <string_view>

#include "util/error.h"

namespace sft {

template <class Json>
int64_t json_integer(const Json& v, std::string_view what, int64_t lo = std::numeric_limits<int64_t>::min(),
                     int64_t hi = std::numeric_limits<int64_t>::max()) {
  SFT_CHECK(v.is_number_integer(), what, ": expected an integer, got ", v.dump());
  bool in_range = false;
  int64_t x = 0;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.template get<uint64_t>();
    if (hi >= 0 && u <= static_cast<uint64_t>(hi)) {
      x = static_cast<int64_t>(u);
      in_range = x >= lo;
    }
  } else {
    x = v.template get<int64_t>();
    in_range = x >= lo && x <= hi;
  }
  SFT_CHECK(in_range, what, ": ", v.dump(), " is out of range [", lo, ", ", hi, "]");
  return x;
}

}  // namespace sft
