// A quick measurement of the device's gemm peak through the backend's own gemm (the kernel every linear layer uses),
// so that a run can report its model FLOP/s as a share of what this machine does: a square fp32 (or bf16-operand)
// matmul, repeated for a bounded time, best repetition wins. bench/gemm_peak measures the same thing thoroughly
// (several shapes, oneDNN directly); this one costs ~0.1-0.3 s at the start or end of a command.
#pragma once
#include <string>

#include "backend/backend.h"

namespace sft::backend {

struct GemmPeak {
  double gflops = 0;    // best repetition
  double seconds = 0;   // time spent measuring
  int64_t size = 0;     // M = N = K
  std::string dtype;    // "float32" | "bfloat16"
};
// size: M = N = K (default 1024: 2.1 GFLOP per repetition); at least 2 repetitions, then until budget_s is spent.
GemmPeak measure_gemm_peak(Backend& be, DType ab, double budget_s = 0.25, int64_t size = 1024);

}  // namespace sft::backend
