#include "backend/cpu/cpu_dispatch.h"

#include <cstdlib>

#include "util/error.h"

namespace sft::backend::cpu {
namespace generic {
std::unique_ptr<Backend> make_backend();
bool frozen_native_bf16();
}
#if defined(__x86_64__)
namespace avx2 {
std::unique_ptr<Backend> make_backend();
bool frozen_native_bf16();
}
namespace avx512 {
std::unique_ptr<Backend> make_backend();
bool frozen_native_bf16();
}
#endif

std::vector<std::string> cpu_kernel_variants() {
  std::vector<std::string> v;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
    v.push_back("avx512");
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") &&
      __builtin_cpu_supports("bmi2"))
    v.push_back("avx2");
#endif
  v.push_back("generic");
  return v;
}

std::string cpu_kernel_variant() {
  const std::vector<std::string> ok = cpu_kernel_variants();
  const char* env = std::getenv("SFT_CPU_KERNELS");
  if (env == nullptr || *env == '\0') return ok.front();
  for (const std::string& v : ok)
    if (v == env) return v;
  std::string list;
  for (const std::string& v : ok) list += (list.empty() ? "" : ", ") + v;
  throw Error(std::string("SFT_CPU_KERNELS=") + env + ": not a kernel variant this CPU runs (supported: " + list + ")");
}

std::unique_ptr<Backend> make_cpu_backend_variant(const std::string& variant) {
  bool supported = false;
  for (const std::string& v : cpu_kernel_variants()) supported = supported || v == variant;
  SFT_CHECK(supported, "cpu kernel variant '", variant, "' is not supported by this CPU or build");
#if defined(__x86_64__)
  if (variant == "avx512") return avx512::make_backend();
  if (variant == "avx2") return avx2::make_backend();
#endif
  return generic::make_backend();
}

bool frozen_gemm_native_bf16() {
  const std::string v = cpu_kernel_variant();
#if defined(__x86_64__)
  if (v == "avx512") return avx512::frozen_native_bf16();
  if (v == "avx2") return avx2::frozen_native_bf16();
#endif
  return generic::frozen_native_bf16();
}

}  // namespace sft::backend::cpu

namespace sft::backend {
std::unique_ptr<Backend> make_cpu_backend() { return cpu::make_cpu_backend_variant(cpu::cpu_kernel_variant()); }
}  // namespace sft::backend
