// Run-time choice of the CPU kernel variant (cpu_variant.h): make_cpu_backend() returns the best one this CPU runs.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace sft::backend::cpu {

// Variants compiled into this binary that the running CPU supports, best first (e.g. {"avx2", "generic"}).
std::vector<std::string> cpu_kernel_variants();
// The variant make_cpu_backend() uses: the best supported one, or the one named by the environment variable
// SFT_CPU_KERNELS (generic|avx2|avx512) when set — for tests and measurements; an unsupported name is an error.
std::string cpu_kernel_variant();
// The fast backend with a given variant (throws sft::Error if it is not compiled in or the CPU lacks it).
std::unique_ptr<Backend> make_cpu_backend_variant(const std::string& variant);
// Whether make_cpu_backend()'s frozen_gemm feeds bf16 operands to oneDNN's native bf16 matmul (cpu_frozen.h) or
// converts to fp32 panels: for bench output.
bool frozen_gemm_native_bf16();

}  // namespace sft::backend::cpu
