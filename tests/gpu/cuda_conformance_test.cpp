// The kernel conformance suite (tests/backend/kernel_conformance.*) on the CUDA backend of device 0; every test skips
// (not fails) when no CUDA device is usable. Tolerances, as rel_err = max|got - want| / max|want| against the CPU
// reference (double accumulators):
//  - copy_like 1e-6: add, scale, dropout: one fp32 rounding each (allowing nvcc's fused multiply-add contraction);
//  - elementwise 1e-5: a few fp32 roundings per element with CUDA's expf/logf/sinf/cosf (<= 2 ulp) and atomic
//    scatter-add order in the embedding backward;
//  - reduction 1e-5, norm_backward 1e-4: fp32 tree/atomic sums of O(1000) terms vs double, chained twice in the
//    rmsnorm backward;
//  - gemm f32 1e-4: cuBLASLt may split K and accumulate in another order; gemm bf16 2e-4: both sides consume the same
//    bf16 bits (products exact in fp32), so only the fp32 accumulation order differs, over wider partial sums;
//  - attention 5e-3: the internal batched GEMMs run TF32 by default (10-bit mantissa, ~5e-4 per product, summed over
//    up to 128 keys); cuda_backend_test.cpp checks the full-fp32 mode (SFT_CUDA_ATTN_FP32=1) at 1e-4.
#include "../backend/kernel_conformance.h"

namespace sft::backend::conformance {
namespace {

BackendCase cuda_device0() {
  Tolerances t;
  t.copy_like = 1e-6;
  t.elementwise = 1e-5;
  t.reduction = 1e-5;
  t.norm_backward = 1e-4;
  t.gemm_f32 = 1e-4;
  t.gemm_bf16 = 2e-4;
  t.attention = 5e-3;
  t.attention_backward = 5e-3;
  return {"cuda", [] { return make_cuda_backend(0); }, t, /*skip_when_unusable=*/true};
}

INSTANTIATE_TEST_SUITE_P(Cuda, KernelConformance, ::testing::Values(cuda_device0()), case_name);

}  // namespace
}  // namespace sft::backend::conformance
