// The ONE kernel conformance suite: every kernel of backend::Backend (src/backend/backend.h) on the backend under
// test against the CPU reference backend (make_cpu_reference_backend(), scalar loops with double accumulators: the
// oracle), on random non-zero inputs. The checks are written once (kernel_conformance.cpp) and instantiated per
// backend with that backend's tolerances:
//   - fast CPU: tests/backend/cpu/fast_conformance_test.cpp (CPU test binary, every build);
//   - CUDA:     tests/gpu/cuda_conformance_test.cpp (GPU test binary, -DSFT_CUDA=ON; skips when no device).
// A new kernel gets its check in kernel_conformance.cpp and a tolerance here; nothing else to copy.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"

namespace sft::backend::conformance {

// Bounds on rel_err = max|got - want| / max(1e-30, max|want|) per kind of kernel (0 = bit-exact). Each instantiation
// states why its values follow from its arithmetic.
struct Tolerances {
  double copy_like = 0;    // add, scale, dropout (one rounding each, same formula)
  double elementwise = 0;  // adamw, swiglu, rope, embedding backward (scatter-add order), softmax-CE loss and grad
  double reduction = 0;    // sum-type kernels: bias_grad, rmsnorm forward/rstd, sum_squares (fp32 vs double sums)
  double norm_backward = 0;  // rmsnorm backward (two chained reductions)
  double gemm_f32 = 0;     // fp32 gemm, K <= 130 (fp32 accumulation in another order)
  double gemm_bf16 = 0;    // same bf16 operand bits on both sides: only the fp32 accumulation order differs
  double attention = 0;    // attention forward (out, lse)
  double attention_backward = 0;  // attention backward (dq, dk, dv)
};

struct BackendCase {
  std::string name;  // test-name suffix, [A-Za-z0-9_] only
  std::function<std::unique_ptr<Backend>()> make;  // may throw sft::Error: the tests then skip with its message
  Tolerances tol;
};

inline std::string case_name(const ::testing::TestParamInfo<BackendCase>& info) { return info.param.name; }

// A buffer of n elements of T on a backend (device memory on CUDA, host memory on the CPU backends), freed with it.
template <class T>
class Buf {
 public:
  Buf(Backend& be, size_t n) : be_(&be), n_(n), p_(static_cast<T*>(be.alloc(std::max<size_t>(n, 1) * sizeof(T)))) {}
  Buf(Backend& be, const std::vector<T>& host) : Buf(be, host.size()) { set(host); }
  ~Buf() { be_->free(p_); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  T* get() const { return p_; }
  operator T*() const { return p_; }
  size_t size() const { return n_; }
  void set(const std::vector<T>& host) { be_->upload(p_, host.data(), host.size() * sizeof(T)); }
  std::vector<T> host() const {
    std::vector<T> out(n_);
    be_->download(out.data(), p_, n_ * sizeof(T));
    return out;
  }

 private:
  Backend* be_;
  size_t n_;
  T* p_;
};

std::vector<float> randn(size_t n, uint64_t seed, float stddev = 1.0f);
std::vector<int32_t> randint(size_t n, int32_t lo, int32_t hi, uint64_t seed);
// max|got - want| / max|want| (absolute when want is all zero); sizes must match.
double rel_err(const std::vector<float>& got, const std::vector<float>& want);

class KernelConformance : public ::testing::TestWithParam<BackendCase> {
 protected:
  void SetUp() override;
  using VV = std::vector<std::vector<float>>;
  // Runs fn on the backend under test, then on the reference; returns {under test, reference}.
  template <class Fn>
  std::pair<VV, VV> both(Fn fn) {
    VV g = fn(*be_);
    be_->synchronize();
    VV r = fn(*ref_);
    return {std::move(g), std::move(r)};
  }
  const Tolerances& tol() const { return GetParam().tol; }
  std::unique_ptr<Backend> be_, ref_;
};

}  // namespace sft::backend::conformance
