// A Backend decorator that times every kernel call of the backend it wraps and sums the wall time per kernel and per
// category (gemm, attention, norms/activations, LM head + loss, optimizer, conversions, memory, embedding). Used by
// bench/train_step and bench/eval_profile to print the per-step breakdown; nothing in the product depends on it.
// It is a ForwardingBackend that only uses the call hooks (every transfer and kernel, a new one included) and gemm
// (its FLOPs and the LM-head attribution).
//
// Timing is host wall time around each call, so it is exact for synchronous backends (CPU). For an asynchronous
// device construct it with sync_each_call = true (every call is followed by synchronize(), which serialises the
// stream: slower, but the attribution is then right).
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "backend/backend.h"

namespace sft::backend {

class TimingBackend final : public ForwardingBackend {
 public:
  // Categories of the breakdown, in print order. Other: kernels category_of() does not list (a new kernel until it
  // is given its category).
  enum class Cat { Gemm, HeadGemm, Attention, NormAct, HeadLoss, Optimizer, Convert, Embedding, Memory, Other, kCount };
  static const char* cat_name(Cat c);
  static Cat category_of(const std::string& kernel);

  // vocab_size > 0: gemms with a dimension equal to it are counted as LM head gemms (Cat::HeadGemm).
  explicit TimingBackend(Backend& inner, int64_t vocab_size = 0, bool sync_each_call = false)
      : ForwardingBackend(inner), vocab_(vocab_size), sync_(sync_each_call) {}

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

  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
            const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab) override;

 protected:
  void before_call(const char* kernel) override;
  void after_call(const char* kernel) override;

 private:
  int64_t vocab_;
  bool sync_;
  std::chrono::steady_clock::time_point t0_;
  bool gemm_is_head_ = false;  // the gemm in flight (set by gemm() before it forwards)
  double gemm_flop_ = 0;
  std::map<std::string, Entry> kernels_;
  Entry cat_[static_cast<int>(Cat::kCount)];
};

}  // namespace sft::backend
