// Device-independent pieces of the CUDA backend, kept free of CUDA headers so that they are tested on the CPU
// (tests/gpu/attention_plan_test.cpp runs without a GPU):
//  - GemmArgs: a row-major strided-batched GEMM, and its mapping onto column-major BLAS (cuBLASLt / cuBLAS);
//  - the attention algorithm (chunks of batch rows, head-major packing, batched GEMMs, masked softmax) written
//    against AttnOps, which the CUDA backend implements with its kernels and the test with plain loops.
#pragma once
#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace sft::backend::cuda {

// Compute mode of one GEMM.
enum class GemmCompute : uint8_t { F32, TF32, BF16 };  // BF16 = bf16 A/B, fp32 accumulate, fp32 C

// Row-major strided-batched GEMM description (the Backend::gemm contract plus batching):
// for every batch i: C_i[M,N] = alpha * op(A_i) @ op(B_i) + beta * C_i.
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  const void* A = nullptr;
  int64_t lda = 0;
  const void* B = nullptr;
  int64_t ldb = 0;
  float* C = nullptr;
  int64_t ldc = 0;
  float alpha = 1, beta = 0;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;  // strides in elements
  GemmCompute compute = GemmCompute::F32;
};


// The column-major BLAS call computing a row-major GemmArgs: C^T[N,M] = op(B)^T op(A)^T, i.e. BLAS "A" is our B and
// BLAS "B" is our A, transposes carried over unchanged. Stored matrices are described as column-major rows x cols.
struct ColMajorGemm {
  bool trans_a = false, trans_b = false;  // BLAS op(A), op(B)
  int64_t m = 0, n = 0, k = 0;
  int64_t a_rows = 0, a_cols = 0, lda = 0, stride_a = 0;  // BLAS A = our B
  int64_t b_rows = 0, b_cols = 0, ldb = 0, stride_b = 0;  // BLAS B = our A
  int64_t c_rows = 0, c_cols = 0, ldc = 0, stride_c = 0;
};
ColMajorGemm to_col_major(const GemmArgs& g);

// The operations the attention algorithm needs (semantics as the k:: launchers in kernels.h of the same names).
class AttnOps {
 public:
  virtual ~AttnOps() = default;
  virtual float* scratch(int slot, size_t bytes) = 0;  // slots 0..10 (grow-only, contents undefined)
  virtual void gemm(const GemmArgs& g) = 0;
  virtual void pack_heads(float* dst, const float* src, int64_t rows, int64_t T, int64_t heads, int64_t d) = 0;
  virtual void unpack_heads(float* dst, const float* src, int64_t rows, int64_t T, int64_t heads, int64_t d) = 0;
  // s gives the score (scale, softcap) and the mask (window) of AttnShape.
  virtual void softmax_forward(float* S, float* lse, const int32_t* doc, int64_t rows, int64_t heads, int64_t Tq,
                               int64_t T, const AttnShape& s) = 0;
  // th: tanh of the capped scores (written when s.softcap > 0, else nullptr).
  virtual void probs_from_lse(float* S, float* th, const float* lse, const int32_t* doc, int64_t rows, int64_t heads,
                              int64_t T, const AttnShape& s) = 0;
  virtual void row_dot(float* Dd, const float* dout, const float* out, int64_t n, int64_t heads, int64_t d) = 0;
  virtual void dscores(float* dP, const float* P, const float* th, const float* Dd, int64_t rows, int64_t heads,
                       int64_t T, float scale) = 0;
};

// Batch rows per chunk so that `buffers` score buffers [rows, heads, Tq, T] fp32 stay within limit_bytes (>= 1)
// (the backward holds 2: P and dP, and 3 with a soft-cap: its tanh too).
int64_t attention_chunk_rows(const AttnShape& s, int buffers, int64_t limit_bytes);
// Backend::attention_forward / attention_backward, computed chunk by chunk through ops (mode: the GEMMs' compute).
void attention_forward_impl(AttnOps& ops, float* out, float* lse, const float* q, const float* k, const float* v,
                            const int32_t* doc, const AttnShape& s, int64_t chunk, GemmCompute mode);
void attention_backward_impl(AttnOps& ops, float* dq, float* dk, float* dv, const float* dout, const float* q,
                             const float* k, const float* v, const float* out, const float* lse, const int32_t* doc,
                             const AttnShape& s, int64_t chunk, GemmCompute mode);

}  // namespace sft::backend::cuda
