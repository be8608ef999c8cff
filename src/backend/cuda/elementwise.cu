// Elementwise kernels of the CUDA backend: optimizer, conversions, bias, SwiGLU, GeGLU, logit soft-cap, embedding,
// RoPE.
// Grid-stride loops over int64 indices; fp32 math; launch errors checked and named.
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"

namespace sft::backend::cuda::k {
namespace {

constexpr int kThreads = 256;

inline unsigned grid_for(int64_t n, int threads = kThreads) {
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  if (blocks > 65535) blocks = 65535;  // grid-stride loops cover the rest
  return static_cast<unsigned>(blocks);
}

#define GRID_STRIDE(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

__global__ void adamw_kernel(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                             float* __restrict__ v, int64_t n, float lr, float b1, float b2, float eps, float wd,
                             float bc1, float bc2) {
  GRID_STRIDE(i, n) {
    float pi = p[i];
    const float gi = g[i];
    pi -= lr * wd * pi;
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float mhat = mi / bc1;
    const float vhat = vi / bc2;
    pi -= lr * mhat / (sqrtf(vhat) + eps);
    p[i] = pi;
  }
}

__global__ void sum_squares_kernel(const float* __restrict__ x, int64_t n, double* out) {
  double acc = 0.0;
  GRID_STRIDE(i, n) {
    const double xi = x[i];
    acc += xi * xi;
  }
  for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
  __shared__ double warp_sums[kThreads / 32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = acc;
  __syncthreads();
  if (warp == 0) {
    acc = lane < int(blockDim.x / 32) ? warp_sums[lane] : 0.0;
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
    if (lane == 0) atomicAdd(out, acc);
  }
}

__global__ void scale_kernel(float* x, float s, int64_t n) {
  GRID_STRIDE(i, n) x[i] *= s;
}

__global__ void add_kernel(float* __restrict__ y, const float* __restrict__ x, int64_t n) {
  GRID_STRIDE(i, n) y[i] += x[i];
}

// Round to nearest even, bit-exact with util/bf16.h (and torch's cast); NaN stays a quiet NaN.
__device__ __forceinline__ uint16_t to_bf16_bits(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

__global__ void f32_to_bf16_kernel(uint16_t* __restrict__ dst, const float* __restrict__ src, int64_t n) {
  GRID_STRIDE(i, n) dst[i] = to_bf16_bits(src[i]);
}

__global__ void bf16_to_f32_kernel(float* __restrict__ dst, const uint16_t* __restrict__ src, int64_t n) {
  GRID_STRIDE(i, n) dst[i] = __uint_as_float(static_cast<uint32_t>(src[i]) << 16);
}

__global__ void add_bias_kernel(float* __restrict__ y, const float* __restrict__ bias, int64_t rows, int64_t cols) {
  const int64_t n = rows * cols;
  GRID_STRIDE(i, n) y[i] += bias[i % cols];
}

constexpr int kColRows = 64;  // rows summed per thread before one atomicAdd

__global__ void column_sums_kernel(float* __restrict__ out, const float* __restrict__ x, int64_t rows, int64_t cols) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  const int64_t r0 = int64_t(blockIdx.y) * kColRows;
  const int64_t r1 = r0 + kColRows < rows ? r0 + kColRows : rows;
  float acc = 0.f;
  for (int64_t r = r0; r < r1; ++r) acc += x[r * cols + c];
  atomicAdd(out + c, acc);
}

__global__ void swiglu_forward_kernel(float* __restrict__ h, const float* __restrict__ gate,
                                      const float* __restrict__ up, int64_t n) {
  GRID_STRIDE(i, n) {
    const float g = gate[i];
    const float sig = 1.0f / (1.0f + expf(-g));
    h[i] = g * sig * up[i];
  }
}

// No __restrict__: the decoder calls it in place (dgate == gate, dup == up); each thread reads its element first.
__global__ void swiglu_backward_kernel(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                                       int64_t n) {
  GRID_STRIDE(i, n) {
    const float g = gate[i], u = up[i], d = dh[i];
    const float sig = 1.0f / (1.0f + expf(-g));
    const float silu = g * sig;
    dgate[i] = d * u * (sig + silu * (1.0f - sig));
    dup[i] = d * silu;
  }
}

constexpr float kGeluBeta = 0.7978845608028654f;  // sqrt(2 / pi), torch's gelu(approximate="tanh")
constexpr float kGeluKappa = 0.044715f;

__global__ void geglu_forward_kernel(float* __restrict__ h, const float* __restrict__ gate,
                                     const float* __restrict__ up, int64_t n) {
  GRID_STRIDE(i, n) {
    const float g = gate[i];
    const float t = tanhf(kGeluBeta * (g + kGeluKappa * (g * g * g)));
    h[i] = 0.5f * g * (1.0f + t) * up[i];
  }
}

// No __restrict__: called in place like swiglu_backward; each thread reads its element first.
__global__ void geglu_backward_kernel(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                                      int64_t n) {
  GRID_STRIDE(i, n) {
    const float g = gate[i], u = up[i], d = dh[i], g2 = g * g;
    const float t = tanhf(kGeluBeta * (g + kGeluKappa * (g2 * g)));
    const float dgelu = 0.5f * (1.0f + t) + 0.5f * g * (1.0f - t * t) * (kGeluBeta * (1.0f + 3.0f * kGeluKappa * g2));
    dup[i] = d * (0.5f * g * (1.0f + t));
    dgate[i] = d * u * dgelu;
  }
}

__global__ void logit_softcap_kernel(float* x, int64_t n, float c) {
  GRID_STRIDE(i, n) x[i] = c * tanhf(x[i] / c);
}

__global__ void embedding_forward_kernel(float* __restrict__ out, const float* __restrict__ table,
                                         const int32_t* __restrict__ ids, int64_t n, int64_t H) {
  const int64_t total = n * H;
  GRID_STRIDE(i, total) {
    const int64_t row = i / H, c = i - row * H;
    out[i] = table[int64_t(ids[row]) * H + c];
  }
}

__global__ void embedding_backward_kernel(float* __restrict__ dtable, const float* __restrict__ dout,
                                          const int32_t* __restrict__ ids, int64_t n, int64_t H) {
  const int64_t total = n * H;
  GRID_STRIDE(i, total) {
    const int64_t row = i / H, c = i - row * H;
    atomicAdd(dtable + int64_t(ids[row]) * H + c, dout[i]);
  }
}

__global__ void rope_kernel(float* __restrict__ x, const int32_t* __restrict__ pos, const float* __restrict__ inv_freq,
                            int64_t n, int64_t heads, int64_t head_dim, bool inverse) {
  const int64_t half = head_dim / 2;
  const int64_t total = n * heads * half;
  GRID_STRIDE(idx, total) {
    const int64_t f = idx % half;
    const int64_t rest = idx / half;  // token * heads + head
    const int64_t tok = rest / heads;
    const float angle = static_cast<float>(pos[tok]) * inv_freq[f];
    float s, c;
    sincosf(angle, &s, &c);
    if (inverse) s = -s;
    float* base = x + rest * head_dim;
    const float x1 = base[f], x2 = base[f + half];
    base[f] = x1 * c - x2 * s;
    base[f + half] = x2 * c + x1 * s;
  }
}

}  // namespace

void adamw(cudaStream_t st, float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
           float eps, float wd, float bc1, float bc2) {
  if (n <= 0) return;
  adamw_kernel<<<grid_for(n), kThreads, 0, st>>>(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2);
  SFT_CUDA_LAUNCH_CHECK("adamw_kernel");
}

void sum_squares(cudaStream_t st, const float* x, int64_t n, double* out) {
  SFT_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), st));
  if (n <= 0) return;
  unsigned blocks = grid_for(n);
  if (blocks > 2048) blocks = 2048;
  sum_squares_kernel<<<blocks, kThreads, 0, st>>>(x, n, out);
  SFT_CUDA_LAUNCH_CHECK("sum_squares_kernel");
}

