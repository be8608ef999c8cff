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

// One line per device this build can use: "cpu: <threads> threads, bf16 gemm native|emulated" and, when built with
// CUDA, the CUDA devices (or why none is usable). Never throws.
std::vector<std::string> describe_devices();

// The CUDA part of describe_devices(): provided by backend/cuda when built with it, else "cuda: not built".
std::string cuda_device_description();

}  // namespace sft::backend
