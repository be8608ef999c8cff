// model/weight_check.h's non-finite scan, on the stored bits of every float dtype safetensors holds: random finite
// values (never zeros) pass, the largest finite value of each dtype passes, a planted NaN / +inf / -inf is found at
// exactly its index and named; integer dtypes hold no non-finite value whatever their bits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "model/weight_check.h"
#include "util/bf16.h"
#include "util/error.h"

namespace sft::model {
namespace {

std::vector<uint8_t> bytes_of(io::DType dt, const std::vector<double>& v) {
  std::vector<uint8_t> out(v.size() * io::dtype_size(dt));
  for (size_t i = 0; i < v.size(); ++i) {
    uint8_t* p = out.data() + i * io::dtype_size(dt);
    if (dt == io::DType::F32) {
      const float f = static_cast<float>(v[i]);
      std::memcpy(p, &f, 4);
    } else if (dt == io::DType::F64) {
      std::memcpy(p, &v[i], 8);
    } else if (dt == io::DType::BF16) {
      const uint16_t b = float_to_bf16(static_cast<float>(v[i]));
      std::memcpy(p, &b, 2);
    } else {  // F16 by hand: sign, 5-bit exponent, 10-bit mantissa (values here are normal f16 numbers or inf/nan)
      const double a = std::fabs(v[i]);
      uint16_t h = std::signbit(v[i]) ? 0x8000 : 0;
      if (std::isnan(v[i])) h |= 0x7E00;
      else if (std::isinf(v[i])) h |= 0x7C00;
      else {
        int e = 0;
        const double m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
        h |= static_cast<uint16_t>((e - 1 + 15) << 10) | static_cast<uint16_t>((m * 2 - 1) * 1024);
      }
      std::memcpy(p, &h, 2);
    }
  }
  return out;
}

TEST(NonFinite, FoundAtItsIndexInEveryFloatDtype) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(0.01, 4.0);
  for (io::DType dt : {io::DType::F32, io::DType::BF16, io::DType::F16, io::DType::F64}) {
    std::vector<double> v(1000);
    for (auto& x : v) x = (rng() & 1 ? 1 : -1) * u(rng);
    EXPECT_EQ(first_nonfinite(dt, bytes_of(dt, v).data(), 1000), -1) << io::dtype_name(dt);
    const struct {
      double value;
      const char* name;
    } bad[] = {{std::nan(""), "NaN"}, {HUGE_VAL, "inf"}, {-HUGE_VAL, "-inf"}};
    for (const auto& b : bad) {
      const size_t at = rng() % 1000;
      auto w = v;
      w[at] = b.value;
      const auto bytes = bytes_of(dt, w);
      EXPECT_EQ(first_nonfinite(dt, bytes.data(), 1000), static_cast<int64_t>(at)) << io::dtype_name(dt) << b.name;
      EXPECT_EQ(nonfinite_name(dt, bytes.data(), static_cast<int64_t>(at)), b.name) << io::dtype_name(dt);
      EXPECT_EQ(first_nonfinite(dt, bytes.data(), static_cast<int64_t>(at)), -1);  // only the first `at` elements
    }
  }
}

TEST(NonFinite, LargestFiniteValuesAndIntegersPass) {
  const uint32_t f32_max = 0x7F7FFFFF;
  const uint16_t bf16_max = 0x7F7F, f16_max = 0x7BFF;
  const uint64_t f64_max = 0x7FEFFFFFFFFFFFFFull;
  EXPECT_EQ(first_nonfinite(io::DType::F32, reinterpret_cast<const uint8_t*>(&f32_max), 1), -1);
  EXPECT_EQ(first_nonfinite(io::DType::BF16, reinterpret_cast<const uint8_t*>(&bf16_max), 1), -1);
  EXPECT_EQ(first_nonfinite(io::DType::F16, reinterpret_cast<const uint8_t*>(&f16_max), 1), -1);
  EXPECT_EQ(first_nonfinite(io::DType::F64, reinterpret_cast<const uint8_t*>(&f64_max), 1), -1);
  const std::vector<uint8_t> ones(64, 0xFF);
  for (io::DType dt : {io::DType::I64, io::DType::I32, io::DType::U8, io::DType::I16, io::DType::I8})
    EXPECT_EQ(first_nonfinite(dt, ones.data(), 8), -1);
}

TEST(NonFinite, ValuesInMemoryNameWhereAndTheFlag) {
  std::vector<float> v(10, 0.5f);
  EXPECT_NO_THROW(check_finite_values(v.data(), 10, "merged tensor \"w\""));
  v[3] = -std::numeric_limits<float>::infinity();
  try {
    check_finite_values(v.data(), 10, "the merged tensor \"w\"");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the merged tensor \"w\" holds -inf at element 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--allow_nonfinite_weights"), std::string::npos);
  }
}

}  // namespace
}  // namespace sft::model
