// Row-wise kernels of the CUDA backend: RMSNorm forward/backward and the vocabulary softmax cross-entropy.
// One thread block per row, fp32 math, block reductions through warp shuffles.
#include <cfloat>
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace sft::backend::cuda::k {
namespace {

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
__device__ float block_sum(float v, float* shared32) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();  // shared32 may still be read by a previous call
  if (lane == 0) shared32[warp] = v;
  __syncthreads();
  v = lane < warps ? shared32[lane] : 0.f;
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

constexpr int kNormThreads = 256;

__global__ void rmsnorm_forward_kernel(float* __restrict__ y, float* __restrict__ rstd, const float* __restrict__ x,
                                       const float* __restrict__ w, int64_t H, float eps, float w_offset) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * H;
  float* yr = y + row * H;
  float ss = 0.f;
  for (int64_t c = threadIdx.x; c < H; c += blockDim.x) ss += xr[c] * xr[c];
  ss = block_sum(ss, sh);
  const float r = 1.0f / sqrtf(ss / static_cast<float>(H) + eps);
  if (threadIdx.x == 0) rstd[row] = r;
  for (int64_t c = threadIdx.x; c < H; c += blockDim.x) yr[c] = (w[c] + w_offset) * (xr[c] * r);
}

__global__ void rmsnorm_backward_dx_kernel(float* __restrict__ dx, const float* __restrict__ dy,
                                           const float* __restrict__ x, const float* __restrict__ w,
                                           const float* __restrict__ rstd, int64_t H, float w_offset) {
  __shared__ float sh[32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * H;
  const float* dyr = dy + row * H;
  float* dxr = dx + row * H;
  const float r = rstd[row];
  float dot = 0.f;  // sum dy*g*xhat, g = w + w_offset
  for (int64_t c = threadIdx.x; c < H; c += blockDim.x) dot += dyr[c] * (w[c] + w_offset) * (xr[c] * r);
  dot = block_sum(dot, sh);
  const float mean = dot / static_cast<float>(H);
  for (int64_t c = threadIdx.x; c < H; c += blockDim.x)
    dxr[c] += r * (dyr[c] * (w[c] + w_offset) - (xr[c] * r) * mean);
}

constexpr int kColRows = 64;

__global__ void rmsnorm_backward_dw_kernel(float* __restrict__ dw, const float* __restrict__ dy,
                                           const float* __restrict__ x, const float* __restrict__ rstd, int64_t n,
                                           int64_t H) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= H) return;
  const int64_t r0 = int64_t(blockIdx.y) * kColRows;
  const int64_t r1 = r0 + kColRows < n ? r0 + kColRows : n;
  float acc = 0.f;
  for (int64_t r = r0; r < r1; ++r) acc += dy[r * H + c] * (x[r * H + c] * rstd[r]);
  atomicAdd(dw + c, acc);
}

// Online softmax state: running max m (first index idx attaining it) and sum s of exp(x - m).
struct SoftmaxState {
  float m;
  float s;
  int64_t idx;
};

__device__ __forceinline__ SoftmaxState merge(SoftmaxState a, SoftmaxState b) {
  if (b.m == -INFINITY && b.s == 0.f) return a;
  if (a.m == -INFINITY && a.s == 0.f) return b;
  SoftmaxState r;
  if (a.m > b.m) {
    r.m = a.m;
    r.idx = a.idx;
  } else if (b.m > a.m) {
    r.m = b.m;
    r.idx = b.idx;
  } else {
    r.m = a.m;
    r.idx = a.idx < b.idx ? a.idx : b.idx;
  }
  r.s = a.s * expf(a.m - r.m) + b.s * expf(b.m - r.m);
  return r;
}

constexpr int kCeThreads = 512;

