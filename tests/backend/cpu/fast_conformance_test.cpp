// The kernel conformance suite (tests/backend/kernel_conformance.*) on the fast CPU backend (make_cpu_backend(): the
// best kernel variant this CPU runs, or the one SFT_CPU_KERNELS names — ctest runs this binary once more with
// "generic"). Tolerances, as rel_err = max|got - want| / max|want| against the reference (double accumulators):
//  - copy_like 0: add, scale and dropout are one fp32 rounding of the same formula on both sides;
//  - elementwise 1e-6: a few fp32 roundings per element (exp/log/div in another order; fast_exp is ~2.5 ulp);
//  - reduction 2e-6, norm_backward 5e-6: fp32 sums of O(1000) terms (simd/threaded order) vs double sums, twice
//    chained in the rmsnorm backward;
//  - gemm 2e-6 (f32 and bf16 operands, K <= 130): bf16 products are exact in fp32, so both are fp32 accumulation
//    order only (oneDNN blocking vs a plain loop);
//  - attention 2e-6 forward, 1e-5 backward: fp32 online softmax vs double; the backward chains three reductions.
// The reference backend is instantiated too (against itself: every comparison bit-exact, tolerance 0), which runs the
// suite's own invariants on the oracle: greedy ties, padding rows, KV-cache rows == full rows, rope inverse, and
// determinism. Only the checks that are not oracle-vs-oracle get a bound: rope's inverse(forward(x)) vs x, 1e-6 (two
// fp32 rotations), and the Tq rows vs the full computation's rows, 2e-6 (the same sums, possibly another blocking).
#include "../kernel_conformance.h"

namespace sft::backend::conformance {
namespace {

BackendCase fast_cpu() {
  Tolerances t;
  t.copy_like = 0;
  t.elementwise = 1e-6;
  t.reduction = 2e-6;
  t.norm_backward = 5e-6;
  t.gemm_f32 = 2e-6;
  t.gemm_bf16 = 2e-6;
  t.attention = 2e-6;
  t.attention_backward = 1e-5;
  return {"fast_cpu", [] { return make_cpu_backend(); }, t};
}

BackendCase reference_cpu() {
  Tolerances t;  // all 0 (bit-exact against itself) except the round trips named above
  t.elementwise = 1e-6;
  t.attention = 2e-6;
  return {"reference_cpu", [] { return make_cpu_reference_backend(); }, t};
}

// The fast CPU backend behind a ForwardingBackend (which owns it): each forward must reach the inner backend's own
// kernel with the same arguments, so the fast backend's tolerances hold (a forward that is missing does not compile:
// backend.h's static_assert; one that calls the wrong kernel or drops an argument fails here).
class OwningForwarder final : public ForwardingBackend {
 public:
  explicit OwningForwarder(std::unique_ptr<Backend> inner) : ForwardingBackend(*inner), owned_(std::move(inner)) {}

 private:
  std::unique_ptr<Backend> owned_;
};

BackendCase forwarding_fast_cpu() {
  BackendCase c = fast_cpu();
  c.name = "forwarding_fast_cpu";
  c.make = [] { return std::unique_ptr<Backend>(std::make_unique<OwningForwarder>(make_cpu_backend())); };
  return c;
}

INSTANTIATE_TEST_SUITE_P(Cpu, KernelConformance, ::testing::Values(fast_cpu(), reference_cpu(), forwarding_fast_cpu()),
                         case_name);

}  // namespace
}  // namespace sft::backend::conformance
