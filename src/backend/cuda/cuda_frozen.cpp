// CudaBackend's frozen-weight kernels (backend.h frozen_gemm / frozen_embedding): a bf16 weight with a bf16
// activation, or fp32 with fp32, goes straight to cuBLASLt; otherwise the weight is converted panel by panel (at most
// kPanelBytes of scratch) by frozen.cu into the gemm's dtype — bf16 panels when the activation is bf16 and the values
// are bf16 (a bf16 weight, or 4-bit dequantised with w_dt == BF16), fp32 panels otherwise (a bf16 activation is then
// widened once). Never a whole converted copy of the weight.
#include <algorithm>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels.h"
#include "backend/quant4.h"

namespace sft::backend::cuda {

namespace {

constexpr int64_t kPanelBytes = int64_t{64} << 20;
constexpr int kPanelSlot = 10, kWidenedXSlot = 11;  // scratch slots 0..5 belong to attention

k::FrozenArgs args_of(const FrozenWeight& W) {
  k::FrozenArgs a;
  a.format = static_cast<int>(W.format);
  a.rows = W.rows, a.cols = W.cols, a.data = W.data;
  a.absmax = W.absmax, a.qabsmax = W.qabsmax, a.nested = W.nested_absmax, a.offset = W.offset;
  return a;
}

}  // namespace

const float* CudaBackend::quant_tables(WeightFormat f) {
  if (f != WeightFormat::NF4 && f != WeightFormat::FP4) return nullptr;  // fp32 / bf16 weights read no table
  float*& t = quant_tables_[f == WeightFormat::NF4 ? 0 : 1];
  if (!t) {
    float host[16 + 256];
    std::copy_n(quant4_code(f).data(), 16, host);
    std::copy_n(dynamic_code().data(), 256, host + 16);
    t = static_cast<float*>(raw_alloc(sizeof(host)));
    SFT_CUDA_CHECK(cudaMemcpyAsync(t, host, sizeof(host), cudaMemcpyHostToDevice, stream_));
    SFT_CUDA_CHECK(cudaStreamSynchronize(stream_));  // host is a stack array
  }
  return t;
}

void CudaBackend::frozen_gemm(bool trans_w, int64_t M, const void* X, int64_t ldx, DType x_dt, const FrozenWeight& W,
                              DType w_dt, float beta, float* Y, int64_t ldy) {
  check_frozen_call("frozen_gemm", W, x_dt, w_dt, beta);
  if (M == 0) return;
  const int64_t N = trans_w ? W.rows : W.cols, K = trans_w ? W.cols : W.rows;
  const bool direct = (W.format == WeightFormat::BF16 && x_dt == DType::BF16) ||
                      (W.format == WeightFormat::F32 && x_dt == DType::F32);
  if (direct) return gemm(false, trans_w, M, N, K, 1.0f, X, ldx, W.data, W.cols, beta, Y, ldy, x_dt);
  const bool bf16_panels = x_dt == DType::BF16 && W.quantized() && w_dt == DType::BF16;
  const void* x = X;
  int64_t lx = ldx;
  if (!bf16_panels && x_dt == DType::BF16) {  // fp32 route with a bf16 activation: widen it (exact)
    float* xf = static_cast<float*>(scratch(kWidenedXSlot, static_cast<size_t>(M * K) * 4));
    const auto* xb = static_cast<const uint16_t*>(X);
    if (ldx == K) k::bf16_to_f32(stream_, xf, xb, M * K);
    else
      for (int64_t i = 0; i < M; ++i) k::bf16_to_f32(stream_, xf + i * K, xb + i * ldx, K);
    x = xf, lx = K;
  }
  if (W.format == WeightFormat::F32) return gemm(false, trans_w, M, N, K, 1.0f, x, lx, W.data, W.cols, beta, Y, ldy,
                                                 DType::F32);
  const k::FrozenArgs a = args_of(W);
  const float* tables = quant_tables(W.format);
  const bool round = W.quantized() && w_dt == DType::BF16;
  const int64_t elem = bf16_panels ? 2 : 4;
  const int64_t step = std::max<int64_t>(64, std::min(N, kPanelBytes / (K * elem)) / 64 * 64);
  void* panel = scratch(kPanelSlot, static_cast<size_t>(std::min(N, step) * K * elem));
  for (int64_t n0 = 0; n0 < N; n0 += step) {
    const int64_t n1 = std::min(N, n0 + step), w = n1 - n0;
    const int64_t r0 = trans_w ? n0 : 0, r1 = trans_w ? n1 : W.rows, c0 = trans_w ? 0 : n0, c1 = trans_w ? W.cols : n1;
    k::frozen_panel(stream_, a, tables, r0, r1, c0, c1, round, bf16_panels, panel);
    gemm(false, trans_w, M, w, K, 1.0f, x, lx, panel, trans_w ? K : w, beta, Y + n0, ldy,
         bf16_panels ? DType::BF16 : DType::F32);
  }
}

void CudaBackend::frozen_embedding(float* out, const FrozenWeight& table, const int32_t* ids, int64_t n, DType w_dt) {
  check_frozen_call("frozen_embedding", table, DType::F32, w_dt, 0.0f);
  k::frozen_gather(stream_, args_of(table), quant_tables(table.format), ids, n, table.quantized() && w_dt == DType::BF16,
                   out);
}

}  // namespace sft::backend::cuda
