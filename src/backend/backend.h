// The kernel interface: everything model/ and train/ run on a device goes through a Backend. backend/cpu implements
// it (scalar reference + fast version of every kernel), backend/cuda implements it for NVIDIA GPUs.
// model/ and train/ include this header only, never a concrete backend; concrete backends never include model/.
//
// CONTRACT: the memory and optimizer part is used by train/; the compute kernels are used by model/ and implemented
// by backend/cpu (two implementations: make_cpu_reference_backend() = plain scalar loops, the oracle of every fast
// kernel; make_cpu_backend() = oneDNN + OpenMP) and backend/cuda.
//
// Every virtual is pure, capabilities included, so that a backend states each one and ForwardingBackend (below)
// cannot miss a forward: a forgotten one leaves it abstract, which the static_assert after it reports at compile time.
// The two with a generic implementation (dropout through the host, round_to_bf16's "not needed") keep it as the
// base's definition: a backend that wants it writes `Backend::dropout(...)` in its override.
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
#include <type_traits>

namespace sft::backend {

struct AdamWArgs {
  float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0;
  int64_t step = 1;  // 1-based, for bias correction
};

enum class DType : uint8_t { F32, BF16 };

// How a frozen weight (a LoRA / QLoRA base matrix: no gradient, no optimizer state) is stored on the device.
//   F32   fp32 values;  BF16  bf16 values (2 B/param);
//   NF4 / FP4  bitsandbytes' 4-bit formats (0.5 B/param + scales): the matrix flattened row-major is cut into blocks of
//   kQuantBlock = 64 consecutive elements, each element is a 4-bit index into the format's 16-value code book
//   (backend/quant4.h), value = code[index] * absmax[block]; two elements per byte, the even element in the HIGH
//   nibble (bitsandbytes' packing). absmax is fp32 per block, or with double quantisation 8 bits per block:
//   absmax[b] = dynamic_code[qabsmax[b]] * nested_absmax[b / 256] + offset (two fp32 roundings, as bitsandbytes).
enum class WeightFormat : uint8_t { F32, BF16, NF4, FP4 };
const char* weight_format_name(WeightFormat f);  // "float32", "bfloat16", "nf4", "fp4"
constexpr int64_t kQuantBlock = 64;    // bitsandbytes' blocksize for 4-bit weights (QLoRA)
constexpr int64_t kNestedBlock = 256;  // blocksize of the double quantisation of the absmax values

// A frozen [rows, cols] weight in its stored form, as the frozen_* kernels read it (device pointers). Built by
// model/frozen_weights.h; rows = out features and cols = in features for a linear layer (HF's [out, in]).
struct FrozenWeight {
  WeightFormat format = WeightFormat::F32;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;  // F32: float[n]; BF16: uint16_t[n]; NF4/FP4: uint8_t[(n + 1) / 2]
  const float* absmax = nullptr;         // 4-bit without double quantisation: fp32 [blocks()]
  const uint8_t* qabsmax = nullptr;      // 4-bit with double quantisation: [blocks()] indices into dynamic_code
  const float* nested_absmax = nullptr;  //   ... and fp32 [ceil(blocks() / 256)]
  float offset = 0;                      //   ... the mean that was subtracted before quantising the absmax values
  int64_t numel() const { return rows * cols; }
  int64_t blocks() const { return (numel() + kQuantBlock - 1) / kQuantBlock; }
  bool quantized() const { return format == WeightFormat::NF4 || format == WeightFormat::FP4; }
  bool double_quant() const { return qabsmax != nullptr; }
};

// Attention geometry for a batch: B rows of T tokens, per-token doc ids ([B*T], -1 = padding).
// Query head h uses kv head h / (n_heads / n_kv_heads) (GQA). Token i of a row attends to token j of the same row iff
// j <= i and doc[j] == doc[i] != -1 (and i - j < window when window > 0). Padding tokens (doc -1) produce output 0
// and receive/give no gradient.
struct AttnShape {
  int64_t B = 0, T = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 0;  // usually head_dim^-0.5
  // Score of query i and key j: s = scale * q_i.k_j, or with softcap > 0 (Gemma 2's attn_logit_softcapping, applied
  // before the mask as transformers does) s = softcap * tanh(scale * q_i.k_j / softcap).
  float softcap = 0;
  // Sliding window (Gemma 2's sliding layers, transformers' sliding_window_overlay): key j is visible from query i
  // only when i - j < window; 0 = no window. Positions are indices in the row (T - Tq + iq for query iq).
  int64_t window = 0;
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
  virtual const void* host_view(const void* p) const = 0;
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
  // Only called when fast_bf16_gemm() is false; Backend::round_to_bf16 throws (for backends with fast bf16).
  virtual void round_to_bf16(float* dst, const float* src, int64_t n) = 0;
  // False when bf16 gemm operands would be slower than fp32 on this device (e.g. a CPU without AVX512-BF16/AMX).
  // The model then emulates BF16 mode bit-exactly: operands rounded to bf16 values (round_to_bf16) but stored and
  // multiplied as fp32 — the products of bf16 values are exact in fp32, so only the accumulation order differs.
  virtual bool fast_bf16_gemm() const = 0;
  // Inverted dropout with a counter-based mask (LoRA's dropout on the adapter input): y[i] = keep(i) ? x[i]/(1-p) : 0,
  // keep(i) = dropout_keep(seed, i, p). The same seed gives the same mask, so the backward re-applies it to the
  // gradient instead of storing it. y may equal x. Backend::dropout runs it on the host through download/upload.
  virtual void dropout(float* y, const float* x, int64_t n, float p, uint64_t seed) = 0;

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

