// The kernel interface: everything model/ and train/ run on a device goes through a Backend. backend/cpu implements
// it (scalar reference + fast version of every kernel), backend/cuda implements it for NVIDIA GPUs.
// model/ and train/ include this header only, never a concrete backend; concrete backends never include model/.
//
// CONTRACT: the memory and optimizer part is used by train/; the compute kernels are used by model/ and implemented
// by backend/cpu (two implementations: make_cpu_reference_backend() = plain scalar loops, the oracle of every fast
// kernel; make_cpu_backend() = oneDNN + OpenMP) and backend/cuda.
//
// Conventions for every kernel below:
//  - All pointers are device pointers (host pointers for the CPU backends) obtained from alloc().
//  - Tensors are dense row-major (C order). "[N, H]" means N rows of H contiguous elements.
//  - "tokens" N = B*T (rows of a batch flattened); "heads" tensors are [N, n_heads, head_dim].
//  - Activations, gradients, norms, softmax, loss: fp32. Only gemm operands may be bf16 (uint16_t storage, the upper
//    half of an fp32), with fp32 accumulation and fp32 output.
//  - Functions documented "(+=)" accumulate into their output; all others overwrite it.
//  - Kernels may run asynchronously on a device; download()/synchronize() order them with the host.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace sft::backend {

struct AdamWArgs {
  float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0;
  int64_t step = 1;  // 1-based, for bias correction
};

enum class DType : uint8_t { F32, BF16 };

// Attention geometry for a batch: B rows of T tokens, per-token doc ids ([B*T], -1 = padding).
// Query head h uses kv head h / (n_heads / n_kv_heads) (GQA). Token i of a row attends to token j of the same row iff
// j <= i and doc[j] == doc[i] != -1. Padding tokens (doc -1) produce output 0 and receive/give no gradient.
struct AttnShape {
  int64_t B = 0, T = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 0;  // usually head_dim^-0.5
  // Queries are the LAST Tq positions of each row (0 = all T). With Tq < T (KV-cache decoding) q/out/lse hold B*Tq
  // rows while k/v/doc hold B*T; the backward requires Tq == 0 or T.
  int64_t Tq = 0;
  // Keys [0, shared_keys) of every row are row 0's: the forward reads their K and V from row 0, so rows b > 0 need
  // not hold them (the evaluator's branches after one cached prefix: model/kv_session.cpp). doc is still read per
  // row. Forward only, and only on a backend whose attention_shares_keys() is true.
  int64_t shared_keys = 0;
  int64_t q_len() const { return Tq == 0 ? T : Tq; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu", "cpu-reference", "cuda:0"

  // ---- memory (device memory for cuda, host memory for cpu) ----
  virtual void* alloc(size_t bytes) = 0;  // zero-initialised, 64-byte aligned at least
  virtual void free(void* p) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  // The host's view of device memory p when the device's memory is the host's (CPU backends: p itself), after
  // synchronize(); nullptr when it is not (CUDA). Checkpoint writers read the weights and optimizer state through it
  // instead of downloading a copy (the copy was a 4 GiB transient for Qwen2.5-0.5B's AdamW state).
  virtual const void* host_view(const void* p) const { (void)p; return nullptr; }
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void synchronize() = 0;
  // device-to-device copy
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;

  // ---- optimizer (fp32 master weights) ----
  // torch.optim.AdamW semantics: p -= lr*wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
  // p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
  virtual void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWArgs& a) = 0;
  virtual double sum_squares(const float* x, int64_t n) = 0;  // accumulated in double
  virtual void scale(float* x, float s, int64_t n) = 0;

  // ---- elementwise / conversions ----
  virtual void add(float* y, const float* x, int64_t n) = 0;  // y += x
  virtual void f32_to_bf16(uint16_t* dst, const float* src, int64_t n) = 0;  // round to nearest even (torch cast)
  virtual void bf16_to_f32(float* dst, const uint16_t* src, int64_t n) = 0;
  // dst = float(bf16(src)) (round to nearest even, kept in fp32 storage; dst may equal src).
  // Only called when fast_bf16_gemm() is false; the default throws (backends with fast bf16 need not implement it).
  virtual void round_to_bf16(float* dst, const float* src, int64_t n);
  // False when bf16 gemm operands would be slower than fp32 on this device (e.g. a CPU without AVX512-BF16/AMX).
  // The model then emulates BF16 mode bit-exactly: operands rounded to bf16 values (round_to_bf16) but stored and
  // multiplied as fp32 — the products of bf16 values are exact in fp32, so only the accumulation order differs.
  virtual bool fast_bf16_gemm() const { return true; }
  // Inverted dropout with a counter-based mask (LoRA's dropout on the adapter input): y[i] = keep(i) ? x[i]/(1-p) : 0,
  // keep(i) = dropout_keep(seed, i, p). The same seed gives the same mask, so the backward re-applies it to the
  // gradient instead of storing it. y may equal x. The default runs on the host through download/upload.
  virtual void dropout(float* y, const float* x, int64_t n, float p, uint64_t seed);

