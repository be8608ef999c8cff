// The CUDA backend's own checks, beyond the kernel conformance suite every backend passes
// (tests/backend/kernel_conformance.*, instantiated for CUDA in cuda_conformance_test.cpp):
//  - the device description and backend name;
//  - a Qwen2.5-0.5B MLP-shaped bf16 gemm (too slow for the reference backend: against the fast CPU backend, itself
//    checked against the reference by the conformance suite), 2e-4 of the output scale (fp32 accumulation order);
//  - the full-fp32 attention mode (SFT_CUDA_ATTN_FP32=1) and its chunk loop (one batch row per chunk), 1e-4 of the
//    output scale (fp32 vs the double reference; the default TF32 mode is the conformance suite's 5e-3).
// Skipped (not failed) when no CUDA device is usable.
#include <cstdlib>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_info.h"
#include "gpu_test_util.h"
#include "util/bf16.h"

namespace sft::gputest {
namespace {

using backend::AttnShape;
using backend::Backend;
using backend::DType;
using VV = std::vector<std::vector<float>>;

class CudaOnly : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    cuda_ = try_cuda(&why);
    if (!cuda_) GTEST_SKIP() << "no CUDA device: " << why;
    ref_ = backend::make_cpu_reference_backend();
  }
  std::unique_ptr<Backend> cuda_, ref_;
};

TEST_F(CudaOnly, DeviceDescription) {
  const std::string d = backend::cuda::device_description();
  EXPECT_NE(d.find("cuda:0"), std::string::npos) << d;
  EXPECT_EQ(cuda_->name(), "cuda:0");
}

TEST_F(CudaOnly, GemmQwenShapeBf16VsFastCpu) {
  auto fast = backend::make_cpu_backend();
  const int64_t M = 256, N = 4864, K = 896;
  auto x = randn(M * K, 20), w = randn(N * K, 21, 0.02f);
  std::vector<uint16_t> x16(x.size()), w16(w.size());
  for (size_t i = 0; i < x.size(); ++i) x16[i] = float_to_bf16(x[i]);
  for (size_t i = 0; i < w.size(); ++i) w16[i] = float_to_bf16(w[i]);
  auto run = [&](Backend& be) {
    Buf<uint16_t> X(be, x16), W(be, w16);
    Buf<float> Y(be, M * N);
    be.gemm(false, true, M, N, K, 1.0f, X, K, W, K, 0.0f, Y, N, DType::BF16);
    return Y.host();
  };
  EXPECT_TRUE(close_scaled(run(*cuda_), run(*fast), 2e-4f));
}

// Doc ids for B rows of T: row 0 packs three documents, row 1 one document then padding, further rows one each.
std::vector<int32_t> make_docs(int64_t B, int64_t T) {
  std::vector<int32_t> doc(B * T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < T; ++i) {
      int32_t d = int32_t(b * 10);
      if (b == 0) d = i < T / 3 ? 0 : (i < T / 2 ? 1 : 2);
      if (b == 1 && i >= T - T / 4) d = -1;
      doc[b * T + i] = d;
    }
  return doc;
}

void attention_case(Backend& cuda, Backend& ref, const AttnShape& s, float tol) {
  const int64_t N = s.B * s.T, d = s.head_dim;
  auto q0 = randn(N * s.n_heads * d, 80), k0 = randn(N * s.n_kv_heads * d, 81), v0 = randn(N * s.n_kv_heads * d, 82);
  auto do0 = randn(N * s.n_heads * d, 83);
  auto doc = make_docs(s.B, s.T);
  auto run = [&](Backend& be) {
    Buf<float> q(be, q0), k(be, k0), v(be, v0), dout(be, do0), out(be, N * s.n_heads * d), lse(be, N * s.n_heads);
    Buf<float> dq(be, q0), dk(be, k0), dv(be, v0);  // garbage in: the backward overwrites
    Buf<int32_t> dc(be, doc);
    be.attention_forward(out, lse, q, k, v, dc, s);
    be.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, dc, s);
    return VV{out.host(), lse.host(), dq.host(), dk.host(), dv.host()};
  };
  auto g = run(cuda);
  auto r = run(ref);
  const char* names[] = {"out", "lse", "dq", "dk", "dv"};
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(close_scaled(g[i], r[i], tol)) << names[i];
}

TEST_F(CudaOnly, AttentionFullFp32AndSmallChunks) {
  setenv("SFT_CUDA_ATTN_FP32", "1", 1);
  std::string why;
  auto fp32 = try_cuda(&why);
  unsetenv("SFT_CUDA_ATTN_FP32");
  ASSERT_TRUE(fp32) << why;
  AttnShape s{3, 45, 6, 2, 32, 1.0f / std::sqrt(32.0f)};
  attention_case(*fp32, *ref_, s, 1e-4f);
  // one batch row per chunk: exercises the chunk loop of the attention
  auto* cb = dynamic_cast<backend::cuda::CudaBackend*>(fp32.get());
  ASSERT_NE(cb, nullptr);
  cb->set_attention_scratch_limit(1);
  attention_case(*fp32, *ref_, s, 1e-4f);
}

}  // namespace
}  // namespace sft::gputest
