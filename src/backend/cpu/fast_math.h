// Vectorisable exp and tanh for the fast CPU kernels (softmax over the vocabulary, SwiGLU, GeGLU, soft-capping):
// glibc's expf/tanhf are scalar calls the compiler cannot vectorise without -ffast-math, and the LM-head softmax alone
// needs 2 * tokens * V of them per step.
// Cephes expf: range reduction x = n ln2 + r, degree-6 polynomial on r, 2^n through the exponent bits. Accuracy ~1-2
// ulp over the range used (checked against the reference kernels, which use std::exp in double).
// Cephes tanhf: an odd polynomial below |x| 0.625 (where 1 - 2/(e^2x + 1) would lose the small result to
// cancellation), 1 - 2/(e^2|x| + 1) with fast_exp above, the sign restored. ~2-3 ulp.
#pragma once
#include <bit>
#include <cstdint>

namespace sft::backend::cpu {

#pragma omp declare simd notinbranch
inline float fast_exp(float x) {
  const float hi = 88.3762626647949f, lo = -87.3365447504019f;
  const bool underflow = x < lo;
  x = x > hi ? hi : (x < lo ? lo : x);
  float fx = x * 1.44269504088896341f + 0.5f;
  const float fl = static_cast<float>(static_cast<int32_t>(fx));
  fx = fl > fx ? fl - 1.0f : fl;  // floor
  x -= fx * 0.693359375f;
  x -= fx * -2.12194440e-4f;
  const float z = x * x;
  float y = 1.9875691500e-4f;
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * z + x + 1.0f;
  const int32_t n = static_cast<int32_t>(fx);
  const float pow2n = std::bit_cast<float>((n + 127) << 23);
  return underflow ? 0.0f : y * pow2n;
}

#pragma omp declare simd notinbranch
inline float fast_tanh(float x) {
  const float a = x < 0 ? -x : x;
  const float z = x * x;
  const float poly =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
       3.33332819422e-1f) * z * x + x;
  const float big = 1.0f - 2.0f / (fast_exp(2.0f * a) + 1.0f);
  return a < 0.625f ? poly : (x < 0 ? -big : big);
}

}  // namespace sft::backend::cpu
