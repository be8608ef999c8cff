// Gemms and the embedding gather on frozen weights in their stored form (bf16, NF4/FP4): the LoRA / QLoRA base.
// The weight is never converted as a whole: frozen_gemm walks it in panels of output columns (rows of W for the
// forward Y = X W^T, columns of W for the input gradient Y = X W) of about panel_bytes(), converts one panel into a
// per-thread scratch buffer (bf16 widened to fp32, or 4-bit dequantised into fp32 or bf16 with vector code-book
// lookups) and multiplies it with oneDNN's matmul into that panel's columns of Y. The conversion is O(panel) against
// the panel gemm's O(M x panel), so it costs ~1/M of the gemm; bench/frozen_gemm_bench measures the difference.
// Where oneDNN's native bf16 matmul pays (AMX; frozen_native_bf16), a bf16 weight with a bf16 activation is fed to it
// directly and 4-bit panels are dequantised into bf16; elsewhere a bf16 activation is widened to fp32 once.
// Compiled once per CPU variant (included by fast_backend_avx2.cpp / fast_backend_avx512.cpp, see cpu_variant.h).
#include "backend/cpu/cpu_frozen.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/dnnl_gemm.h"
#include "backend/quant4.h"
#include "util/bf16.h"
#include "util/error.h"

SFT_CPU_TARGET_BEGIN
namespace sft::backend::cpu::SFT_CPU_VARIANT {
#include "backend/cpu/cpu_vec.h"
namespace {

typedef uint32_t vuint __attribute__((vector_size(kVec * 4), aligned(4), may_alias));

// Target size of one converted panel: small enough to stay in the outer caches while oneDNN packs it, large enough
// that each panel's gemm runs on its plateau (SFT_FROZEN_PANEL_KIB=N with bench/frozen_gemm_bench measures other sizes).
// SFT_FROZEN_PANEL_KIB overrides it for measurements (bench/frozen_gemm_bench); read once.
int64_t panel_bytes() {
  static const int64_t bytes = [] {
    const char* env = std::getenv("SFT_FROZEN_PANEL_KIB");
    if (!env || !*env) return int64_t{4} << 20;
    char* end = nullptr;
    const long long kib = std::strtoll(env, &end, 10);
    SFT_CHECK(*end == 0 && kib >= 64 && kib <= (int64_t{1} << 21), "SFT_FROZEN_PANEL_KIB=", env,
              ": expected a size in KiB from 64 to 2097152");
    return static_cast<int64_t>(kib) << 10;
  }();
  return bytes;
}

// Round-to-nearest-even to bf16, kept as fp32 bits (finite values only: weights are checked at quantisation).
static inline vfloat vround_bf16(vfloat v) {
  vuint u = reinterpret_cast<vuint>(v);
  u += 0x7fffu + ((u >> 16) & 1u);
  return reinterpret_cast<vfloat>(u & 0xffff0000u);
}
static inline float round_bf16(float v) { return bf16_to_float(float_to_bf16(v)); }

// The 16 code values as vectors (lo = codes 0..7, hi = codes 8..15; with 16 lanes `lo` holds all of them).
struct CodeVec {
  vfloat lo, hi;
  explicit CodeVec(const std::array<float, 16>& c) {
    for (int i = 0; i < kVec; ++i) {
      lo[i] = c[i % 16];
      hi[i] = c[(8 + i) % 16];
    }
  }
};

// Decodes one whole block of 64 elements (32 bytes, starting on an even element) into fp32: code[nibble] * s,
// the even element from the high nibble. Per group of kVec elements the kVec/2 bytes are broadcast, shifted per lane
// to their nibble and looked up with one permute (AVX-512: 16 codes in one register) or two and a blend (AVX2).
template <bool kRound>
static inline void decode_block64(const uint8_t* p, float s, const CodeVec& cv, float* dst) {
  static_assert(kVec == 8 || kVec == 16);
  vuint shifts;
  for (int i = 0; i < kVec; ++i) shifts[i] = static_cast<uint32_t>((i % 8 / 2) * 8 + (i % 2 == 0 ? 4 : 0));
  const vfloat vs = vsplat(s);
  for (int j = 0; j < 32; j += kVec / 2) {
    uint32_t u0, u1 = 0;
    std::memcpy(&u0, p + j, 4);
    if constexpr (kVec == 16) std::memcpy(&u1, p + j + 4, 4);
    vuint src = vuint{} + u0;
    if constexpr (kVec == 16)
      for (int i = 8; i < 16; ++i) src[i] = u1;
    const vint idx = reinterpret_cast<vint>((src >> shifts) & 15u);
    vfloat v;
    if constexpr (kVec == 16) v = __builtin_shuffle(cv.lo, idx);
    else v = __builtin_shuffle(cv.lo, cv.hi, idx);
    v *= vs;
    if constexpr (kRound) v = vround_bf16(v);
    vstore(dst + 2 * j, v);
  }
}

// Elements [e0, e1) of W in fp32 (rounded to bf16 values when round), into dst.
void decode_f32(const FrozenWeight& W, int64_t e0, int64_t e1, bool round, float* dst) {
  if (W.format == WeightFormat::F32) {
    std::memcpy(dst, static_cast<const float*>(W.data) + e0, static_cast<size_t>(e1 - e0) * sizeof(float));
    return;
  }
  if (W.format == WeightFormat::BF16) {
    const uint16_t* src = static_cast<const uint16_t*>(W.data) + e0;
    const int64_t n = e1 - e0;
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i]);
    return;
  }
  static const CodeVec nf4(quant4_code(WeightFormat::NF4)), fp4(quant4_code(WeightFormat::FP4));
  const CodeVec& cv = W.format == WeightFormat::NF4 ? nf4 : fp4;
  const std::array<float, 16>& code = quant4_code(W.format);
  const auto* packed = static_cast<const uint8_t*>(W.data);
  for (int64_t e = e0; e < e1;) {
    const int64_t b = e / kQuantBlock, bend = std::min(e1, (b + 1) * kQuantBlock);
    const float s = block_absmax(W, b);
    if (e == b * kQuantBlock && bend - e == kQuantBlock) {
      if (round) decode_block64<true>(packed + e / 2, s, cv, dst + (e - e0));
      else decode_block64<false>(packed + e / 2, s, cv, dst + (e - e0));
    } else {
      for (int64_t i = e; i < bend; ++i) {
        const uint8_t byte = packed[i / 2];
        const float v = code[i % 2 == 0 ? byte >> 4 : byte & 15] * s;
        dst[i - e0] = round ? round_bf16(v) : v;
      }
    }
    e = bend;
  }
}

