#include "backend/timing_backend.h"

namespace sft::backend {

const char* TimingBackend::cat_name(Cat c) {
  switch (c) {
    case Cat::Gemm: return "gemm";
    case Cat::HeadGemm: return "lm_head_gemm";
    case Cat::Attention: return "attention";
    case Cat::NormAct: return "norms_activations";
    case Cat::HeadLoss: return "lm_head_softmax_ce";
    case Cat::Optimizer: return "optimizer";
    case Cat::Convert: return "conversions";
    case Cat::Embedding: return "embedding_gather_scatter";
    case Cat::Memory: return "memory_copy_zero";
    default: return "?";
  }
}

double TimingBackend::total_seconds() const {
  double s = 0;
  for (const Entry& e : cat_) s += e.seconds;
  return s;
}

void TimingBackend::reset() {
  kernels_.clear();
  for (Entry& e : cat_) e = Entry{};
}

template <class F>
void TimingBackend::timed(const char* kernel, Cat c, F&& f, double flop) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  if (sync_) in_.synchronize();
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Entry& k = kernels_[kernel];
  k.seconds += dt, k.calls += 1, k.flop += flop;
  Entry& e = cat_[static_cast<int>(c)];
  e.seconds += dt, e.calls += 1, e.flop += flop;
}

void TimingBackend::upload(void* dst, const void* src, size_t bytes) {
  timed("upload", Cat::Memory, [&] { in_.upload(dst, src, bytes); });
}
void TimingBackend::download(void* dst, const void* src, size_t bytes) {
  timed("download", Cat::Memory, [&] { in_.download(dst, src, bytes); });
}
void TimingBackend::zero(void* p, size_t bytes) { timed("zero", Cat::Memory, [&] { in_.zero(p, bytes); }); }
void TimingBackend::copy(void* dst, const void* src, size_t bytes) {
  timed("copy", Cat::Memory, [&] { in_.copy(dst, src, bytes); });
}
void TimingBackend::adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a) {
  timed("adamw_step", Cat::Optimizer, [&] { in_.adamw_step(p, g, m, v, n, a); });
}
double TimingBackend::sum_squares(const float* x, int64_t n) {
  double r = 0;
  timed("sum_squares", Cat::Optimizer, [&] { r = in_.sum_squares(x, n); });
  return r;
}
void TimingBackend::scale(float* x, float s, int64_t n) { timed("scale", Cat::Optimizer, [&] { in_.scale(x, s, n); }); }
void TimingBackend::add(float* y, const float* x, int64_t n) { timed("add", Cat::NormAct, [&] { in_.add(y, x, n); }); }
void TimingBackend::f32_to_bf16(uint16_t* dst, const float* src, int64_t n) {
  timed("f32_to_bf16", Cat::Convert, [&] { in_.f32_to_bf16(dst, src, n); });
}
void TimingBackend::bf16_to_f32(float* dst, const uint16_t* src, int64_t n) {
  timed("bf16_to_f32", Cat::Convert, [&] { in_.bf16_to_f32(dst, src, n); });
}
void TimingBackend::round_to_bf16(float* dst, const float* src, int64_t n) {
  timed("round_to_bf16", Cat::Convert, [&] { in_.round_to_bf16(dst, src, n); });
}
void TimingBackend::gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
                         const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab) {
  const bool head = vocab_ > 0 && (M == vocab_ || N == vocab_ || K == vocab_);
  timed(head ? "gemm(lm head)" : "gemm", head ? Cat::HeadGemm : Cat::Gemm,
        [&] { in_.gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ab); }, 2.0 * M * N * K);
}
void TimingBackend::add_bias(float* y, const float* bias, int64_t rows, int64_t cols) {
  timed("add_bias", Cat::NormAct, [&] { in_.add_bias(y, bias, rows, cols); });
}
void TimingBackend::bias_grad(float* db, const float* dy, int64_t rows, int64_t cols) {
  timed("bias_grad", Cat::NormAct, [&] { in_.bias_grad(db, dy, rows, cols); });
}
void TimingBackend::frozen_gemm(bool trans_w, int64_t M, const void* X, int64_t ldx, DType x_dt, const FrozenWeight& W,
                                DType w_dt, float beta, float* Y, int64_t ldy) {
  const bool head = vocab_ > 0 && (W.rows == vocab_ || W.cols == vocab_);
  timed(head ? "frozen_gemm(lm head)" : "frozen_gemm", head ? Cat::HeadGemm : Cat::Gemm,
        [&] { in_.frozen_gemm(trans_w, M, X, ldx, x_dt, W, w_dt, beta, Y, ldy); }, 2.0 * M * W.rows * W.cols);
}
void TimingBackend::frozen_embedding(float* out, const FrozenWeight& table, const int32_t* ids, int64_t n,
                                     DType w_dt) {
  timed("frozen_embedding", Cat::Embedding, [&] { in_.frozen_embedding(out, table, ids, n, w_dt); });
}
void TimingBackend::embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n, int64_t H) {
  timed("embedding_forward", Cat::Embedding, [&] { in_.embedding_forward(out, table, ids, n, H); });
}
void TimingBackend::embedding_backward(float* dt, const float* dout, const int32_t* ids, int64_t n, int64_t H) {
  timed("embedding_backward", Cat::Embedding, [&] { in_.embedding_backward(dt, dout, ids, n, H); });
}
void TimingBackend::rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t H,
                                    float eps) {
  timed("rmsnorm_forward", Cat::NormAct, [&] { in_.rmsnorm_forward(y, rstd, x, w, n, H, eps); });
}
void TimingBackend::rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                                     const float* rstd, int64_t n, int64_t H) {
  timed("rmsnorm_backward", Cat::NormAct, [&] { in_.rmsnorm_backward(dx, dw, dy, x, w, rstd, n, H); });
}
void TimingBackend::rope(float* x, const int32_t* pos, const float* inv_freq, int64_t n, int64_t heads, int64_t d,
                         bool inverse) {
  timed("rope", Cat::NormAct, [&] { in_.rope(x, pos, inv_freq, n, heads, d, inverse); });
}
void TimingBackend::attention_forward(float* out, float* lse, const float* q, const float* k, const float* v,
                                      const int32_t* doc, const AttnShape& s) {
  timed("attention_forward", Cat::Attention, [&] { in_.attention_forward(out, lse, q, k, v, doc, s); });
}
void TimingBackend::attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                       const float* k, const float* v, const float* out, const float* lse,
                                       const int32_t* doc, const AttnShape& s) {
  timed("attention_backward", Cat::Attention,
        [&] { in_.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, doc, s); });
}
void TimingBackend::swiglu_forward(float* h, const float* gate, const float* up, int64_t n) {
  timed("swiglu_forward", Cat::NormAct, [&] { in_.swiglu_forward(h, gate, up, n); });
}
void TimingBackend::swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                                    int64_t n) {
  timed("swiglu_backward", Cat::NormAct, [&] { in_.swiglu_backward(dgate, dup, dh, gate, up, n); });
}
void TimingBackend::softmax_cross_entropy(float* logits, float* loss, uint8_t* greedy, const int32_t* targets,
                                          int64_t rows, int64_t V, float grad_scale) {
  timed("softmax_cross_entropy", Cat::HeadLoss,
        [&] { in_.softmax_cross_entropy(logits, loss, greedy, targets, rows, V, grad_scale); });
}

}  // namespace sft::backend