void scale(cudaStream_t st, float* x, float s, int64_t n) {
  if (n <= 0) return;
  scale_kernel<<<grid_for(n), kThreads, 0, st>>>(x, s, n);
  SFT_CUDA_LAUNCH_CHECK("scale_kernel");
}

void add(cudaStream_t st, float* y, const float* x, int64_t n) {
  if (n <= 0) return;
  add_kernel<<<grid_for(n), kThreads, 0, st>>>(y, x, n);
  SFT_CUDA_LAUNCH_CHECK("add_kernel");
}

void f32_to_bf16(cudaStream_t st, uint16_t* dst, const float* src, int64_t n) {
  if (n <= 0) return;
  f32_to_bf16_kernel<<<grid_for(n), kThreads, 0, st>>>(dst, src, n);
  SFT_CUDA_LAUNCH_CHECK("f32_to_bf16_kernel");
}

void bf16_to_f32(cudaStream_t st, float* dst, const uint16_t* src, int64_t n) {
  if (n <= 0) return;
  bf16_to_f32_kernel<<<grid_for(n), kThreads, 0, st>>>(dst, src, n);
  SFT_CUDA_LAUNCH_CHECK("bf16_to_f32_kernel");
}

void add_bias(cudaStream_t st, float* y, const float* bias, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  add_bias_kernel<<<grid_for(rows * cols), kThreads, 0, st>>>(y, bias, rows, cols);
  SFT_CUDA_LAUNCH_CHECK("add_bias_kernel");
}