// Elements [e0, e1) of a 4-bit W dequantised and rounded to bf16, stored as bf16 (the native-bf16 panel).
void decode_bf16(const FrozenWeight& W, int64_t e0, int64_t e1, uint16_t* dst) {
  float tmp[kQuantBlock];
  for (int64_t e = e0; e < e1;) {
    const int64_t n = std::min(e1, (e / kQuantBlock + 1) * kQuantBlock) - e;  // up to the next block boundary
    decode_f32(W, e, e + n, true, tmp);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      uint32_t u;
      std::memcpy(&u, &tmp[i], 4);
      dst[e - e0 + i] = static_cast<uint16_t>(u >> 16);  // already rounded: the upper half is the bf16 value
    }
    e += n;
  }
}

// Per-thread scratch reused across calls (a converted panel, a widened activation); grows to the largest use.
template <class T>
T* scratch(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}
thread_local std::vector<float> tl_panel_f32, tl_x_f32;
thread_local std::vector<uint16_t> tl_panel_bf16;

// Rows [r0, r1) x columns [c0, c1) of W into dst (row-major, leading dimension c1 - c0), threads over rows.
template <class T>
void convert_panel(const FrozenWeight& W, int64_t r0, int64_t r1, int64_t c0, int64_t c1, bool round, T* dst) {
  const int64_t w = c1 - c0;
#pragma omp parallel for schedule(static) if ((r1 - r0) * w > (1 << 15))
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t e0 = r * W.cols + c0;
    if constexpr (sizeof(T) == 4) decode_f32(W, e0, e0 + w, round, dst + (r - r0) * w);
    else decode_bf16(W, e0, e0 + w, dst + (r - r0) * w);
  }
}

}  // namespace

bool variant_native_bf16() { return kVec == 16 && dnnl_has_fast_bf16(); }

bool frozen_native_bf16() {
  static const bool native = [] {
    const char* env = std::getenv("SFT_FROZEN_BF16");
    const std::string v = env ? env : "";
    SFT_CHECK(v.empty() || v == "native" || v == "fp32", "SFT_FROZEN_BF16=", v, ": expected native or fp32");
    if (v == "fp32") return false;
    return variant_native_bf16() && (v == "native" || dnnl_bf16_uses_amx());
  }();
  return native;
}

