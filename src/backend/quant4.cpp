// bitsandbytes' 4-bit format on the host: code books, the load-time quantiser, dequantisation (see quant4.h).
#include "backend/quant4.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "util/bf16.h"
#include "util/error.h"

namespace sft::backend {

const char* weight_format_name(WeightFormat f) {
  switch (f) {
    case WeightFormat::F32: return "float32";
    case WeightFormat::BF16: return "bfloat16";
    case WeightFormat::NF4: return "nf4";
    case WeightFormat::FP4: return "fp4";
  }
  return "?";
}

namespace {

// bitsandbytes.functional.get_4bit_type("nf4") (the QLoRA paper's values, as fp32).
constexpr std::array<float, 16> kNF4 = {
    -0x1p+0f,       -0x1.647362p-1f, -0x1.0cd66p-1f, -0x1.94654p-2f,  -0x1.23449ap-2f, -0x1.7a6a7ep-3f,
    -0x1.74f0e2p-4f, 0.0f,           0x1.45f5fep-4f, 0x1.4995c6p-3f,  0x1.f809bap-3f,  0x1.5a0674p-2f,
    0x1.c3497p-2f,  0x1.200f56p-1f,  0x1.722766p-1f, 0x1p+0f};
// get_4bit_type("fp4") = {0, 0.0625, 8, 12, 4, 6, 2, 3, -0, ...} / 12 in fp32. Its index 8 is +0 there (a Python
// -0 integer) and -0.0f in libbitsandbytes_cpu's dequantisation table, which is what dequantisation uses here.
constexpr std::array<float, 16> kFP4 = {
    0.0f,  0x1.555556p-8f,  0x1.555556p-1f,  0x1p+0f,  0x1.555556p-2f,  0x1p-1f,  0x1.555556p-3f,  0x1p-2f,
    -0.0f, -0x1.555556p-8f, -0x1.555556p-1f, -0x1p+0f, -0x1.555556p-2f, -0x1p-1f, -0x1.555556p-3f, -0x1p-2f};
// bitsandbytes.functional.create_dynamic_map() (signed, max_exponent_bits 7, 8 bits), generated once from it; the
// test compares it element for element.
constexpr std::array<float, 256> kDynamic = {
    -0x1.fc6666p-1f, -0x1.f53334p-1f, -0x1.eep-1f, -0x1.e6ccccp-1f, -0x1.df999ap-1f, -0x1.d86666p-1f, -0x1.d13334p-1f, -0x1.cap-1f,
    -0x1.c2ccccp-1f, -0x1.bb999ap-1f, -0x1.b46666p-1f, -0x1.ad3334p-1f, -0x1.a6p-1f, -0x1.9eccccp-1f, -0x1.97999ap-1f, -0x1.906666p-1f,
    -0x1.893334p-1f, -0x1.82p-1f, -0x1.7accccp-1f, -0x1.73999ap-1f, -0x1.6c6668p-1f, -0x1.653334p-1f, -0x1.5ep-1f, -0x1.56ccccp-1f,
    -0x1.4f999ap-1f, -0x1.486668p-1f, -0x1.413334p-1f, -0x1.3ap-1f, -0x1.32ccccp-1f, -0x1.2b999ap-1f, -0x1.246668p-1f, -0x1.1d3334p-1f,
    -0x1.16p-1f, -0x1.0eccccp-1f, -0x1.079998p-1f, -0x1.006666p-1f, -0x1.f26664p-2f, -0x1.e4p-2f, -0x1.d59998p-2f, -0x1.c73334p-2f,
    -0x1.b8ccccp-2f, -0x1.aa6666p-2f, -0x1.9cp-2f, -0x1.8d9998p-2f, -0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626666p-2f, -0x1.54p-2f,
    -0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6668p-2f, -0x1.0cp-2f, -0x1.fb3332p-3f, -0x1.de6666p-3f, -0x1.c1999ap-3f,
    -0x1.a4ccccp-3f, -0x1.88p-3f, -0x1.6b3334p-3f, -0x1.4e6666p-3f, -0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.fp-4f, -0x1.b66668p-4f,
    -0x1.93d70ap-4f, -0x1.8851eep-4f, -0x1.7ccccep-4f, -0x1.7147aep-4f, -0x1.65c29p-4f, -0x1.5a3d7p-4f, -0x1.4eb854p-4f, -0x1.433334p-4f,
    -0x1.37ae14p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f, -0x1.09999ap-4f, -0x1.fc28f6p-5f, -0x1.e51ebap-5f, -0x1.ce147ap-5f,
    -0x1.b70a3ep-5f, -0x1.ap-5f, -0x1.88f5c2p-5f, -0x1.71eb86p-5f, -0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c29p-5f,
    -0x1.fd70a4p-6f, -0x1.cf5c2ap-6f, -0x1.a147aep-6f, -0x1.733334p-6f, -0x1.451ebap-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c29p-7f,
    -0x1.3e76c8p-7f, -0x1.2c083p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f, -0x1.e978d4p-8f, -0x1.c49ba6p-8f, -0x1.9fbe76p-8f, -0x1.7ae148p-8f,
    -0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f, -0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f,
    -0x1.eecbfep-11f, -0x1.b3d07cp-11f, -0x1.78d5p-11f, -0x1.3dd982p-11f, -0x1.02de02p-11f, -0x1.8fc506p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f, -0x1.040bfep-17f, -0x1.b43528p-19f, -0x1.27476ep-21f, 0.0f,
    0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f, 0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f,
    0x1.19ce0ap-12f, 0x1.8fc506p-12f, 0x1.02de02p-11f, 0x1.3dd982p-11f, 0x1.78d5p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f,
    0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f, 0x1.0c49bap-8f, 0x1.3126e8p-8f, 0x1.56041ap-8f, 0x1.7ae148p-8f,
    0x1.9fbe76p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f, 0x1.19999ap-7f, 0x1.2c083p-7f, 0x1.3e76c8p-7f, 0x1.75c29p-7f,
    0x1.d1eb86p-7f, 0x1.170a3ep-6f, 0x1.451ebap-6f, 0x1.733334p-6f, 0x1.a147aep-6f, 0x1.cf5c2ap-6f, 0x1.fd70a4p-6f, 0x1.15c29p-5f,
    0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb86p-5f, 0x1.88f5c2p-5f, 0x1.ap-5f, 0x1.b70a3ep-5f, 0x1.ce147ap-5f,
    0x1.e51ebap-5f, 0x1.fc28f6p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f, 0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae14p-4f, 0x1.433334p-4f,
    0x1.4eb854p-4f, 0x1.5a3d7p-4f, 0x1.65c29p-4f, 0x1.7147aep-4f, 0x1.7ccccep-4f, 0x1.8851eep-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f,
    0x1.fp-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f, 0x1.6b3334p-3f, 0x1.88p-3f, 0x1.a4ccccp-3f, 0x1.c1999ap-3f,
    0x1.de6666p-3f, 0x1.fb3332p-3f, 0x1.0cp-2f, 0x1.1a6668p-2f, 0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.54p-2f,
    0x1.626666p-2f, 0x1.70ccccp-2f, 0x1.7f3334p-2f, 0x1.8d9998p-2f, 0x1.9cp-2f, 0x1.aa6666p-2f, 0x1.b8ccccp-2f, 0x1.c73334p-2f,
    0x1.d59998p-2f, 0x1.e4p-2f, 0x1.f26664p-2f, 0x1.006666p-1f, 0x1.079998p-1f, 0x1.0eccccp-1f, 0x1.16p-1f, 0x1.1d3334p-1f,
    0x1.246668p-1f, 0x1.2b999ap-1f, 0x1.32ccccp-1f, 0x1.3ap-1f, 0x1.413334p-1f, 0x1.486668p-1f, 0x1.4f999ap-1f, 0x1.56ccccp-1f,
    0x1.5ep-1f, 0x1.653334p-1f, 0x1.6c6668p-1f, 0x1.73999ap-1f, 0x1.7accccp-1f, 0x1.82p-1f, 0x1.893334p-1f, 0x1.906666p-1f,
    0x1.97999ap-1f, 0x1.9eccccp-1f, 0x1.a6p-1f, 0x1.ad3334p-1f, 0x1.b46666p-1f, 0x1.bb999ap-1f, 0x1.c2ccccp-1f, 0x1.cap-1f,
    0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df999ap-1f, 0x1.e6ccccp-1f, 0x1.eep-1f, 0x1.f53334p-1f, 0x1.fc6666p-1f, 0x1p+0f,
};

// The quantiser's view of a 4-bit code book: torch.bucketize(right=False) over the midpoints of the sorted values (the
// number of midpoints below a value picks its sorted code).
struct Bucketizer {
  std::array<float, 15> bounds;
  std::array<uint8_t, 16> index_of_sorted;  // sorted position -> 4-bit code (bitsandbytes' argsort order)
};

Bucketizer make_bucketizer(WeightFormat f) {
  Bucketizer b;
  // torch.argsort of the code book as bitsandbytes 0.50.2 caches it (_get_4bit_quantize_bounds); FP4's two zeros
  // (indices 0 and 8) come out in this order, so values in (0, midpoint] get index 8.
  const std::array<uint8_t, 16> fp4_order = {11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3};
  for (int i = 0; i < 16; ++i) b.index_of_sorted[i] = f == WeightFormat::NF4 ? static_cast<uint8_t>(i) : fp4_order[i];
  const std::array<float, 16>& code = quant4_code(f);
  for (int i = 0; i < 15; ++i)
    b.bounds[i] = (code[b.index_of_sorted[i]] + code[b.index_of_sorted[i + 1]]) / 2.0f;
  return b;
}

// libbitsandbytes_cpu's 65536-entry table of the 8-bit quantiser for the dynamic map (see quant4.h).
const std::vector<uint8_t>& dynamic_lut() {
  static const std::vector<uint8_t> lut = [] {
    const std::array<float, 256>& c = dynamic_code();
    std::array<float, 255> mid;
    for (int i = 0; i < 255; ++i) mid[i] = (c[i] + c[i + 1]) * 0.5f;
    std::vector<uint8_t> t(65536);
    int idx = 0;
    for (int i = 0; i < 65536; ++i) {
      const float val = static_cast<float>(2 * i) / 65535.0f - 1.0f;
      while (idx < 255 && val > mid[idx]) ++idx;
      t[i] = static_cast<uint8_t>(idx);
    }
    return t;
  }();
  return lut;
}

// The smallest absmax bitsandbytes divides by (torch's clamp(min=1e-38) on an fp32 tensor).
const float kTinyAbsmax = static_cast<float>(1e-38);

}  // namespace

const std::array<float, 16>& quant4_code(WeightFormat f) {
  SFT_CHECK(f == WeightFormat::NF4 || f == WeightFormat::FP4, "quant4_code: ", weight_format_name(f),
            " is not a 4-bit format");
  return f == WeightFormat::NF4 ? kNF4 : kFP4;
}

const std::array<float, 256>& dynamic_code() { return kDynamic; }

namespace {

// One block of len <= 64 values (len < 64 only for a tensor's last block) into packed bytes and its absmax. Written as
// loops over the block's 64 lanes (scale, then one comparison per bound, then pack) so that the compiler vectorises
// them: the bucketize of one value alone is a chain of 15 dependent compares.
void quantize_block(const float* x, int64_t len, const Bucketizer& bz, uint8_t* packed, float* absmax) {
  float a = 0;
#pragma omp simd reduction(max : a)
  for (int64_t i = 0; i < len; ++i) a = std::max(a, std::fabs(x[i]));
  const bool full = len == kQuantBlock;
  const float clamped = std::max(a, kTinyAbsmax);
  *absmax = full ? a : clamped;
  float scaled[kQuantBlock] = {};  // lanes past len stay 0: the pad value of an odd element count
  if (full) {
    const float inv = 1.0f / clamped;  // full blocks multiply by the reciprocal, the trailing one divides
#pragma omp simd
    for (int64_t i = 0; i < kQuantBlock; ++i) scaled[i] = std::clamp(x[i] * inv, -1.0f, 1.0f);
  } else {
    for (int64_t i = 0; i < len; ++i) scaled[i] = std::clamp(x[i] / clamped, -1.0f, 1.0f);
  }
  int32_t k[kQuantBlock] = {};
  for (int j = 0; j < 15; ++j) {
    const float bound = bz.bounds[j];
#pragma omp simd
    for (int64_t i = 0; i < kQuantBlock; ++i) k[i] += bound < scaled[i] ? 1 : 0;
  }
  for (int64_t i = 0; i < len; i += 2)
    packed[i / 2] = static_cast<uint8_t>(bz.index_of_sorted[k[i]] << 4 | bz.index_of_sorted[k[i + 1]]);
}

}  // namespace

void quantize_4bit(const float* x, int64_t n, WeightFormat f, uint8_t* packed, float* absmax, const char* what) {
  static const Bucketizer nf4 = make_bucketizer(WeightFormat::NF4), fp4 = make_bucketizer(WeightFormat::FP4);
  SFT_CHECK(f == WeightFormat::NF4 || f == WeightFormat::FP4, "quantize_4bit: ", weight_format_name(f),
            " is not a 4-bit format");
  const Bucketizer& bz = f == WeightFormat::NF4 ? nf4 : fp4;
  int64_t bad = n;  // the first value that cannot be quantised (checked before the parallel loop: no throw in it)
#pragma omp parallel for reduction(min : bad) schedule(static) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) bad = std::min(bad, i);
  SFT_CHECK(bad == n, what, ": element ", bad, " is ", x[bad], "; only finite weights can be quantised");
  const int64_t blocks = (n + kQuantBlock - 1) / kQuantBlock;
#pragma omp parallel for schedule(static) if (n > (1 << 15))
  for (int64_t b = 0; b < blocks; ++b)
    quantize_block(x + b * kQuantBlock, std::min(kQuantBlock, n - b * kQuantBlock), bz, packed + b * kQuantBlock / 2,
                   absmax + b);
}

void double_quantize_absmax(const float* absmax, int64_t nblocks, uint8_t* qabsmax, float* nested_absmax,
                            float* offset) {
  SFT_CHECK(nblocks > 0, "double_quantize_absmax: no blocks");
  double sum = 0;
  for (int64_t i = 0; i < nblocks; ++i) sum += absmax[i];
  const float mean = static_cast<float>(sum / static_cast<double>(nblocks));
  *offset = mean;
  const std::vector<uint8_t>& lut = dynamic_lut();
  for (int64_t b0 = 0; b0 < nblocks; b0 += kNestedBlock) {
    const int64_t b1 = std::min(nblocks, b0 + kNestedBlock);
    float a = -std::numeric_limits<float>::infinity();
    for (int64_t i = b0; i < b1; ++i) a = std::max(a, std::fabs(absmax[i] - mean));
    a = std::max(0.0f, a);
    nested_absmax[b0 / kNestedBlock] = a;
    if (a == 0.0f) {
      std::fill(qabsmax + b0, qabsmax + b1, uint8_t{0});
      continue;
    }
    const float inv = 1.0f / a;
    for (int64_t i = b0; i < b1; ++i) {
      const float v = std::clamp((absmax[i] - mean) * inv, -1.0f, 1.0f);
      const float u = std::fma((v + 1.0f) * 0.5f, 65535.0f, 0.5f);
      qabsmax[i] = lut[static_cast<uint16_t>(static_cast<int32_t>(u))];
    }
  }
}

float nested_absmax_value(uint8_t q, float nested_absmax, float offset) {
  // volatile keeps the product rounded on its own: bitsandbytes computes it in one kernel and adds the offset in
  // another, and GCC would otherwise contract the two into an FMA where the target has one.
  volatile float product = kDynamic[q] * nested_absmax;
  return product + offset;
}

float block_absmax(const FrozenWeight& W, int64_t b) {
  return W.double_quant() ? nested_absmax_value(W.qabsmax[b], W.nested_absmax[b / kNestedBlock], W.offset)
                          : W.absmax[b];
}

void check_frozen_call(const char* kernel, const FrozenWeight& W, DType x_dt, DType w_dt, float beta) {
  SFT_CHECK(W.data != nullptr && W.rows > 0 && W.cols > 0, kernel, ": empty ", weight_format_name(W.format),
            " weight [", W.rows, ", ", W.cols, "]");
  SFT_CHECK(!W.quantized() || W.absmax != nullptr || (W.qabsmax != nullptr && W.nested_absmax != nullptr), kernel,
            ": ", weight_format_name(W.format), " weight without its absmax scales");
  SFT_CHECK((x_dt == DType::F32 || x_dt == DType::BF16) && (w_dt == DType::F32 || w_dt == DType::BF16), kernel,
            ": dtypes must be F32 or BF16");
  SFT_CHECK(beta == 0.0f || beta == 1.0f, kernel, ": beta must be 0 or 1, got ", beta);
}

void dequantize_host(const FrozenWeight& W, int64_t e0, int64_t e1, bool round_bf16, float* out) {
  if (W.format == WeightFormat::F32) {
    std::copy(static_cast<const float*>(W.data) + e0, static_cast<const float*>(W.data) + e1, out);
    return;
  }
  if (W.format == WeightFormat::BF16) {
    for (int64_t e = e0; e < e1; ++e) out[e - e0] = bf16_to_float(static_cast<const uint16_t*>(W.data)[e]);
    return;
  }
  const std::array<float, 16>& code = quant4_code(W.format);
  const auto* packed = static_cast<const uint8_t*>(W.data);
  for (int64_t e = e0; e < e1; ++e) {
    const float scale = block_absmax(W, e / kQuantBlock);
    const uint8_t byte = packed[e / 2];
    const float v = code[e % 2 == 0 ? byte >> 4 : byte & 15] * scale;
    out[e - e0] = round_bf16 ? bf16_to_float(float_to_bf16(v)) : v;
  }
}

}  // namespace sft::backend
