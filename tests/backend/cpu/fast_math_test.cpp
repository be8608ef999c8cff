// The CPU backend's vectorisable exp (fast_math.h) against std::exp in double over the range the kernels use.
#include <gtest/gtest.h>

#include <cmath>

#include "backend/cpu/fast_math.h"

namespace sft::backend {
namespace {

TEST(FastMath, ExpWithinFewUlpOverTheUsedRange) {
  double worst = 0;
  for (float x = -100.0f; x < 88.0f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    const double got = cpu::fast_exp(x);
    if (want < 1e-37) {
      EXPECT_LT(got, 1e-37);  // underflow region: 0 or a denormal, never garbage
      continue;
    }
    worst = std::max(worst, std::fabs(got - want) / want);
  }
  EXPECT_LT(worst, 3e-7);  // ~2.5 ulp of fp32
}

}  // namespace
}  // namespace sft::backend
