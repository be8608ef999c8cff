// Launchers of the CUDA backend's own kernels (defined in the .cu files of this folder). All asynchronous on the
// given stream; every launch is checked (SFT_CUDA_LAUNCH_CHECK). Semantics as the Backend method of the same name.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace sft::backend::cuda::k {

// ---- elementwise / optimizer (elementwise.cu) ----
void adamw(cudaStream_t st, float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2,
           float eps, float wd, float bias_corr1, float bias_corr2);
// *out (device double) = sum x^2, accumulated in double.
void sum_squares(cudaStream_t st, const float* x, int64_t n, double* out);
void scale(cudaStream_t st, float* x, float s, int64_t n);
void add(cudaStream_t st, float* y, const float* x, int64_t n);
void f32_to_bf16(cudaStream_t st, uint16_t* dst, const float* src, int64_t n);
void bf16_to_f32(cudaStream_t st, float* dst, const uint16_t* src, int64_t n);
void add_bias(cudaStream_t st, float* y, const float* bias, int64_t rows, int64_t cols);
// out[c] += sum_r x[r, c]
void column_sums_add(cudaStream_t st, float* out, const float* x, int64_t rows, int64_t cols);
void swiglu_forward(cudaStream_t st, float* h, const float* gate, const float* up, int64_t n);
void swiglu_backward(cudaStream_t st, float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                     int64_t n);
void geglu_forward(cudaStream_t st, float* h, const float* gate, const float* up, int64_t n);
void geglu_backward(cudaStream_t st, float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                    int64_t n);
void logit_softcap(cudaStream_t st, float* x, int64_t n, float softcap);
void embedding_forward(cudaStream_t st, float* out, const float* table, const int32_t* ids, int64_t n, int64_t H);
void embedding_backward(cudaStream_t st, float* dtable, const float* dout, const int32_t* ids, int64_t n, int64_t H);
void rope(cudaStream_t st, float* x, const int32_t* pos, const float* inv_freq, int64_t n, int64_t heads,
          int64_t head_dim, bool inverse);

// ---- rows (rows.cu) ----
void rmsnorm_forward(cudaStream_t st, float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t H,
                     float eps, float w_offset);
// dx (+=) only; dw via rmsnorm_backward_dw (which does not depend on the gain's offset).
void rmsnorm_backward_dx(cudaStream_t st, float* dx, const float* dy, const float* x, const float* w,
                         const float* rstd, int64_t n, int64_t H, float w_offset);
// dw[c] (+=) sum_i dy[i,c] * x[i,c] * rstd[i]
void rmsnorm_backward_dw(cudaStream_t st, float* dw, const float* dy, const float* x, const float* rstd, int64_t n,
                         int64_t H);
void softmax_cross_entropy(cudaStream_t st, float* logits, float* loss, uint8_t* greedy, const int32_t* targets,
                           int64_t rows, int64_t V, float grad_scale, float softcap);

// ---- attention helpers (attention.cu) ----
// dst[((b*heads + h)*T + t)*d + e] = src[((b*T + t)*heads + h)*d + e] for b < rows (head-major copy of rows rows).
void pack_heads(cudaStream_t st, float* dst, const float* src, int64_t rows, int64_t T, int64_t heads, int64_t d);
// The inverse of pack_heads (overwrites dst).
void unpack_heads(cudaStream_t st, float* dst, const float* src, int64_t rows, int64_t T, int64_t heads, int64_t d);
// Scores and mask as AttnShape states them: score = scale * S, or softcap * tanh(scale * S / softcap) when
// softcap > 0; key j visible from query i when j <= i, same doc, and i - j < window when window > 0.
// S [rows, heads, Tq, T] raw scores q.k -> probabilities in place (masked entries 0); lse [rows*Tq, heads] written.
// Query iq is key position T - Tq + iq (Tq == T for training). doc points at the doc ids of the chunk's first row.
void attn_softmax_forward(cudaStream_t st, float* S, float* lse, const int32_t* doc, int64_t rows, int64_t heads,
                          int64_t Tq, int64_t T, float scale, float softcap, int64_t window);
// S raw scores -> P = exp(score(S) - lse) (masked 0) in place; with a softcap also th = tanh(scale * S / softcap)
// (same shape as S) for the backward's dS.
void attn_probs_from_lse(cudaStream_t st, float* S, float* th, const float* lse, const int32_t* doc, int64_t rows,
                         int64_t heads, int64_t T, float scale, float softcap, int64_t window);
// Dd [n, heads] = sum_e dout * out  (n tokens)
void attn_row_dot(cudaStream_t st, float* Dd, const float* dout, const float* out, int64_t n, int64_t heads,
                  int64_t d);
// dP <- scale * P * (dP - Dd[row])   (in place into dP); with th (softcap) times (1 - th^2).
void attn_dscores(cudaStream_t st, float* dP, const float* P, const float* th, const float* Dd, int64_t rows,
                  int64_t heads, int64_t T, float scale);

}  // namespace sft::backend::cuda::k
