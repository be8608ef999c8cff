// Frozen weights in their stored form on the GPU (Backend::frozen_gemm / frozen_embedding): decoding a panel of a
// bf16 or bitsandbytes 4-bit weight into fp32 or bf16 for cuBLASLt, and the embedding gather. One thread per output
// element; the 4-bit scales are computed with explicit-rounding intrinsics (no FMA contraction), so the values equal
// the CPU reference's (backend/quant4.h) bit for bit.
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace sft::backend::cuda::k {
namespace {

constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n) {
  int64_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks < 1) blocks = 1;
  if (blocks > 65535) blocks = 65535;  // grid-stride loops cover the rest
  return static_cast<unsigned>(blocks);
}

#define GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// Element e of W (tables: 16 codes of W's 4-bit format, then the 256-entry dynamic map). round: to bf16 values.
__device__ __forceinline__ float frozen_value(const FrozenArgs& w, const float* __restrict__ tables, int64_t e,
                                              bool round) {
  if (w.format == 0) return static_cast<const float*>(w.data)[e];
  if (w.format == 1) return __uint_as_float(uint32_t(static_cast<const uint16_t*>(w.data)[e]) << 16);
  const uint8_t byte = static_cast<const uint8_t*>(w.data)[e >> 1];
  const int nib = (e & 1) ? (byte & 15) : (byte >> 4);
  const int64_t b = e / 64;
  const float scale = w.qabsmax ? __fadd_rn(__fmul_rn(__ldg(tables + 16 + w.qabsmax[b]), w.nested[b / 256]), w.offset)
                                : w.absmax[b];
  float v = __fmul_rn(__ldg(tables + nib), scale);
  if (round) {  // round to nearest even (finite values)
    uint32_t u = __float_as_uint(v);
    u += 0x7fffu + ((u >> 16) & 1u);
    v = __uint_as_float(u & 0xffff0000u);
  }
  return v;
}

__global__ void panel_kernel(FrozenArgs w, const float* __restrict__ tables, int64_t r0, int64_t c0, int64_t rows,
                             int64_t cols, bool round, bool out_bf16, void* dst) {
  GRID_STRIDE(i, rows * cols) {
    const int64_t r = r0 + i / cols, c = c0 + i % cols;
    const float v = frozen_value(w, tables, r * w.cols + c, round);
    if (out_bf16) static_cast<uint16_t*>(dst)[i] = static_cast<uint16_t>(__float_as_uint(v) >> 16);  // rounded above
    else static_cast<float*>(dst)[i] = v;
  }
}

__global__ void gather_kernel(FrozenArgs w, const float* __restrict__ tables, const int32_t* __restrict__ ids,
                              int64_t n, bool round, float* __restrict__ out) {
  GRID_STRIDE(i, n * w.cols) {
    const int64_t row = i / w.cols, c = i % w.cols;
    out[i] = frozen_value(w, tables, int64_t(ids[row]) * w.cols + c, round);
  }
}

}  // namespace

void frozen_panel(cudaStream_t st, const FrozenArgs& w, const float* tables, int64_t r0, int64_t r1, int64_t c0,
                  int64_t c1, bool round, bool out_bf16, void* dst) {
  const int64_t n = (r1 - r0) * (c1 - c0);
  if (n == 0) return;
  panel_kernel<<<grid_for(n), kThreads, 0, st>>>(w, tables, r0, c0, r1 - r0, c1 - c0, round, out_bf16, dst);
  SFT_CUDA_LAUNCH_CHECK("frozen_panel");
}

void frozen_gather(cudaStream_t st, const FrozenArgs& w, const float* tables, const int32_t* ids, int64_t n,
                   bool round, float* out) {
  if (n == 0) return;
  gather_kernel<<<grid_for(n * w.cols), kThreads, 0, st>>>(w, tables, ids, n, round, out);
  SFT_CUDA_LAUNCH_CHECK("frozen_gather");
}

}  // namespace sft::backend::cuda::k
