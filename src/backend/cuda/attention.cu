// Attention helper kernels of the CUDA backend. The attention itself is computed in chunks of batch rows as
// cuBLASLt strided-batched GEMMs (scores = Q K^T, out = P V, and the backward products) around these kernels:
// head-major packing, the doc-id-masked causal softmax with the optional soft-cap and sliding window (forward, and
// recomputation from the saved log-sum-exp), the rowwise dot D = sum(dout * out) and dS = dscore * P * (dP - D). See cuda_backend.cpp (attention_forward/backward).
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace sft::backend::cuda::k {
namespace {

constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n) {
  int64_t blocks = (n + kThreads - 1) / kThreads;
  if (blocks < 1) blocks = 1;
  if (blocks > 65535) blocks = 65535;
  return static_cast<unsigned>(blocks);
}

#define GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void pack_heads_kernel(float* __restrict__ dst, const float* __restrict__ src, int64_t rows, int64_t T,
                                  int64_t heads, int64_t d) {
  const int64_t total = rows * T * heads * d;
  GRID_STRIDE(i, total) {  // i indexes dst [rows, heads, T, d]
    const int64_t e = i % d;
    int64_t r = i / d;
    const int64_t t = r % T;
    r /= T;
    const int64_t h = r % heads;
    const int64_t b = r / heads;
    dst[i] = src[((b * T + t) * heads + h) * d + e];
  }
}

__global__ void unpack_heads_kernel(float* __restrict__ dst, const float* __restrict__ src, int64_t rows, int64_t T,
                                    int64_t heads, int64_t d) {
  const int64_t total = rows * T * heads * d;
  GRID_STRIDE(i, total) {  // i indexes dst [rows, T, heads, d]
    const int64_t e = i % d;
    int64_t r = i / d;
    const int64_t h = r % heads;
    r /= heads;
    const int64_t t = r % T;
    const int64_t b = r / T;
    dst[i] = src[((b * heads + h) * T + t) * d + e];
  }
}

// The score of a raw product (AttnShape: scale, optional tanh soft-cap in torch's order: divide, tanh, multiply).
__device__ __forceinline__ float attn_score(float x, float scale, float softcap) {
  return softcap > 0.f ? softcap * tanhf(x * scale / softcap) : x * scale;
}
// Key c visible from query position i of a row whose doc ids are docb (causal, same document, inside the window).
__device__ __forceinline__ bool attn_visible(const int32_t* docb, int32_t di, int64_t i, int64_t c, int64_t window) {
  return c <= i && docb[c] == di && (window <= 0 || i - c < window);
}

// One warp per query row of S [rows, heads, Tq, T]; query iq sits at key position T - Tq + iq.
__global__ void attn_softmax_forward_kernel(float* __restrict__ S, float* __restrict__ lse,
                                            const int32_t* __restrict__ doc, int64_t rows, int64_t heads, int64_t Tq,
                                            int64_t T, float scale, float softcap, int64_t window) {
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (warp >= rows * heads * Tq) return;
  const int64_t iq = warp % Tq;
  const int64_t h = (warp / Tq) % heads;
  const int64_t b = warp / (Tq * heads);
  const int64_t i = T - Tq + iq;
  const int32_t* docb = doc + b * T;
  float* srow = S + warp * T;
  const int32_t di = docb[i];
  float* lse_out = lse + (b * Tq + iq) * heads + h;
  if (di < 0) {
    for (int64_t c = lane; c < T; c += 32) srow[c] = 0.f;
    if (lane == 0) *lse_out = 0.f;
    return;
  }
  float m = -INFINITY;
  for (int64_t c = lane; c <= i; c += 32)
    if (attn_visible(docb, di, i, c, window)) m = fmaxf(m, attn_score(srow[c], scale, softcap));
  for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
  float s = 0.f;
  for (int64_t c = lane; c <= i; c += 32)
    if (attn_visible(docb, di, i, c, window)) s += expf(attn_score(srow[c], scale, softcap) - m);
  for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  const float inv = 1.0f / s;  // s >= 1: the diagonal is always visible
  for (int64_t c = lane; c < T; c += 32) {
    const bool valid = attn_visible(docb, di, i, c, window);
    srow[c] = valid ? expf(attn_score(srow[c], scale, softcap) - m) * inv : 0.f;
  }
  if (lane == 0) *lse_out = m + logf(s);
}

__global__ void attn_probs_from_lse_kernel(float* __restrict__ S, float* __restrict__ th,
                                           const float* __restrict__ lse, const int32_t* __restrict__ doc,
                                           int64_t rows, int64_t heads, int64_t T, float scale, float softcap,
                                           int64_t window) {
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (warp >= rows * heads * T) return;
  const int64_t i = warp % T;
  const int64_t h = (warp / T) % heads;
  const int64_t b = warp / (T * heads);
  const int32_t* docb = doc + b * T;
  float* srow = S + warp * T;
  const int32_t di = docb[i];
  const float l = lse[(b * T + i) * heads + h];
  float* trow = th ? th + warp * T : nullptr;
  for (int64_t c = lane; c < T; c += 32) {
    const bool valid = di >= 0 && attn_visible(docb, di, i, c, window);
    if (softcap > 0.f) {
      const float t = tanhf(srow[c] * scale / softcap);
      trow[c] = t;
      srow[c] = valid ? expf(softcap * t - l) : 0.f;
    } else {
      srow[c] = valid ? expf(srow[c] * scale - l) : 0.f;
    }
  }
}

