// Explicit SIMD helpers for the fast CPU kernels, written with GCC vector extensions so that one source serves every
// kernel variant (cpu_variant.h): the vector width follows the variant (8 floats generic and AVX2, 16 AVX-512)
// and the compiler emits the variant's instructions. Why not plain loops: GCC 12 leaves loops that call an inlined
// exp with clamps as scalar branches (measured: swiglu and the softmax ran scalar), so the hot exp loops are spelled
// out here. Included INSIDE a variant's target region and namespace (after SFT_CPU_TARGET_BEGIN), never elsewhere.
// vexp / vtanh match fast_exp / fast_tanh (fast_math.h) operation for operation, so a vector lane and the scalar tail
// agree to the bit up to FMA contraction.
// The includer provides <cstdint> and <cstring> (this header sits inside a namespace).
#pragma once

#ifndef SFT_CPU_VEC_FLOATS
#define SFT_CPU_VEC_FLOATS 8  // generic: two SSE2 registers per vector (or one AVX register with SFT_NATIVE)
#endif

constexpr int kVec = SFT_CPU_VEC_FLOATS;
typedef float vfloat __attribute__((vector_size(kVec * 4), aligned(4), may_alias));
typedef int32_t vint __attribute__((vector_size(kVec * 4), aligned(4), may_alias));

// Loads and stores through the may_alias, 4-byte-aligned vector type: one unaligned vector move. (The memcpy form
// compiled, in the AVX2 variant, to two 16-byte stores to the stack and a 32-byte reload per load, and a stack
// round trip per store — a store-forwarding stall each: SwiGLU ran at 0.35 G elements/s in L1, objdump.)
static inline vfloat vload(const float* p) { return *reinterpret_cast<const vfloat*>(p); }
static inline void vstore(float* p, vfloat v) { *reinterpret_cast<vfloat*>(p) = v; }
static inline vfloat vsplat(float x) { return vfloat{} + x; }
static inline vfloat vmax(vfloat a, vfloat b) { return a > b ? a : b; }
static inline float hmax(vfloat v) {
  float m = v[0];
  for (int i = 1; i < kVec; ++i) m = v[i] > m ? v[i] : m;
  return m;
}
static inline float hsum(vfloat v) {
  float s = 0;
  for (int i = 0; i < kVec; ++i) s += v[i];
  return s;
}

// Cephes expf, lane-wise (see fast_math.h for the scalar twin and its accuracy).
static inline vfloat vexp(vfloat x) {
  const vfloat hi = vsplat(88.3762626647949f), lo = vsplat(-87.3365447504019f);
  const vint underflow = x < lo;
  x = x > hi ? hi : x;
  x = x < lo ? lo : x;
  vfloat fx = x * 1.44269504088896341f + 0.5f;
  const vfloat fl = __builtin_convertvector(__builtin_convertvector(fx, vint), vfloat);
  fx = fl > fx ? fl - 1.0f : fl;  // floor
  x -= fx * 0.693359375f;
  x -= fx * -2.12194440e-4f;
  const vfloat z = x * x;
  vfloat y = vsplat(1.9875691500e-4f);
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * z + x + 1.0f;
  const vint n = __builtin_convertvector(fx, vint);
  const vfloat pow2n = reinterpret_cast<vfloat>((n + 127) << 23);
  const vfloat r = y * pow2n;
  return underflow ? vfloat{} : r;
}

// Cephes tanhf, lane-wise (fast_tanh in fast_math.h is the scalar twin).
static inline vfloat vtanh(vfloat x) {
  const vfloat a = x < 0.0f ? -x : x;
  const vfloat z = x * x;
  const vfloat poly =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) * z -
       3.33332819422e-1f) * z * x + x;
  const vfloat big = 1.0f - 2.0f / (vexp(2.0f * a) + 1.0f);
  return a < 0.625f ? poly : (x < 0.0f ? -big : big);
}
