// The machine's gemm peak through the library sft links (oneDNN): a large square matmul (default 2048^3) in fp32
// and bf16 (fp32 accumulation and output, as the training step uses it), plus, with --shapes, every gemm shape of one
// training step of a model shape (forward, dX and dW of each linear layer and the LM head chunk), so that a library
// version can be judged on the shapes that matter rather than on a square. The PyTorch peer is
// bench/peers/torch_gemm.py; bench/train_step.sh runs both in the same run. Prints JSON lines.
// usage: gemm_peak [--size 2048] [--reps 5] [--shapes qwen2.5-0.5b|smollm2-135m] [--tokens 2048] [--head_chunk_mib M]
// (--head_chunk_mib: size the LM-head chunk by M MiB of fp32 logits instead of model/decoder.cpp's head_chunk_rows
// rule, to weigh the chunk size against the gemm efficiency of its shapes)
// Builds against oneDNN 2.x (Debian) and 3.x (the PyPI wheel) alike, so one source can compare the two.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "dnnl.hpp"
#include "model/decoder.h"

namespace {

using dt = dnnl::memory::data_type;

struct Result {
  double gflops = 0;
  std::string impl;
};

const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

// C[M,N] = op(A)[M,K] op(B)[K,N] with A, B of type `ab` and C fp32; transposes as strides (as dnnl_gemm.cpp does).
Result time_matmul(dnnl::engine& eng, dnnl::stream& st, int64_t M, int64_t N, int64_t K, bool ta, bool tb, dt ab,
                   int reps, float beta) {
  const dnnl::memory::desc a({M, K}, ab, ta ? dnnl::memory::dims{1, M} : dnnl::memory::dims{K, 1});
  const dnnl::memory::desc b({K, N}, ab, tb ? dnnl::memory::dims{1, K} : dnnl::memory::dims{N, 1});
  const dnnl::memory::desc c({M, N}, dt::f32, dnnl::memory::dims{N, 1});
  dnnl::primitive_attr attr;
  if (beta != 0.0f) {
    dnnl::post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
#if DNNL_VERSION_MAJOR >= 3
  dnnl::matmul::primitive_desc pd(eng, a, b, c, attr);
#else
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, eng);
#endif
  dnnl::matmul prim(pd);
  dnnl::memory am(a, eng), bm(b, eng), cm(c, eng);
  std::mt19937 g(1);
  std::uniform_int_distribution<int> u(-1000, 1000);
  auto fill = [&](dnnl::memory& m, size_t n, dt t) {
    if (t == dt::f32) {
      auto* p = static_cast<float*>(m.get_data_handle());
      for (size_t i = 0; i < n; ++i) p[i] = u(g) * 1e-3f;
    } else {
      auto* p = static_cast<uint16_t*>(m.get_data_handle());
      for (size_t i = 0; i < n; ++i) {
        const float f = u(g) * 1e-3f;
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        p[i] = static_cast<uint16_t>(bits >> 16);
      }
    }
  };
  fill(am, static_cast<size_t>(M * K), ab);
  fill(bm, static_cast<size_t>(K * N), ab);
  fill(cm, static_cast<size_t>(M * N), dt::f32);
  auto once = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    prim.execute(st, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    st.wait();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  Result r;
  r.impl = pd.impl_info_str();
  const double first = once();  // warm-up (also: a reference implementation would take minutes per rep)
  std::vector<double> t;
  const bool slow = first > 5.0;
  for (int i = 0; i < (slow ? 0 : reps); ++i) t.push_back(once());
  if (t.empty()) t.push_back(first);
  std::sort(t.begin(), t.end());
  r.gflops = 2.0 * M * N * K / t[t.size() / 2] / 1e9;
  return r;
}

struct Shape {
  const char* what;
  int64_t M, N, K;
  bool ta, tb;
  float beta;
};

// The gemms of one training step for n token rows (decoder.cpp's calls: Y = X W^T, dX = dY W, dW += dY^T X).
std::vector<Shape> step_shapes(const std::string& model, int64_t n, int64_t head_chunk_mib) {
  int64_t H, I, QD, KD, V;
  if (model == "qwen2.5-0.5b") H = 896, I = 4864, QD = 896, KD = 128, V = 151936;
  else if (model == "smollm2-135m") H = 576, I = 1536, QD = 576, KD = 192, V = 49152;
  else return {};
  // Decoder::head_chunk_rows (model/decoder.cpp) unless --head_chunk_mib sizes the chunk's logits instead.
  const int64_t chunk = head_chunk_mib > 0
                            ? std::clamp<int64_t>((head_chunk_mib << 18) / V, 16, 4096)  // MiB / 4 B per logit
                            : sft::model::head_chunk_rows_for_vocab(V);
  std::vector<Shape> s;
  auto linear = [&](const char* what, int64_t out, int64_t in) {
    s.push_back({what, n, out, in, false, true, 0.0f});   // forward
    s.push_back({what, n, in, out, false, false, 1.0f});  // dX
    s.push_back({what, out, in, n, true, false, 1.0f});   // dW
  };
  linear("q/o", QD, H);
  linear("k/v", KD, H);
  linear("gate/up", I, H);
  linear("down", H, I);
  s.push_back({"head fwd", chunk, V, H, false, true, 0.0f});
  s.push_back({"head dX", chunk, H, V, false, false, 0.0f});
  s.push_back({"head dW", V, H, chunk, true, false, 1.0f});
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t size = 2048, tokens = 2048, head_chunk_mib = 0;
  int reps = 5;
  std::string shapes;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--size") size = std::stoll(v);
    else if (k == "--reps") reps = std::stoi(v);
    else if (k == "--shapes") shapes = v;
    else if (k == "--tokens") tokens = std::stoll(v);
    else if (k == "--head_chunk_mib") head_chunk_mib = std::stoll(v);
    else {
      std::fprintf(stderr, "gemm_peak: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream st(eng);
  const dnnl_version_t* ver = dnnl_version();
  char lib[64];
  std::snprintf(lib, sizeof lib, "onednn %d.%d.%d", ver->major, ver->minor, ver->patch);
  const char* isa = isa_name(dnnl::get_effective_cpu_isa());
  for (dt t : {dt::f32, dt::bf16}) {
    Result r;
    try {
      r = time_matmul(eng, st, size, size, size, false, false, t, reps, 0.0f);
    } catch (const dnnl::error&) {
      r.impl = "unsupported on this CPU";  // oneDNN 2.x has no bf16 matmul at all without AVX512
    }
    std::printf("{\"peer\": \"sft-gemm\", \"lib\": \"%s\", \"isa\": \"%s\", \"dtype\": \"%s\", \"size\": %lld, "
                "\"gflops\": %.1f, \"impl\": \"%s\"}\n",
                lib, isa, t == dt::f32 ? "fp32" : "bf16", static_cast<long long>(size), r.gflops, r.impl.c_str());
    std::fflush(stdout);
  }
  double flop = 0, secs = 0;
  for (const Shape& s : step_shapes(shapes, tokens, head_chunk_mib)) {
    const Result r = time_matmul(eng, st, s.M, s.N, s.K, s.ta, s.tb, dt::f32, reps, s.beta);
    const double f = 2.0 * s.M * s.N * s.K;
    flop += f, secs += f / (r.gflops * 1e9);
    std::printf("{\"peer\": \"sft-gemm-shape\", \"lib\": \"%s\", \"what\": \"%s\", \"M\": %lld, \"N\": %lld, "
                "\"K\": %lld, \"ta\": %d, \"tb\": %d, \"gflops\": %.1f, \"impl\": \"%s\"}\n",
                lib, s.what, static_cast<long long>(s.M), static_cast<long long>(s.N), static_cast<long long>(s.K),
                s.ta, s.tb, r.gflops, r.impl.c_str());
    std::fflush(stdout);
  }
  if (secs > 0)
    std::printf("{\"peer\": \"sft-gemm-shapes\", \"lib\": \"%s\", \"model\": \"%s\", \"fp32_gflops_over_shapes\": %.1f}\n",
                lib, shapes.c_str(), flop / secs / 1e9);
  return 0;
}
