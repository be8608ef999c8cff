// What the non-finite guards of sft train cost (train/finite_guard.h), against the AdamW step they follow, on P fp32
// parameters held as tensors of one model's sizes (default: SmolLM2-135M's 134,515,008 in its 30 layers' shapes).
//   adamw        Backend::adamw_step over every tensor (reads p, g, m, v; writes p, m, v: 28 bytes a parameter)
//   check        the per-step guard: Backend::sum_squares over every tensor (reads p: 4 bytes a parameter)
//   exact scan   model::first_nonfinite on the host over every tensor (the save-time scan for bf16 output, and what
//                runs only when the check's sum is not finite)
//   read peak    the machine's read bandwidth in the same run: the best of the check's passes, as GB/s
// Prints one JSON line (medians of --iters runs) with the ratios check/adamw and scan/adamw, peak RSS and the CPU
// kernels variant; bench/nonfinite_guard.sh adds PyTorch's AdamW step and torch.isfinite(p).all() on the same sizes.
// usage: nonfinite_guard_bench [--params N] [--iters 5] [--tensor_mib 4]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_dispatch.h"
#include "model/weight_check.h"

using Clock = std::chrono::steady_clock;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t params = 134515008;
  int iters = 5;
  double tensor_mib = 4;  // SmolLM2-135M's layer tensors are 1.3-3.5 MiB; the embedding 108 MiB
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--params") params = std::stoll(argv[i + 1]);
    else if (k == "--iters") iters = std::stoi(argv[i + 1]);
    else if (k == "--tensor_mib") tensor_mib = std::stod(argv[i + 1]);
    else {
      std::fprintf(stderr, "nonfinite_guard_bench: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  auto be = sft::backend::make_cpu_backend();
  const int64_t chunk = std::max<int64_t>(1, static_cast<int64_t>(tensor_mib * (1 << 20) / 4));
  std::vector<int64_t> sizes;
  for (int64_t left = params; left > 0; left -= chunk) sizes.push_back(std::min(chunk, left));
  auto alloc = [&](float fill_lo, float fill_hi, uint32_t seed) {
    float* p = static_cast<float*>(be->alloc(static_cast<size_t>(params) * sizeof(float)));
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(fill_lo, fill_hi);
    std::vector<float> host(static_cast<size_t>(std::min<int64_t>(params, 1 << 20)));
    for (float& x : host) x = u(rng);  // random, never zero; repeated in 4 MiB pieces
    for (int64_t at = 0; at < params; at += static_cast<int64_t>(host.size()))
      be->upload(p + at, host.data(), static_cast<size_t>(std::min<int64_t>(host.size(), params - at)) * sizeof(float));
    return p;
  };
  float* p = alloc(-0.1f, 0.1f, 1);
  float* g = alloc(-1e-3f, 1e-3f, 2);
  float* m = alloc(-1e-4f, 1e-4f, 3);
  float* v = alloc(1e-9f, 1e-8f, 4);
  sft::backend::AdamWArgs a;
  a.lr = 1e-5f, a.beta1 = 0.9f, a.beta2 = 0.999f, a.eps = 1e-8f, a.weight_decay = 0.0f, a.step = 10;

  std::vector<double> t_adamw, t_check, t_scan;
  double sum = 0;
  int64_t found = 0;
  for (int it = 0; it < iters + 1; ++it) {  // the first round warms up
    auto t0 = Clock::now();
    int64_t off = 0;
    for (int64_t n : sizes) be->adamw_step(p + off, g + off, m + off, v + off, n, a), off += n;
    be->synchronize();
    auto t1 = Clock::now();
    sum = 0, off = 0;
    for (int64_t n : sizes) sum += be->sum_squares(p + off, n), off += n;
    auto t2 = Clock::now();
    off = 0, found = 0;
    const float* host = static_cast<const float*>(be->host_view(p));
    for (int64_t n : sizes) found += sft::model::first_nonfinite(host + off, n) >= 0, off += n;
    auto t3 = Clock::now();
    if (it == 0) continue;
    t_adamw.push_back(std::chrono::duration<double>(t1 - t0).count());
    t_check.push_back(std::chrono::duration<double>(t2 - t1).count());
    t_scan.push_back(std::chrono::duration<double>(t3 - t2).count());
  }
  if (!std::isfinite(sum) || found) {
    std::fprintf(stderr, "nonfinite_guard_bench: the parameters became non-finite\n");
    return 1;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const double bytes = static_cast<double>(params) * 4;
  const double adamw = median(t_adamw), check = median(t_check), scan = median(t_scan);
  const double best_check = *std::min_element(t_check.begin(), t_check.end());
  std::printf("{\"params\": %lld, \"tensors\": %zu, \"iters\": %d, \"adamw_ms\": %.2f, \"check_ms\": %.2f, "
              "\"exact_scan_ms\": %.2f, \"check_over_adamw\": %.4f, \"scan_over_adamw\": %.4f, "
              "\"check_read_gb_s\": %.2f, \"read_peak_gb_s\": %.2f, \"adamw_traffic_gb_s\": %.2f, "
              "\"peak_rss_mib\": %.0f, \"cpu_kernels\": \"%s\"}\n",
              static_cast<long long>(params), sizes.size(), iters, adamw * 1e3, check * 1e3, scan * 1e3, check / adamw,
              scan / adamw, bytes / check / 1e9, bytes / best_check / 1e9, 7 * bytes / adamw / 1e9,
              static_cast<double>(ru.ru_maxrss) / 1024.0, sft::backend::cpu::cpu_kernel_variant().c_str());
  for (float* x : {p, g, m, v}) be->free(x);
  return 0;
}