  // ---- frozen weights in their stored form (model/frozen_weights.h: LoRA's bf16-only base, QLoRA's 4-bit base) ----
  // The weight's values W[r, c]: F32 as stored, BF16 widened (exact), NF4/FP4 dequantised in fp32 (code x absmax, see
  // WeightFormat) and, when w_dt == BF16, rounded to bf16 (bitsandbytes dequantises into its quant_state dtype,
  // bfloat16 for a bf16 model, before the matmul; w_dt does not change F32/BF16-stored values).
  // trans_w: Y[M, rows] = X[M, cols] W^T (a linear's forward); otherwise Y[M, cols] = X[M, rows] W (its input
  // gradient). There is no weight gradient: these weights are frozen. X has dtype x_dt (F32 or BF16, leading
  // dimension ldx); Y is fp32 with leading dimension ldy; fp32 accumulation; beta 0 (overwrite, Y may hold NaN) or 1.
  // Implementations never materialise the whole weight in another dtype: tiles are converted inside the blocked loop.
  // The default throws (a backend without frozen-weight kernels).
  virtual void frozen_gemm(bool trans_w, int64_t M, const void* X, int64_t ldx, DType x_dt, const FrozenWeight& W,
                           DType w_dt, float beta, float* Y, int64_t ldy);
  // out[i, :] = W[ids[i], :] (values as frozen_gemm's, fp32), table [rows = V, cols = H], ids in [0, V) (the caller
  // validates them). The embedding gather of a bf16 (or 4-bit) table; the default throws.
  virtual void frozen_embedding(float* out, const FrozenWeight& table, const int32_t* ids, int64_t n, DType w_dt);

  // ---- embedding ----
  // out[i,:] = table[ids[i],:]   (table [V,H], ids [n] in [0,V) — the caller validates ids)
  virtual void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n, int64_t H) = 0;
  // (+=) dtable[ids[i],:] += dout[i,:]
  virtual void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t n, int64_t H) = 0;

  // ---- RMSNorm (transformers LlamaRMSNorm/Qwen2RMSNorm/Gemma2RMSNorm in fp32) ----
  // rstd[i] = 1/sqrt(mean(x[i,:]^2) + eps); y = g * (x * rstd) with the gain g = w + w_offset in fp32: w_offset 0
  // (Llama, Qwen) or 1 (Gemma's (1 + w)). rstd [n] is saved for the backward.
  virtual void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t H, float eps,
                               float w_offset) = 0;
  // dx (+=) rstd*(dy*g - xhat*mean(dy*g*xhat)) with xhat = x*rstd, g = w + w_offset;  dw (+=) sum_i dy*xhat.
  virtual void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                                const float* rstd, int64_t n, int64_t H, float w_offset) = 0;

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
  virtual bool attention_shares_keys() const = 0;
  // Whether attention's work follows the documents of a row: a query visits only keys of its own document (other
  // documents' keys are skipped, not masked), so a row of many short samples costs sum(len^2), not T^2. Padding-free
  // training (train/trainer.cpp) lays each micro-batch out as one such row only where this is true.
  virtual bool attention_skips_other_documents() const = 0;
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

  // ---- GeGLU: h = gelu_tanh(gate) * up (n elements; Gemma's gelu_pytorch_tanh MLP) ----
  // gelu_tanh(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), torch.nn.functional.gelu(approximate="tanh").
  // The backward may run in place exactly as swiglu_backward (dgate == gate, dup == up).
  virtual void geglu_forward(float* h, const float* gate, const float* up, int64_t n) = 0;
  virtual void geglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                              int64_t n) = 0;

  // ---- softmax cross-entropy over the vocabulary, one chunk of rows of logits [rows, V] (fp32) ----
  // With softcap > 0 (Gemma 2's final_logit_softcapping) every logit x of a row with a target is first capped,
  // z = softcap * tanh(x / softcap); otherwise z = x. For each row r with target t = targets[r] (>= 0; rows with
  // t < 0 are skipped and get loss 0 / grad 0, their logits untouched unless a gradient is asked for):
  //   loss[r] = logsumexp(z[r,:]) - z[r,t]                      (nats, fp32 math, the torch cross_entropy value)
  //   greedy[r] = (z[r,t] is the maximum; ties resolve to the lowest index as torch.argmax)  (when non-null)
  //   when grad_scale != 0: logits[r,:] is overwritten IN PLACE by the gradient with respect to the (uncapped)
  //   logits, grad_scale * (softmax(z[r,:]) - onehot(t)) * dz/dx (dz/dx = 1 - (z/softcap)^2 with a cap, else 1);
  //   rows with t < 0 become 0. With grad_scale == 0 the rows with a target hold z afterwards (x when uncapped).
  virtual void softmax_cross_entropy(float* logits, float* loss, uint8_t* greedy, const int32_t* targets,
                                     int64_t rows, int64_t V, float grad_scale, float softcap) = 0;
  // x = softcap * tanh(x / softcap) in place (n elements, softcap > 0): the logits Gemma 2 returns (generation,
  // scoring through logits()); the training path caps inside softmax_cross_entropy.
  virtual void logit_softcap(float* x, int64_t n, float softcap) = 0;
};

