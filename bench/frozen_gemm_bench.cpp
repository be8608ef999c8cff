// Frozen-weight gemms (Backend::frozen_gemm: a LoRA base stored in bf16, or quantised to NF4 by bitsandbytes'
// algorithm) against the fp32 gemm on the same shapes, in one run: for every linear layer of a model shape, the two
// products a frozen weight takes part in — forward Y = X W^T and input gradient dX = dY W — with M = --tokens rows.
// Sides per shape and direction (median of --reps, after a warm-up call):
//   fp32      Backend::gemm on an fp32 copy of W (today's LoRA base: 4 B/param), the reference rate;
//   bf16/x32  frozen_gemm, W bf16, X fp32: the AVX2 route (fp32 panels converted on the fly);
//   bf16/x16  frozen_gemm, W bf16, X bf16: native bf16 where the CPU and variant have it, else widened;
//   nf4dq/x32 frozen_gemm, W NF4 + double quantisation, X fp32 (bf16-rounded dequantised values: QLoRA, bf16 dtype);
//   nf4dq/x16 the same with a bf16 X.
// Prints one JSON line per (shape, direction) with GFLOP/s and each side's ratio to fp32, then totals over one
// decoder layer (each matrix once per direction), the CPU's ISA flags, the kernel variant, whether the bf16 route is
// native, oneDNN's report, and peak RSS.
// usage: frozen_gemm_bench [--shape qwen2.5-0.5b|qwen2.5-7b|qwen2.5-14b] [--tokens 512] [--reps 3]
//        [--only bf16|nf4]   SFT_CPU_KERNELS=avx2 runs the AVX2 variant (no native bf16); SFT_FROZEN_BF16=native
//        forces oneDNN's native bf16 matmul where it has one but no AMX (cpu_frozen.h)
//        SFT_FROZEN_PANEL_KIB=N converts panels of N KiB instead of 4096 (cpu_frozen.cpp)
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <set>
#include <sstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_dispatch.h"
#include "backend/cpu/dnnl_gemm.h"
#include "backend/device_buffer.h"
#include "backend/quant4.h"
#include "util/bf16.h"