void frozen_gemm_panels(bool trans_w, int64_t M, const void* X, int64_t ldx, DType x_dt, const FrozenWeight& W,
                        DType w_dt, float beta, float* Y, int64_t ldy) {
  check_frozen_call("frozen_gemm", W, x_dt, w_dt, beta);
  if (M == 0) return;
  const int64_t N = trans_w ? W.rows : W.cols, K = trans_w ? W.cols : W.rows;
  const bool native = frozen_native_bf16() && x_dt == DType::BF16;
  // A bf16 weight with a bf16 activation on a native-bf16 CPU, or an fp32 weight with an fp32 activation: no
  // conversion at all. B = W is [N, K] (trans_b) for the forward and [K, N] for the input gradient.
  if ((W.format == WeightFormat::BF16 && native) || (W.format == WeightFormat::F32 && x_dt == DType::F32)) {
    dnnl_gemm(false, trans_w, M, N, K, 1.0f, X, ldx, W.data, W.cols, beta, Y, ldy, x_dt);
    return;
  }
  const bool bf16_panels = native && W.quantized() && w_dt == DType::BF16;
  const void* x = X;
  int64_t lx = ldx;
  if (!bf16_panels && x_dt == DType::BF16) {  // an fp32 route with a bf16 activation: widen it once (exact)
    float* xf = scratch(tl_x_f32, M * K);
    const auto* xb = static_cast<const uint16_t*>(X);
#pragma omp parallel for schedule(static) if (M * K > (1 << 15))
    for (int64_t i = 0; i < M; ++i)
      for (int64_t k = 0; k < K; ++k) xf[i * K + k] = bf16_to_float(xb[i * ldx + k]);
    x = xf, lx = K;
  }
  if (W.format == WeightFormat::F32) {  // fp32 weight, widened activation
    dnnl_gemm(false, trans_w, M, N, K, 1.0f, x, lx, W.data, W.cols, beta, Y, ldy, DType::F32);
    return;
  }
  const DType pdt = bf16_panels ? DType::BF16 : DType::F32;
  const bool round = w_dt == DType::BF16 && W.quantized();
  const int64_t elem = bf16_panels ? 2 : 4;
  // Panels whole blocks of 64 wide, so that the input gradient's column panels start on a 4-bit block boundary and
  // every row of the panel decodes through the vector block path, not the per-element tail (7B shape: the misaligned
  // panels made the QLoRA step 1.5x the bf16 step).
  const int64_t step = std::max<int64_t>(kQuantBlock, std::min(N, panel_bytes() / (K * elem)) / kQuantBlock * kQuantBlock);
  for (int64_t n0 = 0; n0 < N; n0 += step) {
    const int64_t n1 = std::min(N, n0 + step), w = n1 - n0;
    void* panel = bf16_panels ? static_cast<void*>(scratch(tl_panel_bf16, w * K))
                              : static_cast<void*>(scratch(tl_panel_f32, w * K));
    // forward: rows [n0, n1) of W, all columns ([w, K], trans_b); input gradient: all rows, columns [n0, n1) ([K, w])
    const int64_t r0 = trans_w ? n0 : 0, r1 = trans_w ? n1 : W.rows, c0 = trans_w ? 0 : n0, c1 = trans_w ? W.cols : n1;
    if (bf16_panels) convert_panel(W, r0, r1, c0, c1, round, static_cast<uint16_t*>(panel));
    else convert_panel(W, r0, r1, c0, c1, round, static_cast<float*>(panel));
    dnnl_gemm(false, trans_w, M, w, K, 1.0f, x, lx, panel, trans_w ? K : w, beta, Y + n0, ldy, pdt);
  }
}

void frozen_embedding_rows(float* out, const FrozenWeight& t, const int32_t* ids, int64_t n, DType w_dt) {
  check_frozen_call("frozen_embedding", t, DType::F32, w_dt, 0.0f);
  const bool round = w_dt == DType::BF16 && t.quantized();
#pragma omp parallel for schedule(static) if (n * t.cols > (1 << 14))
  for (int64_t i = 0; i < n; ++i) {
    const int64_t e0 = static_cast<int64_t>(ids[i]) * t.cols;
    decode_f32(t, e0, e0 + t.cols, round, out + i * t.cols);
  }
}

}  // namespace sft::backend::cpu::SFT_CPU_VARIANT
SFT_CPU_TARGET_END