// A Backend that forwards every call to another one (the inner backend). Decorators derive from it and override only
// what they measure: backend/timing_backend (times every kernel through the call hooks), the allocation counter of
// tests/model/model_test_util.h (alloc/free), the sizing backend of model/memory_plan.cpp (alloc and no inner backend).
// A kernel added to Backend above gets its one forward here; forgetting it leaves this class abstract, and the
// static_assert below stops the build.
class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(Backend& inner) : in_(&inner) {}

  std::string name() const override { return inner().name(); }
  void* alloc(size_t bytes) override { return inner().alloc(bytes); }
  void free(void* p) override { inner().free(p); }
  void upload(void* dst, const void* src, size_t bytes) override {
    before_call("upload"), inner().upload(dst, src, bytes), after_call("upload");
  }
  void download(void* dst, const void* src, size_t bytes) override {
    before_call("download"), inner().download(dst, src, bytes), after_call("download");
  }
  const void* host_view(const void* p) const override { return inner().host_view(p); }
  void zero(void* p, size_t bytes) override { before_call("zero"), inner().zero(p, bytes), after_call("zero"); }
  void synchronize() override { inner().synchronize(); }
  void copy(void* dst, const void* src, size_t bytes) override {
    before_call("copy"), inner().copy(dst, src, bytes), after_call("copy");
  }
  void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWArgs& a) override {
    before_call("adamw_step"), inner().adamw_step(param, grad, m, v, n, a), after_call("adamw_step");
  }
  double sum_squares(const float* x, int64_t n) override {
    before_call("sum_squares");
    const double r = inner().sum_squares(x, n);
    after_call("sum_squares");
    return r;
  }
  void scale(float* x, float s, int64_t n) override { before_call("scale"), inner().scale(x, s, n), after_call("scale"); }
  void add(float* y, const float* x, int64_t n) override { before_call("add"), inner().add(y, x, n), after_call("add"); }
  void f32_to_bf16(uint16_t* dst, const float* src, int64_t n) override {
    before_call("f32_to_bf16"), inner().f32_to_bf16(dst, src, n), after_call("f32_to_bf16");
  }
  void bf16_to_f32(float* dst, const uint16_t* src, int64_t n) override {
    before_call("bf16_to_f32"), inner().bf16_to_f32(dst, src, n), after_call("bf16_to_f32");
  }
  void round_to_bf16(float* dst, const float* src, int64_t n) override {
    before_call("round_to_bf16"), inner().round_to_bf16(dst, src, n), after_call("round_to_bf16");
  }
  bool fast_bf16_gemm() const override { return inner().fast_bf16_gemm(); }
  void dropout(float* y, const float* x, int64_t n, float p, uint64_t seed) override {
    before_call("dropout"), inner().dropout(y, x, n, p, seed), after_call("dropout");
  }
  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
            const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab) override {
    before_call("gemm");
    inner().gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ab);
    after_call("gemm");
  }
  void add_bias(float* y, const float* bias, int64_t rows, int64_t cols) override {
    before_call("add_bias"), inner().add_bias(y, bias, rows, cols), after_call("add_bias");
  }
  void bias_grad(float* dbias, const float* dy, int64_t rows, int64_t cols) override {
    before_call("bias_grad"), inner().bias_grad(dbias, dy, rows, cols), after_call("bias_grad");
  }
  void frozen_gemm(bool trans_w, int64_t M, const void* X, int64_t ldx, DType x_dt, const FrozenWeight& W, DType w_dt,
                   float beta, float* Y, int64_t ldy) override {
    before_call("frozen_gemm"), inner().frozen_gemm(trans_w, M, X, ldx, x_dt, W, w_dt, beta, Y, ldy);
    after_call("frozen_gemm");
  }
  void frozen_embedding(float* out, const FrozenWeight& table, const int32_t* ids, int64_t n, DType w_dt) override {
    before_call("frozen_embedding"), inner().frozen_embedding(out, table, ids, n, w_dt), after_call("frozen_embedding");
  }
  void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n, int64_t H) override {
    before_call("embedding_forward"), inner().embedding_forward(out, table, ids, n, H), after_call("embedding_forward");
  }
  void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t n, int64_t H) override {
    before_call("embedding_backward");
    inner().embedding_backward(dtable, dout, ids, n, H);
    after_call("embedding_backward");
  }
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t H, float eps,
                       float w_offset) override {
    before_call("rmsnorm_forward"), inner().rmsnorm_forward(y, rstd, x, w, n, H, eps, w_offset);
    after_call("rmsnorm_forward");
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                        int64_t n, int64_t H, float w_offset) override {
    before_call("rmsnorm_backward"), inner().rmsnorm_backward(dx, dw, dy, x, w, rstd, n, H, w_offset);
    after_call("rmsnorm_backward");
  }
  void rope(float* x, const int32_t* pos, const float* inv_freq, int64_t n, int64_t heads, int64_t head_dim,
            bool inverse) override {
    before_call("rope"), inner().rope(x, pos, inv_freq, n, heads, head_dim, inverse), after_call("rope");
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* doc,
                         const AttnShape& s) override {
    before_call("attention_forward"), inner().attention_forward(out, lse, q, k, v, doc, s);
    after_call("attention_forward");
  }
  bool attention_shares_keys() const override { return inner().attention_shares_keys(); }
  bool attention_skips_other_documents() const override { return inner().attention_skips_other_documents(); }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const int32_t* doc,
                          const AttnShape& s) override {
    before_call("attention_backward"), inner().attention_backward(dq, dk, dv, dout, q, k, v, out, lse, doc, s);
    after_call("attention_backward");
  }
  void swiglu_forward(float* h, const float* gate, const float* up, int64_t n) override {
    before_call("swiglu_forward"), inner().swiglu_forward(h, gate, up, n), after_call("swiglu_forward");
  }
  void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                       int64_t n) override {
    before_call("swiglu_backward"), inner().swiglu_backward(dgate, dup, dh, gate, up, n), after_call("swiglu_backward");
  }
  void geglu_forward(float* h, const float* gate, const float* up, int64_t n) override {
    before_call("geglu_forward"), inner().geglu_forward(h, gate, up, n), after_call("geglu_forward");
  }
  void geglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                      int64_t n) override {
    before_call("geglu_backward"), inner().geglu_backward(dgate, dup, dh, gate, up, n), after_call("geglu_backward");
  }
  void softmax_cross_entropy(float* logits, float* loss, uint8_t* greedy, const int32_t* targets, int64_t rows,
                             int64_t V, float grad_scale, float softcap) override {
    before_call("softmax_cross_entropy");
    inner().softmax_cross_entropy(logits, loss, greedy, targets, rows, V, grad_scale, softcap);
    after_call("softmax_cross_entropy");
  }
  void logit_softcap(float* x, int64_t n, float softcap) override {
    before_call("logit_softcap"), inner().logit_softcap(x, n, softcap), after_call("logit_softcap");
  }

 protected:
  // No inner backend: every call the subclass does not override throws an sft::Error with this reason (the sizing
  // backend, which only counts allocations).
  explicit ForwardingBackend(const char* no_inner_reason) : no_inner_reason_(no_inner_reason) {}
  Backend& inner() const;
  // Called around every call that does work on the device (transfers, zero/copy, every kernel; not alloc/free,
  // synchronize or the capability queries), with the kernel's name, in pairs and never nested. An exception from
  // the inner call skips after_call.
  virtual void before_call(const char* kernel) { (void)kernel; }
  virtual void after_call(const char* kernel) { (void)kernel; }

 private:
  Backend* in_ = nullptr;
  const char* no_inner_reason_ = nullptr;
};
static_assert(!std::is_abstract_v<ForwardingBackend>, "ForwardingBackend misses a forward of a Backend virtual");

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