// One warp per (token, head).
__global__ void attn_row_dot_kernel(float* __restrict__ Dd, const float* __restrict__ dout,
                                    const float* __restrict__ out, int64_t n, int64_t heads, int64_t d) {
  const int64_t warp = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
  const int lane = threadIdx.x & 31;
  if (warp >= n * heads) return;
  const float* a = dout + warp * d;
  const float* o = out + warp * d;
  float s = 0.f;
  for (int64_t e = lane; e < d; e += 32) s += a[e] * o[e];
  for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
  if (lane == 0) Dd[warp] = s;
}

__global__ void attn_dscores_kernel(float* __restrict__ dP, const float* __restrict__ P,
                                    const float* __restrict__ th, const float* __restrict__ Dd, int64_t rows,
                                    int64_t heads, int64_t T, float scale) {
  const int64_t total = rows * heads * T * T;
  GRID_STRIDE(idx, total) {
    const float p = P[idx];
    if (p == 0.f) {
      dP[idx] = 0.f;
      continue;
    }
    const int64_t row = idx / T;  // (b*heads + h)*T + i
    const int64_t i = row % T;
    const int64_t h = (row / T) % heads;
    const int64_t b = row / (T * heads);
    const float dscore = th ? scale * (1.0f - th[idx] * th[idx]) : scale;  // d score / d raw product
    dP[idx] = dscore * p * (dP[idx] - Dd[(b * T + i) * heads + h]);
  }
}

inline unsigned warp_grid(int64_t warps) {
  const int64_t blocks = (warps * 32 + kThreads - 1) / kThreads;
  SFT_CHECK(blocks <= INT32_MAX, "cuda attention: grid too large (", warps, " rows)");
  return static_cast<unsigned>(blocks < 1 ? 1 : blocks);
}

}  // namespace

void pack_heads(cudaStream_t st, float* dst, const float* src, int64_t rows, int64_t T, int64_t heads, int64_t d) {
  const int64_t total = rows * T * heads * d;
  if (total <= 0) return;
  pack_heads_kernel<<<grid_for(total), kThreads, 0, st>>>(dst, src, rows, T, heads, d);
  SFT_CUDA_LAUNCH_CHECK("pack_heads_kernel");
}

void unpack_heads(cudaStream_t st, float* dst, const float* src, int64_t rows, int64_t T, int64_t heads, int64_t d) {
  const int64_t total = rows * T * heads * d;
  if (total <= 0) return;
  unpack_heads_kernel<<<grid_for(total), kThreads, 0, st>>>(dst, src, rows, T, heads, d);
  SFT_CUDA_LAUNCH_CHECK("unpack_heads_kernel");
}

void attn_softmax_forward(cudaStream_t st, float* S, float* lse, const int32_t* doc, int64_t rows, int64_t heads,
                          int64_t Tq, int64_t T, float scale, float softcap, int64_t window) {
  const int64_t warps = rows * heads * Tq;
  if (warps <= 0) return;
  attn_softmax_forward_kernel<<<warp_grid(warps), kThreads, 0, st>>>(S, lse, doc, rows, heads, Tq, T, scale, softcap,
                                                                       window);
  SFT_CUDA_LAUNCH_CHECK("attn_softmax_forward_kernel");
}

void attn_probs_from_lse(cudaStream_t st, float* S, float* th, const float* lse, const int32_t* doc, int64_t rows,
                         int64_t heads, int64_t T, float scale, float softcap, int64_t window) {
  const int64_t warps = rows * heads * T;
  if (warps <= 0) return;
  SFT_CHECK(softcap <= 0.f || th != nullptr, "cuda attention: a soft-capped backward needs the tanh buffer");
  attn_probs_from_lse_kernel<<<warp_grid(warps), kThreads, 0, st>>>(S, th, lse, doc, rows, heads, T, scale, softcap,
                                                                      window);
  SFT_CUDA_LAUNCH_CHECK("attn_probs_from_lse_kernel");
}

void attn_row_dot(cudaStream_t st, float* Dd, const float* dout, const float* out, int64_t n, int64_t heads,
                  int64_t d) {
  const int64_t warps = n * heads;
  if (warps <= 0) return;
  attn_row_dot_kernel<<<warp_grid(warps), kThreads, 0, st>>>(Dd, dout, out, n, heads, d);
  SFT_CUDA_LAUNCH_CHECK("attn_row_dot_kernel");
}

void attn_dscores(cudaStream_t st, float* dP, const float* P, const float* th, const float* Dd, int64_t rows,
                  int64_t heads, int64_t T, float scale) {
  const int64_t total = rows * heads * T * T;
  if (total <= 0) return;
  attn_dscores_kernel<<<grid_for(total), kThreads, 0, st>>>(dP, P, th, Dd, rows, heads, T, scale);
  SFT_CUDA_LAUNCH_CHECK("attn_dscores_kernel");
}

}  // namespace sft::backend::cuda::k
