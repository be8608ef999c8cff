// Fast CPU kernels on frozen weights in their stored form (contract: Backend::frozen_gemm / frozen_embedding).
#pragma once
#include <cstdint>

#include "backend/backend.h"
#include "backend/cpu/cpu_variant.h"

namespace sft::backend::cpu::SFT_CPU_VARIANT {

void frozen_gemm_panels(bool trans_w, int64_t M, const void* X, int64_t ldx, DType x_dt, const FrozenWeight& W,
                        DType w_dt, float beta, float* Y, int64_t ldy);
void frozen_embedding_rows(float* out, const FrozenWeight& table, const int32_t* ids, int64_t n, DType w_dt);
// Whether this variant feeds bf16 operands to oneDNN's native bf16 matmul: only the AVX-512 variant, on a CPU where
// oneDNN has one (AVX512-BF16 / AMX). The AVX2 and generic variants always take the fp32 route, so
// SFT_CPU_KERNELS=avx2 runs exactly what an AVX2-only CPU runs.
bool variant_native_bf16();
// Whether frozen_gemm feeds bf16 operands to that native matmul (a bf16 weight directly, 4-bit weights dequantised into
// bf16 panels): only where it runs on AMX (dnnl_gemm.h dnnl_bf16_uses_amx: without AMX it is slower than fp32), else
// fp32 panels. SFT_FROZEN_BF16=native|fp32 overrides it (tests and measurements; native only where there is one).
bool frozen_native_bf16();

}  // namespace sft::backend::cpu::SFT_CPU_VARIANT
