// Out-of-line defaults of the kernel interface, and make_cuda_backend() for builds without the CUDA backend (a clear
// error instead of a link failure; the CUDA build defines SFT_CUDA for this target and provides the real function).
#include "backend/backend.h"
#include "backend/device.h"
#include "util/error.h"

namespace sft::backend {

void Backend::round_to_bf16(float*, const float*, int64_t) {
  throw Error("backend " + name() + ": round_to_bf16 is not implemented (only needed when fast_bf16_gemm() is false)");
}

#ifndef SFT_CUDA
std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  throw Error("CUDA backend requested (device " + std::to_string(device_index) +
              ") but this sft was built without it: reconfigure with -DSFT_CUDA=ON on a machine with the CUDA toolkit");
}

std::string cuda_device_description() { return "cuda: not built (reconfigure with -DSFT_CUDA=ON)"; }
#endif

}  // namespace sft::backend
