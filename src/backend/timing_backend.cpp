#include "backend/timing_backend.h"

#include <cstring>

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
    case Cat::Other: return "other_kernels";
    default: return "?";
  }
}

TimingBackend::Cat TimingBackend::category_of(const std::string& k) {
  static const std::map<std::string, Cat> table = {
      {"gemm", Cat::Gemm}, {"add_bias", Cat::NormAct}, {"bias_grad", Cat::NormAct},
      {"attention_forward", Cat::Attention}, {"attention_backward", Cat::Attention},
      {"rmsnorm_forward", Cat::NormAct}, {"rmsnorm_backward", Cat::NormAct}, {"rope", Cat::NormAct},
      {"swiglu_forward", Cat::NormAct}, {"swiglu_backward", Cat::NormAct}, {"geglu_forward", Cat::NormAct},
      {"geglu_backward", Cat::NormAct}, {"add", Cat::NormAct}, {"dropout", Cat::NormAct},
      {"softmax_cross_entropy", Cat::HeadLoss}, {"logit_softcap", Cat::HeadLoss},
      {"adamw_step", Cat::Optimizer}, {"sum_squares", Cat::Optimizer}, {"scale", Cat::Optimizer},
      {"f32_to_bf16", Cat::Convert}, {"bf16_to_f32", Cat::Convert}, {"round_to_bf16", Cat::Convert},
      {"embedding_forward", Cat::Embedding}, {"embedding_backward", Cat::Embedding},
      {"upload", Cat::Memory}, {"download", Cat::Memory}, {"zero", Cat::Memory}, {"copy", Cat::Memory}};
  const auto it = table.find(k);
  return it == table.end() ? Cat::Other : it->second;
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

void TimingBackend::gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
                         const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab) {
  gemm_is_head_ = vocab_ > 0 && (M == vocab_ || N == vocab_ || K == vocab_);
  gemm_flop_ = 2.0 * M * N * K;
  ForwardingBackend::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ab);
}

void TimingBackend::before_call(const char*) { t0_ = std::chrono::steady_clock::now(); }

void TimingBackend::after_call(const char* kernel) {
  if (sync_) inner().synchronize();
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  const bool gemm = std::strcmp(kernel, "gemm") == 0;
  const bool head = gemm && gemm_is_head_;
  const double flop = gemm ? gemm_flop_ : 0;
  Entry& k = kernels_[head ? "gemm(lm head)" : kernel];
  k.seconds += dt, k.calls += 1, k.flop += flop;
  Entry& e = cat_[static_cast<int>(head ? Cat::HeadGemm : category_of(kernel))];
  e.seconds += dt, e.calls += 1, e.flop += flop;
}

}  // namespace sft::backend
