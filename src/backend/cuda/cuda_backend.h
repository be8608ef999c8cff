// The CUDA implementation of sft::backend::Backend (internal header of backend/cuda; model/ never includes it).
// Precision: activations, norms, softmax, loss and optimizer state in fp32; gemm() runs bf16 operands on tensor cores
// with fp32 accumulation (cuBLASLt), fp32 operands in full fp32; attention's internal batched GEMMs use TF32 unless
// SFT_CUDA_ATTN_FP32=1. See docs/arch/cuda.md.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <array>
#include <map>
#include <memory>
#include <unordered_map>

#include "backend/backend.h"
#include "backend/cuda/attention_plan.h"
#include "backend/cuda/cuda_info.h"

namespace sft::backend::cuda {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device_index);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override;

  void* alloc(size_t bytes) override;
  void free(void* p) override;
  void upload(void* dst, const void* host_src, size_t bytes) override;
  void download(void* host_dst, const void* src, size_t bytes) override;
  const void* host_view(const void*) const override { return nullptr; }  // device memory: checkpoints download
  void zero(void* p, size_t bytes) override;
  void synchronize() override;
  void copy(void* dst, const void* src, size_t bytes) override;

  void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWArgs& a) override;
  double sum_squares(const float* x, int64_t n) override;
  void scale(float* x, float s, int64_t n) override;

  void add(float* y, const float* x, int64_t n) override;
  void f32_to_bf16(uint16_t* dst, const float* src, int64_t n) override;
  void bf16_to_f32(float* dst, const uint16_t* src, int64_t n) override;
  // Tensor cores multiply bf16 natively: the bf16 emulation (round_to_bf16) is never asked for.
  bool fast_bf16_gemm() const override { return true; }
  void round_to_bf16(float* dst, const float* src, int64_t n) override { Backend::round_to_bf16(dst, src, n); }
  // LoRA dropout through the host (Backend::dropout): rare next to the gemms; a kernel is a later optimisation.
  void dropout(float* y, const float* x, int64_t n, float p, uint64_t seed) override {
    Backend::dropout(y, x, n, p, seed);
  }

  void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
            const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab) override;
  void add_bias(float* y, const float* bias, int64_t rows, int64_t cols) override;
  void bias_grad(float* dbias, const float* dy, int64_t rows, int64_t cols) override;

  // Frozen weights: bf16 x bf16 and fp32 x fp32 straight to cuBLASLt; otherwise W converted in panels of at most
  // kFrozenPanelBytes into a scratch buffer (frozen.cu), a bf16 X widened when the panels are fp32.
  void frozen_gemm(bool trans_w, int64_t M, const void* X, int64_t ldx, DType x_dt, const FrozenWeight& W, DType w_dt,
                   float beta, float* Y, int64_t ldy) override;
  void frozen_embedding(float* out, const FrozenWeight& table, const int32_t* ids, int64_t n, DType w_dt) override;

  void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n, int64_t H) override;
  void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t n, int64_t H) override;

  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t H, float eps,
                       float w_offset) override;
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                        int64_t n, int64_t H, float w_offset) override;

  void rope(float* x, const int32_t* pos, const float* inv_freq, int64_t n, int64_t heads, int64_t head_dim,
            bool inverse) override;

  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* doc,
                         const AttnShape& s) override;
  bool attention_shares_keys() const override { return false; }  // every branch row holds its own prefix copy
  // Its attention kernel masks other documents' keys inside each row rather than skipping them, so padding-free rows
  // would cost T^2: the trainer keeps the padded layout here.
  bool attention_skips_other_documents() const override { return false; }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const int32_t* doc,
                          const AttnShape& s) override;

  void swiglu_forward(float* h, const float* gate, const float* up, int64_t n) override;
  void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                       int64_t n) override;
  void geglu_forward(float* h, const float* gate, const float* up, int64_t n) override;
  void geglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                      int64_t n) override;

  void softmax_cross_entropy(float* logits, float* loss, uint8_t* greedy, const int32_t* targets, int64_t rows,
                             int64_t V, float grad_scale, float softcap) override;
  void logit_softcap(float* x, int64_t n, float softcap) override;

  // ---- CUDA-specific (tests, benchmarks) ----
  void gemm_batched(const GemmArgs& g);  // the cuBLASLt path every GEMM takes
  cudaStream_t stream() const { return stream_; }
  int device() const { return device_; }
  MemoryStats memory_stats() const { return {current_bytes_, peak_bytes_}; }
  void reset_peak_memory() { peak_bytes_ = current_bytes_; }
  // Upper bound of the attention score scratch (two [rows, heads, T, T] fp32 buffers); default 2 GiB.
  void set_attention_scratch_limit(int64_t bytes) { attn_scratch_limit_ = bytes; }

 private:
  struct GemmPlan;
  void* raw_alloc(size_t bytes);
  void raw_free(void* p);
  // A scratch buffer of at least `bytes` (grown, never shrunk; contents undefined). slot picks one of several.
  void* scratch(int slot, size_t bytes);
  // The code tables frozen.cu reads for a 4-bit format (uploaded on first use).
  const float* quant_tables(WeightFormat f);

  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  cublasHandle_t blas_ = nullptr;  // fallback (cublasGemmStridedBatchedEx) for shapes cuBLASLt has no algorithm for
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::map<std::array<int64_t, 20>, std::unique_ptr<GemmPlan>> plans_;
  std::unordered_map<void*, size_t> sizes_;
  int64_t current_bytes_ = 0, peak_bytes_ = 0;
  static constexpr int kScratchSlots = 12;
  std::array<void*, kScratchSlots> scratch_{};
  std::array<size_t, kScratchSlots> scratch_bytes_{};
  int64_t attn_scratch_limit_ = int64_t(2) << 30;
  float* quant_tables_[2] = {nullptr, nullptr};  // NF4, FP4: 16 codes + the 256-entry dynamic map each
  bool attn_tf32_ = true;
};

}  // namespace sft::backend::cuda
