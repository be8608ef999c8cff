#include "backend/gemm_probe.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "backend/device_buffer.h"

namespace sft::backend {

GemmPeak measure_gemm_peak(Backend& be, DType ab, double budget_s, int64_t size) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  const int64_t n = size * size;
  std::vector<float> host(static_cast<size_t>(n));
  std::mt19937 g(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& x : host) x = u(g);
  DeviceBuffer<float> a(be, n), b(be, n), c(be, n);
  DeviceBuffer<uint16_t> a16, b16;
  be.upload(a.get(), host.data(), host.size() * sizeof(float));
  be.upload(b.get(), host.data(), host.size() * sizeof(float));
  const void* A = a.get();
  const void* B = b.get();
  if (ab == DType::BF16) {
    a16 = DeviceBuffer<uint16_t>(be, n);
    b16 = DeviceBuffer<uint16_t>(be, n);
    be.f32_to_bf16(a16.get(), a.get(), n);
    be.f32_to_bf16(b16.get(), b.get(), n);
    A = a16.get();
    B = b16.get();
  }
  GemmPeak r;
  r.size = size;
  r.dtype = ab == DType::BF16 ? "bfloat16" : "float32";
  const double flop = 2.0 * static_cast<double>(size) * static_cast<double>(size) * static_cast<double>(size);
  be.gemm(false, true, size, size, size, 1.0f, A, size, B, size, 0.0f, c.get(), size, ab);  // warm-up (primitive)
  be.synchronize();
  for (int rep = 0; rep < 2 || std::chrono::duration<double>(clock::now() - start).count() < budget_s; ++rep) {
    const auto t0 = clock::now();
    be.gemm(false, true, size, size, size, 1.0f, A, size, B, size, 0.0f, c.get(), size, ab);
    be.synchronize();
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (s > 0) r.gflops = std::max(r.gflops, flop / s / 1e9);
    if (rep > 50) break;
  }
  r.seconds = std::chrono::duration<double>(clock::now() - start).count();
  return r;
}

}  // namespace sft::backend
