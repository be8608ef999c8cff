// Public helpers of the CUDA backend outside the Backend interface (only linked when built with SFT_CUDA):
// a device description for `sft info` and memory statistics for benchmarks.
#pragma once
#include <cstdint>
#include <string>

namespace sft::backend::cuda {

// One line per visible device ("cuda:0 NVIDIA H200, sm_90, 139.8 GiB, 132 SMs"), plus runtime/driver versions;
// or a line saying why no device is usable. Never throws.
std::string device_description();

struct MemoryStats {
  int64_t current_bytes = 0;  // bytes currently allocated by the backend (alloc() + internal scratch)
  int64_t peak_bytes = 0;     // high-water mark of current_bytes since creation or the last reset
};

}  // namespace sft::backend::cuda
