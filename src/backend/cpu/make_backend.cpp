// The backend factory and device parsing of backend/device.h. Lives in the CPU library because it constructs the
// CPU backend (always built); the CUDA backend comes through make_cuda_backend (a clear error in CPU-only builds).
#include <cctype>
#include <omp.h>

#include "backend/cpu/cpu_dispatch.h"
#include "backend/cpu/dnnl_gemm.h"
#include "backend/device.h"
#include "util/error.h"

namespace sft::backend {

std::string DeviceSpec::str() const { return kind == Kind::Cpu ? "cpu" : "cuda:" + std::to_string(index); }

DeviceSpec parse_device(const std::string& text, const std::string& flag) {
  const std::string expected = flag + " must be cpu, cuda or cuda:N (N = device index), got '" + text + "'";
  if (text == "cpu") return {};
  if (text == "cuda") return {DeviceSpec::Kind::Cuda, 0};
  if (text.rfind("cuda:", 0) == 0) {
    const std::string n = text.substr(5);
    SFT_CHECK(!n.empty() && n.size() <= 4, expected);
    for (char ch : n) SFT_CHECK(std::isdigit(static_cast<unsigned char>(ch)), expected);
    return {DeviceSpec::Kind::Cuda, std::stoi(n)};
  }
  throw Error(expected);
}

std::unique_ptr<Backend> make_backend(const DeviceSpec& d) {
  if (d.kind == DeviceSpec::Kind::Cpu) return make_cpu_backend();
  return make_cuda_backend(d.index);  // throws a clear error in a build without CUDA or without a device
}

std::unique_ptr<Backend> make_backend(const std::string& device, const std::string& flag) {
  return make_backend(parse_device(device, flag));
}

AutoDtype inference_auto_dtype(const DeviceSpec& device, const Backend& be) {
  if (device.kind == DeviceSpec::Kind::Cuda) return {true, "bfloat16 (CUDA: tensor cores)"};
  const std::string impl = cpu::dnnl_bf16_matmul_impl();
  if (!be.fast_bf16_gemm())  // no native bf16 matmul on this CPU, or a kernel variant (SFT_CPU_KERNELS) that uses none
    return {false, "float32 (these CPU kernels have no native bf16 matmul: bf16 would be emulated at fp32 speed)"};
  if (cpu::dnnl_bf16_uses_amx()) return {true, "bfloat16 (oneDNN's bf16 matmul runs on AMX tiles here: " + impl + ")"};
  return {false, "float32 (oneDNN's bf16 matmul here, " + impl + ", uses AVX512-BF16 dot products without AMX, "
                 "slower than its fp32 matmul; --dtype bfloat16 forces it)"};
}

std::vector<std::string> describe_devices() {
  std::vector<std::string> out;
  std::string cpu = "cpu: " + std::to_string(omp_get_max_threads()) + " threads";
  try {
    cpu += ", " + cpu::cpu_kernel_variant() + " kernels";
    cpu += make_cpu_backend()->fast_bf16_gemm() ? ", bf16 gemm native" : ", bf16 gemm emulated (fp32 gemm)";
  } catch (const std::exception&) {
  }
  out.push_back(cpu);
  out.push_back(cuda_device_description());
  return out;
}

}  // namespace sft::backend
