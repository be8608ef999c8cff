// The ONE kernel conformance suite: every kernel of backend::Backend (src/backend/backend.h) on the backend under
// test against the CPU reference backend (make_cpu_reference_backend(), scalar loops with double accumulators: the
// oracle), on random non-zero inputs. The checks are written once (kernel_conformance.cpp) and instantiated per
// backend with that backend's tolerances:
//   - fast CPU: tests/backend/cpu/fast_conformance_test.cpp (CPU test binary, every build);
//   - CUDA:     tests/gpu/cuda_conformance_test.cpp (GPU test binary, -DSFT_CUDA=ON; skips when no device);
//   - the fast CPU backend behind a ForwardingBackend (fast_conformance_test.cpp): every forward reaches its kernel.
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
#include "backend_test_buffers.h"

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
  std::function<std::unique_ptr<Backend>()> make;  // may throw sft::Error (see skip_when_unusable)
  Tolerances tol;
  // true only for a device that may be absent (CUDA): make() throwing then skips every test with its message.
  // Otherwise (the CPU backends, always built and always usable) a throwing make() fails every test.
  bool skip_when_unusable = false;
};

inline std::string case_name(const ::testing::TestParamInfo<BackendCase>& info) { return info.param.name; }

using test_buffers::Buf;  // backend_test_buffers.h (shared with the GPU tests)
using test_buffers::randint;
using test_buffers::randn;
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
