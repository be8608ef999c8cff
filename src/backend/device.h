// Choosing a device: the one parser of "--device" values ("cpu", "cuda", "cuda:N"), the one backend factory, and a
// description of the devices this build can use (for `sft info`). The CLI calls these instead of naming concrete
// backends, so a new backend is added here and in its own folder only.
// Implemented in backend/cpu/make_backend.cpp (the CPU library every build links; the interface library
// sft_backend stays free of implementations).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace sft::backend {

struct DeviceSpec {
  enum class Kind { Cpu, Cuda };
  Kind kind = Kind::Cpu;
  int index = 0;           // cuda:N
  std::string str() const;  // "cpu", "cuda:0"
};

// Parses a device string; a bad value throws a one-line sft::Error naming `flag` and the accepted forms.
DeviceSpec parse_device(const std::string& text, const std::string& flag = "--device");
std::unique_ptr<Backend> make_backend(const DeviceSpec& device);
std::unique_ptr<Backend> make_backend(const std::string& device, const std::string& flag = "--device");

// What `--dtype auto` of inference (sft eval) computes in on this device, by a fixed rule on what the device has rather
// than by timing it (a timing would make the choice, and so the results, depend on the machine's load at that moment):
//   CUDA: bfloat16 (tensor cores);
//   CPU:  bfloat16 only where oneDNN's bf16 matmul runs on AMX tiles. With AVX512-BF16 dot products only, oneDNN 2.6.3's
//         bf16 matmul ran at 0.56-0.59x its own fp32 matmul (bench/gemm_peak, docs/arch/eval.md), so bf16 would make
//         evaluation slower and add a bf16 copy of the weights; without native bf16 it is emulated at fp32 speed.
//         Otherwise float32 (lm-eval's fp32 parity mode as well).
// Training's --bf16 is not decided here (it follows the flag). `reason` is one line for the user.
struct AutoDtype {
  bool bf16 = false;
  std::string reason;  // "float32: oneDNN's bf16 matmul on this CPU (brg:avx512_core_bf16) is not AMX ..."
};
AutoDtype inference_auto_dtype(const DeviceSpec& device, const Backend& be);

// One line per device this build can use: "cpu: <threads> threads, bf16 gemm native|emulated" and, when built with
// CUDA, the CUDA devices (or why none is usable). Never throws.
std::vector<std::string> describe_devices();

// The CUDA part of describe_devices(): provided by backend/cuda when built with it, else "cuda: not built".
std::string cuda_device_description();

}  // namespace sft::backend