namespace {

using namespace sft;
using backend::DType;
using backend::WeightFormat;

struct Linear {
  const char* name;
  int64_t out, in;
};

std::vector<Linear> layer_shapes(const std::string& shape) {
  int64_t H = 896, I = 4864, kv = 128;  // Qwen2.5-0.5B: 14 heads x 64, 2 kv heads
  if (shape == "qwen2.5-7b") H = 3584, I = 18944, kv = 512;
  else if (shape == "qwen2.5-14b") H = 5120, I = 13824, kv = 1024;
  else if (shape != "qwen2.5-0.5b") throw std::runtime_error("--shape must be qwen2.5-0.5b, qwen2.5-7b or qwen2.5-14b");
  return {{"q_proj", H, H}, {"k_proj", kv, H}, {"v_proj", kv, H}, {"o_proj", H, H},
          {"gate_proj", I, H}, {"up_proj", I, H}, {"down_proj", H, I}};
}

double median_seconds(int reps, const std::function<void()>& f) {
  f();  // warm-up: primitive creation, scratch growth, first touch
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::string cpu_flags() {  // the ISA flags that decide the kernels, as /proc/cpuinfo lists them
  std::ifstream f("/proc/cpuinfo");
  std::string line, out;
  while (std::getline(f, line))
    if (line.rfind("flags", 0) == 0) {
      std::istringstream words(line.substr(line.find(':') + 1));
      std::set<std::string> have{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
      for (const char* flag : {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
        if (have.count(flag)) out += std::string(out.empty() ? "" : ",") + flag;
      break;
    }
  return out;
}

// One linear's weight in every stored form the bench compares (fp32 copy, bf16, NF4 + double quant) on the backend.
struct Weights {
  backend::DeviceBuffer<float> w32, nested;
  backend::DeviceBuffer<uint16_t> w16;
  backend::DeviceBuffer<uint8_t> packed, qabsmax;
  backend::FrozenWeight bf16, nf4;
  Weights(backend::Backend& be, const Linear& L, std::mt19937_64& gen) {
    const int64_t n = L.out * L.in, blocks = (n + 63) / 64;
    std::normal_distribution<float> nd(0.0f, 0.02f);
    std::vector<float> w(static_cast<size_t>(n));
    std::vector<uint16_t> h16(w.size());
    for (size_t i = 0; i < w.size(); ++i) w[i] = bf16_to_float(h16[i] = float_to_bf16(nd(gen)));
    std::vector<uint8_t> p(static_cast<size_t>((n + 1) / 2)), q(static_cast<size_t>(blocks));
    std::vector<float> absmax(static_cast<size_t>(blocks)), a2(static_cast<size_t>((blocks + 255) / 256));
    float offset = 0;
    backend::quantize_4bit(w.data(), n, WeightFormat::NF4, p.data(), absmax.data(), L.name);
    backend::double_quantize_absmax(absmax.data(), blocks, q.data(), a2.data(), &offset);
    w32 = backend::DeviceBuffer<float>(be, n), w16 = backend::DeviceBuffer<uint16_t>(be, n);
    packed = backend::DeviceBuffer<uint8_t>(be, static_cast<int64_t>(p.size()));
    qabsmax = backend::DeviceBuffer<uint8_t>(be, blocks);
    nested = backend::DeviceBuffer<float>(be, static_cast<int64_t>(a2.size()));
    be.upload(w32.get(), w.data(), w.size() * 4);
    be.upload(w16.get(), h16.data(), h16.size() * 2);
    be.upload(packed.get(), p.data(), p.size());
    be.upload(qabsmax.get(), q.data(), q.size());
    be.upload(nested.get(), a2.data(), a2.size() * 4);
    bf16 = backend::FrozenWeight{WeightFormat::BF16, L.out, L.in, w16.get()};
    nf4 = backend::FrozenWeight{WeightFormat::NF4, L.out, L.in, packed.get()};
    nf4.qabsmax = qabsmax.get(), nf4.nested_absmax = nested.get(), nf4.offset = offset;
  }
};

// Times every side on one linear in one direction; prints its JSON line and adds the seconds to total.
void measure(backend::Backend& be, const Linear& L, const Weights& W, bool fwd, int64_t M, int reps,
             const std::string& only, const float* X, const uint16_t* X16, float* Y,
             std::map<std::string, double>& total) {
  const int64_t K = fwd ? L.in : L.out, N = fwd ? L.out : L.in;
  const double flop = 2.0 * M * N * K;
  std::map<std::string, double> s;
  s["fp32"] = median_seconds(reps, [&] {
    be.gemm(false, fwd, M, N, K, 1.0f, X, K, W.w32.get(), L.in, 0.0f, Y, N, DType::F32);
  });
  auto side = [&](const char* name, const backend::FrozenWeight& fw, DType x_dt) {
    const void* x = x_dt == DType::BF16 ? static_cast<const void*>(X16) : X;
    s[name] = median_seconds(reps, [&] { be.frozen_gemm(fwd, M, x, K, x_dt, fw, DType::BF16, 0.0f, Y, N); });
  };
  if (only.empty() || only == "bf16") side("bf16/x32", W.bf16, DType::F32), side("bf16/x16", W.bf16, DType::BF16);
  if (only.empty() || only == "nf4") side("nf4dq/x32", W.nf4, DType::F32), side("nf4dq/x16", W.nf4, DType::BF16);
  std::printf("{\"linear\": \"%s\", \"direction\": \"%s\", \"M\": %lld, \"N\": %lld, \"K\": %lld", L.name,
              fwd ? "forward Y=XW^T" : "input grad dX=dYW", static_cast<long long>(M), static_cast<long long>(N),
              static_cast<long long>(K));
  for (const auto& [k, sec] : s) {
    std::printf(", \"%s_gflops\": %.1f", k.c_str(), flop / sec * 1e-9);
    if (k != "fp32") std::printf(", \"%s_vs_fp32\": %.3f", k.c_str(), s["fp32"] / sec);
    total[k] += sec;
  }
  std::printf("}\n");
}

void print_totals(std::map<std::string, double>& total) {
  std::printf("{\"layer_total_s\": {");
  const char* sep = "";
  for (const auto& [k, sec] : total) std::printf("%s\"%s\": %.4f", sep, k.c_str(), sec), sep = ", ";
  std::printf("}, \"speed_vs_fp32\": {");
  sep = "";
  for (const auto& [k, sec] : total)
    if (k != "fp32") std::printf("%s\"%s\": %.3f", sep, k.c_str(), total["fp32"] / sec), sep = ", ";
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("}, \"peak_rss_mib\": %ld, \"onednn\": \"%s\"}\n", ru.ru_maxrss / 1024,
              backend::cpu::dnnl_gemm_report().c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::string shape = "qwen2.5-0.5b", only;
  int64_t M = 512;
  int reps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--shape") shape = v;
    else if (k == "--tokens") M = std::stoll(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--only") only = v;
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  auto be = backend::make_cpu_backend();
  std::printf("{\"cpu_flags\": \"%s\", \"kernel_variant\": \"%s\", \"bf16_route\": \"%s\", \"shape\": \"%s\", "
              "\"tokens\": %lld}\n",
              cpu_flags().c_str(), backend::cpu::cpu_kernel_variant().c_str(),
              backend::cpu::frozen_gemm_native_bf16() ? "native (oneDNN bf16 matmul; 4-bit dequantised into bf16 panels)"
                                                      : "fp32 panels converted on the fly (bf16 X widened once)",
              shape.c_str(), static_cast<long long>(M));
  std::map<std::string, double> total;  // side -> seconds over one layer
  std::mt19937_64 gen(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const Linear& L : layer_shapes(shape)) {
    const Weights W(*be, L, gen);
    const int64_t maxk = std::max(L.in, L.out);
    backend::DeviceBuffer<float> X(*be, M * maxk), Y(*be, M * maxk);
    backend::DeviceBuffer<uint16_t> X16(*be, M * maxk);
    std::vector<float> x(static_cast<size_t>(M * maxk));
    std::vector<uint16_t> x16(x.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = bf16_to_float(x16[i] = float_to_bf16(nd(gen)));
    be->upload(X.get(), x.data(), x.size() * 4);
    be->upload(X16.get(), x16.data(), x16.size() * 2);
    for (bool fwd : {true, false}) measure(*be, L, W, fwd, M, reps, only, X.get(), X16.get(), Y.get(), total);
  }
  print_totals(total);
  return 0;
}