__global__ void softmax_ce_kernel(float* __restrict__ logits, float* __restrict__ loss, uint8_t* __restrict__ greedy,
                                  const int32_t* __restrict__ targets, int64_t V, float grad_scale, float softcap) {
  const int64_t row = blockIdx.x;
  float* xr = logits + row * V;
  const int32_t t = targets[row];
  if (t < 0) {
    if (threadIdx.x == 0) {
      loss[row] = 0.f;
      if (greedy) greedy[row] = 0;
    }
    if (grad_scale != 0.f)
      for (int64_t c = threadIdx.x; c < V; c += blockDim.x) xr[c] = 0.f;
    return;
  }
  if (softcap > 0.f) {  // the row becomes the capped logits z (each thread caps the elements it reads below)
    for (int64_t c = threadIdx.x; c < V; c += blockDim.x) xr[c] = softcap * tanhf(xr[c] / softcap);
  }
  SoftmaxState st{-INFINITY, 0.f, INT64_MAX};
  for (int64_t c = threadIdx.x; c < V; c += blockDim.x) {
    const float v = xr[c];
    if (v > st.m) {
      st.s = st.s * expf(st.m - v) + 1.f;  // expf(-inf) = 0 on the first element
      st.m = v;
      st.idx = c;
    } else if (v != -INFINITY) {
      st.s += expf(v - st.m);
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    SoftmaxState o;
    o.m = __shfl_xor_sync(0xffffffffu, st.m, off);
    o.s = __shfl_xor_sync(0xffffffffu, st.s, off);
    o.idx = __shfl_xor_sync(0xffffffffu, st.idx, off);
    st = merge(st, o);
  }
  __shared__ SoftmaxState warp_states[kCeThreads / 32];
  __shared__ SoftmaxState total;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_states[warp] = st;
  __syncthreads();
  if (warp == 0) {
    st = lane < int(blockDim.x / 32) ? warp_states[lane] : SoftmaxState{-INFINITY, 0.f, INT64_MAX};
    for (int off = 16; off > 0; off >>= 1) {
      SoftmaxState o;
      o.m = __shfl_xor_sync(0xffffffffu, st.m, off);
      o.s = __shfl_xor_sync(0xffffffffu, st.s, off);
      o.idx = __shfl_xor_sync(0xffffffffu, st.idx, off);
      st = merge(st, o);
    }
    if (lane == 0) total = st;
  }
  __syncthreads();
  const float m = total.m, s = total.s;
  __syncthreads();  // the capped xr[t] (written by another thread) is visible
  const float xt = xr[t];
  __syncthreads();  // everyone has read xr[t] before it is overwritten below
  if (threadIdx.x == 0) {
    loss[row] = (m + logf(s)) - xt;
    if (greedy) greedy[row] = total.idx == t ? 1 : 0;
  }
  if (grad_scale != 0.f) {
    const float inv_s = 1.0f / s;
    for (int64_t c = threadIdx.x; c < V; c += blockDim.x) {
      const float z = xr[c], p = expf(z - m) * inv_s;
      const float dz = softcap > 0.f ? 1.0f - (z / softcap) * (z / softcap) : 1.0f;  // d z / d logit
      xr[c] = grad_scale * (c == t ? p - 1.0f : p) * dz;
    }
  }
}

}  // namespace

void rmsnorm_forward(cudaStream_t st, float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t H,
                     float eps, float w_offset) {
  if (n <= 0 || H <= 0) return;
  SFT_CHECK(n <= INT32_MAX, "cuda rmsnorm_forward: too many rows (", n, ")");
  rmsnorm_forward_kernel<<<static_cast<unsigned>(n), kNormThreads, 0, st>>>(y, rstd, x, w, H, eps, w_offset);
  SFT_CUDA_LAUNCH_CHECK("rmsnorm_forward_kernel");
}

void rmsnorm_backward_dx(cudaStream_t st, float* dx, const float* dy, const float* x, const float* w,
                         const float* rstd, int64_t n, int64_t H, float w_offset) {
  if (n <= 0 || H <= 0) return;
  SFT_CHECK(n <= INT32_MAX, "cuda rmsnorm_backward: too many rows (", n, ")");
  rmsnorm_backward_dx_kernel<<<static_cast<unsigned>(n), kNormThreads, 0, st>>>(dx, dy, x, w, rstd, H, w_offset);
  SFT_CUDA_LAUNCH_CHECK("rmsnorm_backward_dx_kernel");
}

void rmsnorm_backward_dw(cudaStream_t st, float* dw, const float* dy, const float* x, const float* rstd, int64_t n,
                         int64_t H) {
  if (n <= 0 || H <= 0) return;
  const int64_t row_blocks = (n + kColRows - 1) / kColRows;
  SFT_CHECK(row_blocks <= 65535, "cuda rmsnorm_backward: too many rows (", n, ")");
  dim3 grid(static_cast<unsigned>((H + 255) / 256), static_cast<unsigned>(row_blocks));
  rmsnorm_backward_dw_kernel<<<grid, 256, 0, st>>>(dw, dy, x, rstd, n, H);
  SFT_CUDA_LAUNCH_CHECK("rmsnorm_backward_dw_kernel");
}

void softmax_cross_entropy(cudaStream_t st, float* logits, float* loss, uint8_t* greedy, const int32_t* targets,
                           int64_t rows, int64_t V, float grad_scale, float softcap) {
  if (rows <= 0) return;
  SFT_CHECK(rows <= INT32_MAX, "cuda softmax_cross_entropy: too many rows (", rows, ")");
  softmax_ce_kernel<<<static_cast<unsigned>(rows), kCeThreads, 0, st>>>(logits, loss, greedy, targets, V, grad_scale,
                                                                          softcap);
  SFT_CUDA_LAUNCH_CHECK("softmax_ce_kernel");
}

}  // namespace sft::backend::cuda::k
