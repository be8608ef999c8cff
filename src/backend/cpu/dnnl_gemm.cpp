#include "backend/cpu/dnnl_gemm.h"

#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include "dnnl.hpp"
#include "util/bf16.h"
#include "util/error.h"

namespace sft::backend::cpu {
namespace {

using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, float, float>;

struct Cached {
  dnnl::matmul prim;
  std::string impl;  // oneDNN's implementation name (e.g. "gemm:jit", "brg:avx512_core_amx"), for the bench report
  int64_t calls = 0;
};

struct DnnlState {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<Key, Cached> cache;
  std::mutex mu;
};

DnnlState& state() {
  static DnnlState s;
  return s;
}

dnnl::memory::desc md(int64_t rows, int64_t cols, bool trans, int64_t ld, dnnl::memory::data_type dt) {
  // logical [rows, cols]; stored row-major with leading dimension ld, or transposed ([cols, rows] storage).
  dnnl::memory::dims strides = trans ? dnnl::memory::dims{1, ld} : dnnl::memory::dims{ld, 1};
  return dnnl::memory::desc({rows, cols}, dt, strides);
}

// Builds against oneDNN 2.x (Debian 12) and 3.x (newer distributions / the onednn-cpu-gomp wheel) alike.
Cached make_primitive(const Key& key) {
  auto [ta, tb, M, N, K, lda, ldb, ldc, dti, alpha, beta] = key;
  auto dt = dti == 0 ? dnnl::memory::data_type::f32 : dnnl::memory::data_type::bf16;
  auto a = md(M, K, ta, lda, dt), b = md(K, N, tb, ldb, dt);
  auto c = dnnl::memory::desc({M, N}, dnnl::memory::data_type::f32, dnnl::memory::dims{ldc, 1});
  dnnl::primitive_attr attr;
  dnnl::post_ops po;
#if DNNL_VERSION_MAJOR >= 3
  // 3.x dropped output scales: alpha becomes a linear post-op on the product, applied before the sum (beta * C).
  if (alpha != 1.0f) po.append_eltwise(dnnl::algorithm::eltwise_linear, alpha, 0.0f);
#else
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
#endif
  if (beta != 0.0f) po.append_sum(beta);
  if (po.len() > 0) attr.set_post_ops(po);
#if DNNL_VERSION_MAJOR >= 3
  dnnl::matmul::primitive_desc pd(state().engine, a, b, c, attr);
#else
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), attr, state().engine);
#endif
  return Cached{dnnl::matmul(pd), pd.impl_info_str(), 0};
}

void run(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda, const void* B,
         int64_t ldb, float beta, float* C, int64_t ldc, int dti) {
  DnnlState& s = state();
  Key key{ta, tb, M, N, K, lda, ldb, ldc, dti, alpha, beta};
  dnnl::matmul prim;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.cache.find(key);
    if (it == s.cache.end()) it = s.cache.emplace(key, make_primitive(key)).first;
    prim = it->second.prim;
    ++it->second.calls;
  }
  auto dt = dti == 0 ? dnnl::memory::data_type::f32 : dnnl::memory::data_type::bf16;
  dnnl::memory am(md(M, K, ta, lda, dt), s.engine, const_cast<void*>(A));
  dnnl::memory bm(md(K, N, tb, ldb, dt), s.engine, const_cast<void*>(B));
  dnnl::memory cm(dnnl::memory::desc({M, N}, dnnl::memory::data_type::f32, dnnl::memory::dims{ldc, 1}), s.engine, C);
  prim.execute(s.stream, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
  s.stream.wait();
}

// Widens a bf16 matrix (rows x cols logical, possibly transposed storage) into a dense fp32 copy with the same layout.
std::vector<float> widen(const void* p, int64_t rows, int64_t cols, bool trans, int64_t ld) {
  const int64_t outer = trans ? cols : rows, inner = trans ? rows : cols;
  std::vector<float> out(static_cast<size_t>(outer * inner));
  const auto* src = static_cast<const uint16_t*>(p);
#pragma omp parallel for
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) out[o * inner + i] = bf16_to_float(src[o * ld + i]);
  return out;
}

}  // namespace

// oneDNN's implementation of a bf16 matmul on this CPU ("" when it has none): "ref..." is its reference loop,
// "brg:avx512_core_bf16" uses AVX512-BF16 dot products, "brg:avx512_core_amx" the AMX tiles.
const std::string& dnnl_bf16_matmul_impl() {
  static const std::string impl = [] {
    try {
      auto a = md(64, 64, false, 64, dnnl::memory::data_type::bf16);
      auto c = dnnl::memory::desc({64, 64}, dnnl::memory::data_type::f32, dnnl::memory::dims{64, 1});
#if DNNL_VERSION_MAJOR >= 3
      dnnl::matmul::primitive_desc pd(state().engine, a, a, c);
#else
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, a, c), state().engine);
#endif
      return std::string(pd.impl_info_str());
    } catch (const dnnl::error&) {
      return std::string();
    }
  }();
  return impl;
}

bool dnnl_has_fast_bf16() {
  const std::string& impl = dnnl_bf16_matmul_impl();
  return !impl.empty() && impl.find("ref") == std::string::npos;
}

bool dnnl_bf16_uses_amx() { return dnnl_bf16_matmul_impl().find("amx") != std::string::npos; }

std::string dnnl_gemm_report() {
  const dnnl_version_t* v = dnnl_version();
  std::string isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    default: isa = "other"; break;
  }
  std::map<std::string, int64_t> calls;  // implementation -> calls
  {
    DnnlState& s = state();
    std::lock_guard<std::mutex> lock(s.mu);
    for (const auto& [key, c] : s.cache) calls[c.impl] += c.calls;
  }
  std::string out = "onednn " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                    std::to_string(v->patch) + " isa " + isa + "; matmul impls:";
  for (const auto& [impl, n] : calls) out += " " + impl + " x" + std::to_string(n);
  return out;
}

void dnnl_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
               const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab) {
  if (M == 0 || N == 0) return;
  SFT_CHECK(K > 0, "gemm: K must be positive (M=", M, " N=", N, ")");
  try {
    if (ab == DType::F32) return run(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 0);
    if (dnnl_has_fast_bf16()) return run(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, 1);
    const std::vector<float> a = widen(A, M, K, ta, lda), b = widen(B, K, N, tb, ldb);
    run(ta, tb, M, N, K, alpha, a.data(), ta ? M : K, b.data(), tb ? K : N, beta, C, ldc, 0);
  } catch (const dnnl::error& e) {
    throw Error(std::string("oneDNN matmul failed (M=") + std::to_string(M) + " N=" + std::to_string(N) +
                " K=" + std::to_string(K) + "): " + e.what());
  }
}

}  // namespace sft::backend::cpu
