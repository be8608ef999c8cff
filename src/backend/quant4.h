// bitsandbytes' 4-bit weight format (QLoRA): code books, the load-time quantiser and dequantisation, on the host.
// Bit-exact with bitsandbytes 0.50.2 (pinned in tests/requirements.txt), checked by tests/model/test_frozen_weights.py:
//  - quantize_4bit: bitsandbytes.functional.quantize_4bit(A, blocksize=64, quant_type=nf4|fp4) — on a CPU tensor
//    it runs the torch implementation of backends/default/ops.py: per block of 64 consecutive elements of the
//    flattened tensor, absmax = max |x|, scaled = clamp(x * (1 / max(absmax, 1e-38)), -1, 1) (the trailing partial
//    block: x / max(absmax, 1e-38), and its stored absmax is the clamped one), index = bucketize(scaled, midpoints
//    of the sorted code book) (a value exactly on a midpoint takes the lower code), two indices per byte, the even
//    element in the high nibble, an odd element count padded with the index of 0;
//  - double_quantize_absmax: compress_statistics=True: offset = mean(absmax), then quantize_blockwise(absmax -
//    offset, blocksize=256) with the signed dynamic 8-bit map. On the CPU that is libbitsandbytes_cpu's LUT
//    quantiser: per block of 256, a = max |v| (0 -> all indices 0), u = fma((clamp(v * (1 / a), -1, 1) + 1) * 0.5,
//    65535, 0.5) truncated to 16 bits indexes a 65536-entry table holding, for the grid value 2i / 65535 - 1, the
//    first code whose midpoint with the next code is not below it. (Not the nearest code: values within ~1.5e-5 of
//    a midpoint can take the farther one. This is what bitsandbytes' CPU path computes, so it is what we compute.)
//  - dequantisation: value = code[index] * absmax, and absmax = dynamic_code[q] * nested_absmax + offset in two fp32
//    roundings (dequantize_blockwise, then += offset).
// The mean is the one place that is not bit-exact by construction: torch sums fp32 in an ISA-dependent vectorised
// cascade; we sum in double and round once. The test states how often the two differ (an ulp, when they do).
#pragma once
#include <array>
#include <cstdint>

#include "backend/backend.h"

namespace sft::backend {

// The 16 values of a 4-bit format, indexed by the 4-bit code, as bitsandbytes' CPU dequantisation uses them
// (NF4: the QLoRA paper's normal-float quantiles; FP4: 1 sign, 2 exponent, 1 mantissa bit, divided by 12 in fp32;
// its index 8 is -0.0). Throws for F32/BF16.
const std::array<float, 16>& quant4_code(WeightFormat f);
// bitsandbytes' create_dynamic_map() (signed, 8 bits): the code book of the double-quantised absmax values.
const std::array<float, 256>& dynamic_code();

// Quantises n consecutive values of a tensor's flattened data starting at a block boundary (the whole tensor, or a
// chunk of it: then n must be a multiple of 64 unless the chunk ends the tensor). Writes (n + 1) / 2 bytes to packed
// and ceil(n / 64) fp32 scales to absmax. Values must be finite (throws naming `what` and the element otherwise).
void quantize_4bit(const float* x, int64_t n, WeightFormat f, uint8_t* packed, float* absmax, const char* what);
// Double quantisation of nblocks absmax values: qabsmax [nblocks], nested_absmax [ceil(nblocks / 256)], offset.
void double_quantize_absmax(const float* absmax, int64_t nblocks, uint8_t* qabsmax, float* nested_absmax,
                            float* offset);
// The fp32 absmax of one block of a double-quantised weight (two roundings, never contracted into an FMA).
float nested_absmax_value(uint8_t q, float nested_absmax, float offset);

// The fp32 absmax of block b of a 4-bit weight whose scale pointers are host memory (direct or double-quantised).
float block_absmax(const FrozenWeight& W, int64_t b);
// Throws sft::Error naming `kernel` when a frozen_* call is malformed (null data, a 4-bit weight without scales,
// rows or cols <= 0, beta not 0 or 1, dtypes other than F32/BF16).
void check_frozen_call(const char* kernel, const FrozenWeight& W, DType x_dt, DType w_dt, float beta);

// Host reference dequantisation of elements [e0, e1) of a weight whose pointers are host memory: F32 copied, BF16
// widened, 4-bit dequantised; round_bf16 rounds the result to bf16 values (backend.h frozen_gemm's w_dt == BF16).
void dequantize_host(const FrozenWeight& W, int64_t e0, int64_t e1, bool round_bf16, float* out);

}  // namespace sft::backend