  // ---- matrix multiply ----
  // C[M,N] = alpha * op(A) @ op(B) + beta * C, fp32 accumulation, C fp32 with leading dimension ldc.
  // op(A) is [M,K]: A stored [M,K] (lda >= K) or, when trans_a, stored [K,M] (lda >= M); likewise op(B) is [K,N]:
  // B stored [K,N] (ldb >= N) or, when trans_b, stored [N,K] (ldb >= K). A and B both have dtype ab (F32 or BF16).
  // beta is 0 (overwrite; C may hold garbage/NaN) or 1 (accumulate).
  // Typical uses (W = [out, in] as HF stores it): forward Y = X @ W^T (trans_b); dX = dY @ W; dW += dY^T @ X (trans_a).
  virtual void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                    int64_t lda, const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab) = 0;
  virtual void add_bias(float* y, const float* bias, int64_t rows, int64_t cols) = 0;       // y[r,c] += bias[c]
  virtual void bias_grad(float* dbias, const float* dy, int64_t rows, int64_t cols) = 0;    // (+=) column sums

  // ---- embedding ----
  // out[i,:] = table[ids[i],:]   (table [V,H], ids [n] in [0,V) — the caller validates ids)
  virtual void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n, int64_t H) = 0;
  // (+=) dtable[ids[i],:] += dout[i,:]
  virtual void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t n, int64_t H) = 0;

  // ---- RMSNorm (transformers LlamaRMSNorm/Qwen2RMSNorm in fp32) ----
  // rstd[i] = 1/sqrt(mean(x[i,:]^2) + eps); y = w * (x * rstd). rstd [n] is saved for the backward.
  virtual void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t H,
                               float eps) = 0;
  // dx (+=) rstd*(dy*w - xhat*mean(dy*w*xhat)) with xhat = x*rstd;  dw (+=) sum_i dy*xhat.
  virtual void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                                const float* rstd, int64_t n, int64_t H) = 0;

  // ---- RoPE (half-split rotate_half, as transformers), in place on x [n, heads, head_dim] ----
  // angle(i, f) = float(pos[i]) * inv_freq[f] in fp32, f < head_dim/2; x' = x*cos + rotate_half(x)*sin.
  // inverse = true applies the transpose rotation (the backward of the forward rotation).
  virtual void rope(float* x, const int32_t* pos, const float* inv_freq, int64_t n, int64_t heads, int64_t head_dim,
                    bool inverse) = 0;

  // ---- attention (softmax(q k^T * scale + mask) v, fp32, doc-id causal masking; see AttnShape) ----
  // q, out [B*Tq, n_heads, d]; k, v [B*T, n_kv_heads, d]; doc [B*T]; lse [B*Tq, n_heads] = log-sum-exp of the scaled
  // scores of each query (saved for the backward; -inf-free: 0 for padding).
  virtual void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                 const int32_t* doc, const AttnShape& s) = 0;
  // Whether attention_forward honours AttnShape::shared_keys (otherwise callers give every row its own copy).
  virtual bool attention_shares_keys() const { return false; }
  // Whether attention's work follows the documents of a row: a query visits only keys of its own document (other
  // documents' keys are skipped, not masked), so a row of many short samples costs sum(len^2), not T^2. Padding-free
  // training (train/trainer.cpp) lays each micro-batch out as one such row only where this is true.
  virtual bool attention_skips_other_documents() const { return false; }
  // dq [B*T,n_heads,d], dk, dv [B*T,n_kv_heads,d] are overwritten.
  virtual void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                  const float* k, const float* v, const float* out, const float* lse,
                                  const int32_t* doc, const AttnShape& s) = 0;

  // ---- SwiGLU: h = silu(gate) * up (n elements) ----
  // The backward may run in place: dgate == gate and dup == up (the decoder does this to need no dgate/dup scratch);
  // every implementation reads an element's gate, up and dh before it writes that element's dgate and dup.
  virtual void swiglu_forward(float* h, const float* gate, const float* up, int64_t n) = 0;
  virtual void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                               int64_t n) = 0;

  // ---- softmax cross-entropy over the vocabulary, one chunk of rows of logits [rows, V] (fp32) ----
  // For each row r with target t = targets[r] (>= 0; rows with t < 0 are skipped and get loss 0 / grad 0):
  //   loss[r] = logsumexp(logits[r,:]) - logits[r,t]           (nats, fp32 math, the torch cross_entropy value)
  //   greedy[r] = (logits[r,t] is the maximum; ties resolve to the lowest index as torch.argmax)  (when non-null)
  //   when grad_scale != 0: logits[r,:] is overwritten IN PLACE by grad_scale * (softmax(logits[r,:]) - onehot(t)),
  //   rows with t < 0 become 0.
  virtual void softmax_cross_entropy(float* logits, float* loss, uint8_t* greedy, const int32_t* targets,
                                     int64_t rows, int64_t V, float grad_scale) = 0;
};

// The keep decision of Backend::dropout for element i: a splitmix64 hash of (seed, i) mapped to [0, 1) with 24 bits,
// kept when >= p. Pure function of its arguments, identical on every backend.
inline bool dropout_keep(uint64_t seed, uint64_t i, float p) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<float>(z >> 40) * (1.0f / 16777216.0f) >= p;
}

// The CPU backend (always built): oneDNN matmuls, OpenMP-parallel fast kernels.
std::unique_ptr<Backend> make_cpu_backend();
// The plain scalar reference of every CPU kernel (single thread, straightforward loops, double accumulators where it
// matters): the oracle the fast CPU and CUDA kernels are tested against. Slow; tests only.
std::unique_ptr<Backend> make_cpu_reference_backend();
// The CUDA backend when built with SFT_CUDA (throws sft::Error naming the reason otherwise or when no device).
std::unique_ptr<Backend> make_cuda_backend(int device_index);

}  // namespace sft::backend
