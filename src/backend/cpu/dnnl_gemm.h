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
// True when that native bf16 matmul runs on AMX tiles. Without AMX (AVX512-BF16 dot products only) oneDNN 2.6.3's bf16
// matmul measured 0.59x its own fp32 matmul on a Xeon with avx512_bf16 (bench/gemm_peak 2048^3: 18.4 vs 31.3
// GFLOP/s; PyTorch's oneDNN the same, 18.9 vs 26.5), so frozen_gemm converts bf16 weights to fp32 panels there.
bool dnnl_bf16_uses_amx();
// oneDNN's implementation name for a bf16 matmul on this CPU ("" when it has none): "ref:any" (its reference loop),
// "brg:avx512_core_bf16" (AVX512-BF16 dot products), "brg:avx512_core_amx" (AMX tiles). For messages.
const std::string& dnnl_bf16_matmul_impl();

// "onednn 2.6.3 isa avx2; matmul impls: gemm:jit x1234": the library version, the ISA oneDNN dispatches to on this
// CPU and the implementation of every matmul run so far with its call count (bench/train_step prints it).
std::string dnnl_gemm_report();

}  // namespace sft::backend::cpu
