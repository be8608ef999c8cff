// util: bf16/f16 conversions (bit-exact rounding rules) and atomic file writes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <unistd.h>

#include "util/bf16.h"
#include "util/error.h"
#include "util/file_util.h"

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Reference: round-to-nearest-even computed with double arithmetic on the two bf16 neighbours.
uint16_t bf16_reference(float f) {
  uint32_t u = bits(f);
  uint16_t lo = static_cast<uint16_t>(u >> 16);
  uint16_t hi = static_cast<uint16_t>(lo + 1);
  double dlo = sft::bf16_to_float(lo), dhi = sft::bf16_to_float(hi), d = f;
  double a = std::fabs(d - dlo), b = std::fabs(dhi - d);
  if (a < b) return lo;
  if (b < a) return hi;
  return (lo & 1) ? hi : lo;
}

TEST(Bf16, RoundsToNearestEvenOnRandomFloats) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 200000; ++i) {
    float f = from_bits(any(rng) & 0xbf7fffffu);  // finite values (exponent < 0xff), below the overflow edge
    ASSERT_EQ(sft::float_to_bf16(f), bf16_reference(f)) << "input bits " << std::hex << bits(f);
  }
}

TEST(Bf16, TiesGoToEvenAndNaNStaysNaN) {
  EXPECT_EQ(sft::float_to_bf16(from_bits(0x3f808000u)), 0x3f80);  // tie, even below
  EXPECT_EQ(sft::float_to_bf16(from_bits(0x3f818000u)), 0x3f82);  // tie, odd below -> up
  EXPECT_TRUE(std::isnan(sft::bf16_to_float(sft::float_to_bf16(std::nanf("")))));
  EXPECT_EQ(sft::bf16_to_float(sft::float_to_bf16(1.5f)), 1.5f);
}

TEST(F16, RoundTripsEveryHalfValue) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    float f = sft::f16_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(sft::float_to_f16(f), h) << "half bits " << std::hex << h;
  }
  EXPECT_EQ(sft::f16_to_float(0x3c00), 1.0f);
  EXPECT_EQ(sft::f16_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(sft::float_to_f16(65520.0f), 0x7c00);                 // rounds to +inf
}

TEST(AtomicWrite, ReplacesWholeFileAndLeavesNoTempOnFailure) {
  auto dir = sft::fs::temp_directory_path() / ("sft_util_test_" + std::to_string(::getpid()));
  sft::fs::create_directories(dir);
  auto p = dir / "a.txt";
  sft::write_file_atomic(p, "first");
  sft::write_file_atomic(p, "second");
  EXPECT_EQ(sft::read_file(p), "second");
  EXPECT_THROW(sft::write_file_atomic_fd(p, [](int) { throw sft::Error("boom"); }), sft::Error);
  EXPECT_EQ(sft::read_file(p), "second");
  int entries = 0;
  for (auto& e : sft::fs::directory_iterator(dir)) { (void)e; ++entries; }
  EXPECT_EQ(entries, 1);  // the failed write's temp file is gone
  sft::MappedFile m(p);
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(std::memcmp(m.data(), "second", 6), 0);
  EXPECT_THROW(sft::read_file(dir / "missing"), sft::Error);
  sft::fs::remove_all(dir);
}

}  // namespace
