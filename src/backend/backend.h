// The kernel interface: everything model/ and train/ run on a device goes through a Backend. backend/cpu implements
// it (scalar reference + fast version of every kernel), backend/cuda implements it for NVIDIA GPUs.
// model/ and train/ include this header only, never a concrete backend; concrete backends never include model/.
//
// CONTRACT: the memory and optimizer part below is used by train/ already; the compute kernels are added by the
// model issue in this same class (see docs/ARCHITECTURE.md, "Kernel interface").
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace sft::backend {

struct AdamWArgs {
  float lr = 0, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0;
  int64_t step = 1;  // 1-based, for bias correction
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu", "cuda:0"

  // ---- memory (device memory for cuda, host memory for cpu) ----
  virtual void* alloc(size_t bytes) = 0;  // zero-initialised, 64-byte aligned at least
  virtual void free(void* p) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void synchronize() = 0;

  // ---- optimizer (fp32 master weights) ----
  // torch.optim.AdamW semantics: p -= lr*wd*p; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
  // p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
  virtual void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWArgs& a) = 0;
  virtual double sum_squares(const float* x, int64_t n) = 0;  // accumulated in double
  virtual void scale(float* x, float s, int64_t n) = 0;
};

// The CPU backend (always built).
std::unique_ptr<Backend> make_cpu_backend();
// The CUDA backend when built with SFT_CUDA (throws sft::Error naming the reason otherwise or when no device).
std::unique_ptr<Backend> make_cuda_backend(int device_index);

}  // namespace sft::backend
