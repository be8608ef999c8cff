// make_cuda_backend() for builds without the CUDA backend: a clear error instead of a link failure.
// The CUDA build (SFT_CUDA) defines SFT_CUDA for this target and provides the real function in backend/cuda.
#include "backend/backend.h"
#include "util/error.h"

namespace sft::backend {
#ifndef SFT_CUDA
std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  throw Error("CUDA backend requested (device " + std::to_string(device_index) +
              ") but this sft was built without it: reconfigure with -DSFT_CUDA=ON on a machine with the CUDA toolkit");
}
#endif
}  // namespace sft::backend
