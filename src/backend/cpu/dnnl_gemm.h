// oneDNN matmul behind Backend::gemm: one primitive per (shape, strides, dtype, alpha, beta), created on first use and
// cached (creating a oneDNN primitive costs far more than running a small one).
#pragma once
#include <cstdint>
#include <string>

#include "backend/backend.h"

namespace sft::backend::cpu {

// Same contract as Backend::gemm.
void dnnl_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
               const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab);

// True when oneDNN has a native (non-reference) bf16 matmul on this CPU (AVX512-BF16 / AMX); otherwise bf16 gemms
// are computed by widening the operands to fp32 (same numbers: bf16 products are exact in fp32) and an fp32 matmul.
bool dnnl_has_fast_bf16();

// "onednn 2.6.3 isa avx2; matmul impls: gemm:jit x1234": the library version, the ISA oneDNN dispatches to on this
// CPU and the implementation of every matmul run so far with its call count (bench/train_step prints it).
std::string dnnl_gemm_report();

}  // namespace sft::backend::cpu
