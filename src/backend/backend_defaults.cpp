// The generic implementations kept as Backend's definitions (a backend opts in by calling them), ForwardingBackend's
// inner(), and make_cuda_backend() for builds without the CUDA backend (a clear
// error instead of a link failure; the CUDA build defines SFT_CUDA for this target and provides the real function).
#include "backend/backend.h"
#include "backend/device.h"

#include <vector>

#include "util/error.h"

namespace sft::backend {

void Backend::round_to_bf16(float*, const float*, int64_t) {
  throw Error("backend " + name() + ": round_to_bf16 is not implemented (only needed when fast_bf16_gemm() is false)");
}

void Backend::dropout(float* y, const float* x, int64_t n, float p, uint64_t seed) {
  std::vector<float> h(static_cast<size_t>(n));
  download(h.data(), x, h.size() * sizeof(float));
  const float inv = 1.0f / (1.0f - p);
  for (int64_t i = 0; i < n; ++i) h[i] = dropout_keep(seed, static_cast<uint64_t>(i), p) ? h[i] * inv : 0.0f;
  upload(y, h.data(), h.size() * sizeof(float));
}

Backend& ForwardingBackend::inner() const {
  if (in_ == nullptr) throw Error(std::string("internal: ") + no_inner_reason_);
  return *in_;
}

#ifndef SFT_CUDA
std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  throw Error("CUDA backend requested (device " + std::to_string(device_index) +
              ") but this sft was built without it: reconfigure with -DSFT_CUDA=ON on a machine with the CUDA toolkit");
}

std::string cuda_device_description() { return "cuda: not built (reconfigure with -DSFT_CUDA=ON)"; }
#endif

}  // namespace sft::backend
