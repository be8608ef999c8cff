// A Backend decorator that times every kernel call of the backend it wraps and sums the wall time per kernel and per
// category (gemm, attention, norms/activations, LM head + loss, optimizer, conversions, memory, embedding). Used by
// bench/train_step to print the per-step breakdown; nothing in the product depends on it.
//
// Timing is host wall time around each call, so it is exact for synchronous backends (CPU). For an asynchronous
// device construct it with sync_each_call = true (every call is followed by synchronize(), which serialises the
// stream: slower, but the attribution is then right).
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace sft::backend {

class TimingBackend final : public Backend {
 public:
  // Categories of the breakdown, in print order.
  enum class Cat { Gemm, HeadGemm, Attention, NormAct, HeadLoss, Optimizer, Convert, Embedding, Memory, kCount };
  static const char* cat_name(Cat c);

  // vocab_size > 0: gemms with a dimension equal to it are counted as LM head gemms (Cat::HeadGemm).
  explicit TimingBackend(Backend& inner, int64_t vocab_size = 0, bool sync_each_call = false)
      : in_(inner), vocab_(vocab_size), sync_(sync_each_call) {}

  struct Entry {
    double seconds = 0;
    int64_t calls = 0;
    double flop = 0;  // gemm only: 2*M*N*K
  };
  const std::map<std::string, Entry>& per_kernel() const { return kernels_; }
  double seconds(Cat c) const { return cat_[static_cast<int>(c)].seconds; }
  double gemm_flop() const { return cat_[int(Cat::Gemm)].flop + cat_[int(Cat::HeadGemm)].flop; }
  double total_seconds() const;
  void reset();

  std::string name() const override { return in_.name(); }
  void* alloc(size_t bytes) override { return in_.alloc(bytes); }
  void free(void* p) override { in_.free(p); }
  void upload(void* dst, const void* src, size_t bytes) override;
  void download(void* dst, const void* src, size_t bytes) override;
  void zero(void* p, size_t bytes) override;
  void synchronize() override { in_.synchronize(); }
  void copy(void* dst, const void* src, size_t bytes) override;
  void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWArgs& a) override;
  double sum_squares(const float* x, int64_t n) override;
  void scale(float* x, float s, int64_t n) override;
  void add(float* y, const float* x, int64_t n) override;
  void f32_to_bf16(uint16_t* dst, const float* src, int64_t n) override;
  void bf16_to_f32(float* dst, const uint16_t* src, int64_t n) override;
  void round_to_bf16(float* dst, const float* src, int64_t n) override;
  bool fast_bf16_gemm() const override { return in_.fast_bf16_gemm(); }
  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
            const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab) override;
  void add_bias(float* y, const float* bias, int64_t rows, int64_t cols) override;
  void bias_grad(float* dbias, const float* dy, int64_t rows, int64_t cols) override;
  void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n, int64_t H) override;
  void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t n, int64_t H) override;
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t H,
                       float eps) override;
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                        int64_t n, int64_t H) override;
  void rope(float* x, const int32_t* pos, const float* inv_freq, int64_t n, int64_t heads, int64_t head_dim,
            bool inverse) override;
  bool attention_shares_keys() const override { return in_.attention_shares_keys(); }
  bool attention_skips_other_documents() const override { return in_.attention_skips_other_documents(); }
  const void* host_view(const void* p) const override { return in_.host_view(p); }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* doc,
                         const AttnShape& s) override;
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const int32_t* doc,
                          const AttnShape& s) override;
  void swiglu_forward(float* h, const float* gate, const float* up, int64_t n) override;
  void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                       int64_t n) override;
  void softmax_cross_entropy(float* logits, float* loss, uint8_t* greedy, const int32_t* targets, int64_t rows,
                             int64_t V, float grad_scale) override;

 private:
  template <class F>
  void timed(const char* kernel, Cat c, F&& f, double flop = 0);

  Backend& in_;
  int64_t vocab_;
  bool sync_;
  std::map<std::string, Entry> kernels_;
  Entry cat_[static_cast<int>(Cat::kCount)];
};

}  // namespace sft::backend
