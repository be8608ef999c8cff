// ggml block codecs, written to give the same bits as gguf-py (gguf/quants.py), the reference the tests compare
// with: every step is one float32 operation in numpy's order. This file is compiled with -ffp-contract=off
// (src/io/CMakeLists.txt) so that `d * q + m` stays a multiply and an add, as numpy computes it, never a fused FMA.
#include <cmath>
#include <cstring>

#include "io/gguf.h"
#include "util/bf16.h"
#include "util/error.h"

namespace sft::io {

namespace {

constexpr int kQK = 32;  // block size of Q8_0, Q4_0, Q4_1

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

float load_f16(const uint8_t* p) { return f16_to_float(load_u16(p)); }

// numpy's np_roundf in gguf-py: round half away from zero, as C's roundf.
float round_half_away(float x) { return std::roundf(x); }

}  // namespace

void quantize_q8_0(const float* x, int64_t n, uint8_t* out) {
  SFT_CHECK(n % kQK == 0, "q8_0: ", n, " values are not a multiple of the block size 32");
  for (int64_t b = 0; b < n / kQK; ++b) {
    const float* xb = x + b * kQK;
    uint8_t* ob = out + b * 34;
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::fmax(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    const uint16_t dh = float_to_f16(d);
    std::memcpy(ob, &dh, 2);
    for (int j = 0; j < kQK; ++j) {
      const float q = round_half_away(xb[j] * id);
      ob[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(q));
    }
  }
}

void dequantize(GgmlType type, const uint8_t* src, int64_t n, float* dst) {
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t k = 0; k < n; ++k) dst[k] = f16_to_float(load_u16(src + 2 * k));
      return;
    case GgmlType::BF16:
      for (int64_t k = 0; k < n; ++k) dst[k] = bf16_to_float(load_u16(src + 2 * k));
      return;
    case GgmlType::Q8_0:
      for (int64_t b = 0; b < n / kQK; ++b) {
        const uint8_t* p = src + b * 34;
        const float d = load_f16(p);
        for (int j = 0; j < kQK; ++j) dst[b * kQK + j] = static_cast<float>(static_cast<int8_t>(p[2 + j])) * d;
      }
      return;
    case GgmlType::Q4_0:  // d f16, 16 bytes: low nibbles are elements 0..15, high nibbles 16..31; x = d * (q - 8)
      for (int64_t b = 0; b < n / kQK; ++b) {
        const uint8_t* p = src + b * 18;
        const float d = load_f16(p);
        for (int j = 0; j < kQK / 2; ++j) {
          dst[b * kQK + j] = d * static_cast<float>((p[2 + j] & 0x0F) - 8);
          dst[b * kQK + j + kQK / 2] = d * static_cast<float>((p[2 + j] >> 4) - 8);
        }
      }
      return;
    case GgmlType::Q4_1:  // d f16, m f16, 16 bytes of nibbles as Q4_0; x = d * q + m
      for (int64_t b = 0; b < n / kQK; ++b) {
        const uint8_t* p = src + b * 20;
        const float d = load_f16(p), m = load_f16(p + 2);
        for (int j = 0; j < kQK / 2; ++j) {
          dst[b * kQK + j] = d * static_cast<float>(p[4 + j] & 0x0F) + m;
          dst[b * kQK + j + kQK / 2] = d * static_cast<float>(p[4 + j] >> 4) + m;
        }
      }
      return;
    default:
      throw Error(std::string("cannot decode ggml type ") + ggml_type_name(type) +
                  " (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)");
  }
}

}  // namespace sft::io