void column_sums_add(cudaStream_t st, float* out, const float* x, int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return;
  const int64_t row_blocks = (rows + kColRows - 1) / kColRows;
  SFT_CHECK(row_blocks <= 65535, "cuda column_sums_add: too many rows (", rows, ")");
  dim3 grid(static_cast<unsigned>((cols + kThreads - 1) / kThreads), static_cast<unsigned>(row_blocks));
  column_sums_kernel<<<grid, kThreads, 0, st>>>(out, x, rows, cols);
  SFT_CUDA_LAUNCH_CHECK("column_sums_kernel");
}

void swiglu_forward(cudaStream_t st, float* h, const float* gate, const float* up, int64_t n) {
  if (n <= 0) return;
  swiglu_forward_kernel<<<grid_for(n), kThreads, 0, st>>>(h, gate, up, n);
  SFT_CUDA_LAUNCH_CHECK("swiglu_forward_kernel");
}

void swiglu_backward(cudaStream_t st, float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                     int64_t n) {
  if (n <= 0) return;
  swiglu_backward_kernel<<<grid_for(n), kThreads, 0, st>>>(dgate, dup, dh, gate, up, n);
  SFT_CUDA_LAUNCH_CHECK("swiglu_backward_kernel");
}

void geglu_forward(cudaStream_t st, float* h, const float* gate, const float* up, int64_t n) {
  if (n <= 0) return;
  geglu_forward_kernel<<<grid_for(n), kThreads, 0, st>>>(h, gate, up, n);
  SFT_CUDA_LAUNCH_CHECK("geglu_forward_kernel");
}

void geglu_backward(cudaStream_t st, float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                    int64_t n) {
  if (n <= 0) return;
  geglu_backward_kernel<<<grid_for(n), kThreads, 0, st>>>(dgate, dup, dh, gate, up, n);
  SFT_CUDA_LAUNCH_CHECK("geglu_backward_kernel");
}

void logit_softcap(cudaStream_t st, float* x, int64_t n, float softcap) {
  if (n <= 0) return;
  logit_softcap_kernel<<<grid_for(n), kThreads, 0, st>>>(x, n, softcap);
  SFT_CUDA_LAUNCH_CHECK("logit_softcap_kernel");
}

void embedding_forward(cudaStream_t st, float* out, const float* table, const int32_t* ids, int64_t n, int64_t H) {
  if (n <= 0 || H <= 0) return;
  embedding_forward_kernel<<<grid_for(n * H), kThreads, 0, st>>>(out, table, ids, n, H);
  SFT_CUDA_LAUNCH_CHECK("embedding_forward_kernel");
}

void embedding_backward(cudaStream_t st, float* dtable, const float* dout, const int32_t* ids, int64_t n, int64_t H) {
  if (n <= 0 || H <= 0) return;
  embedding_backward_kernel<<<grid_for(n * H), kThreads, 0, st>>>(dtable, dout, ids, n, H);
  SFT_CUDA_LAUNCH_CHECK("embedding_backward_kernel");
}

void rope(cudaStream_t st, float* x, const int32_t* pos, const float* inv_freq, int64_t n, int64_t heads,
          int64_t head_dim, bool inverse) {
  const int64_t total = n * heads * (head_dim / 2);
  if (total <= 0) return;
  rope_kernel<<<grid_for(total), kThreads, 0, st>>>(x, pos, inv_freq, n, heads, head_dim, inverse);
  SFT_CUDA_LAUNCH_CHECK("rope_kernel");
}

}  // namespace sft::backend::cuda::k
