// Every CUDA kernel against the CPU reference backend (backend/cpu, scalar loops with double accumulators) on random
// inputs. Tolerances (stated per test):
//  - fp32 elementwise / row kernels: 1e-5..1e-4 relative (fp32 rounding, different summation order);
//  - gemm F32: 1e-4 of the output scale; gemm BF16: both sides consume the same bf16 bits, so only the fp32
//    accumulation order differs: 2e-4 of the output scale;
//  - attention: the internal batched GEMMs run TF32 by default (10-bit mantissa): 5e-3 of the output scale; with
//    SFT_CUDA_ATTN_FP32=1 (full fp32) 1e-4.
// Skipped (not failed) when no CUDA device is usable.
#include <array>
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

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    cuda_ = try_cuda(&why);
    if (!cuda_) GTEST_SKIP() << "no CUDA device: " << why;
    ref_ = backend::make_cpu_reference_backend();
  }
  // Runs fn on both backends; returns {cuda results, reference results}.
  template <class Fn>
  std::pair<VV, VV> both(Fn fn) {
    VV g = fn(*cuda_);
    cuda_->synchronize();
    VV r = fn(*ref_);
    return {g, r};
  }
  std::unique_ptr<Backend> cuda_, ref_;
};

TEST_F(CudaKernels, DeviceDescription) {
  const std::string d = backend::cuda::device_description();
  EXPECT_NE(d.find("cuda:0"), std::string::npos) << d;
  EXPECT_EQ(cuda_->name(), "cuda:0");
}

TEST_F(CudaKernels, MemoryRoundTripAndZeroInit) {
  Buf<float> a(*cuda_, 1000);
  auto h = a.host();
  for (float x : h) ASSERT_EQ(x, 0.0f);
  auto v = randn(1000, 1);
  a.set(v);
  Buf<float> b(*cuda_, 1000);
  cuda_->copy(b, a, 1000 * 4);
  EXPECT_EQ(b.host(), v);
  cuda_->zero(b, 500 * 4);
  auto hb = b.host();
  EXPECT_EQ(hb[499], 0.0f);
  EXPECT_EQ(hb[500], v[500]);
}

TEST_F(CudaKernels, AdamWSumSquaresScaleAdd) {
  const int64_t n = 100003;
  auto p0 = randn(n, 2), g0 = randn(n, 3, 0.1f);
  auto [g, r] = both([&](Backend& be) {
    Buf<float> p(be, p0), gr(be, g0), m(be, n), v(be, n), x(be, g0);
    backend::AdamWArgs a;
    a.lr = 1e-3f, a.weight_decay = 0.01f;
    for (int s = 1; s <= 3; ++s) {
      a.step = s;
      be.adamw_step(p, gr, m, v, n, a);
    }
    const double ss = be.sum_squares(x, n);
    be.scale(x, 0.5f, n);
    be.add(x, gr, n);
    return VV{p.host(), m.host(), v.host(), x.host(), {float(ss)}};
  });
  EXPECT_TRUE(close(g[0], r[0], 1e-6f, 1e-5f)) << "param";
  EXPECT_TRUE(close(g[1], r[1], 1e-7f, 1e-5f)) << "m";
  EXPECT_TRUE(close(g[2], r[2], 1e-9f, 1e-5f)) << "v";
  EXPECT_TRUE(close(g[3], r[3], 1e-7f, 1e-6f)) << "scale+add";
  EXPECT_NEAR(g[4][0], r[4][0], 1e-6 * r[4][0]) << "sum_squares";
}

TEST_F(CudaKernels, Bf16ConversionsBitExact) {
  const int64_t n = 65536 + 7;
  auto src = randn(n, 4, 3.0f);
  src[0] = 0.0f, src[1] = -0.0f, src[2] = 1e30f, src[3] = -1e-30f, src[4] = INFINITY;
  std::vector<uint16_t> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = float_to_bf16(src[i]);
  Buf<float> s(*cuda_, src);
  Buf<uint16_t> d(*cuda_, n);
  cuda_->f32_to_bf16(d, s, n);
  EXPECT_EQ(d.host(), want);
  Buf<float> back(*cuda_, n);
  cuda_->bf16_to_f32(back, d, n);
  auto b = back.host();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(b[i], bf16_to_float(want[i])) << i;
}

struct GemmCase {
  bool ta, tb;
  int64_t M, N, K, pad;
  float beta;
  DType dt;
};

TEST_F(CudaKernels, GemmAllLayouts) {
  std::vector<GemmCase> cases;
  for (DType dt : {DType::F32, DType::BF16})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float beta : {0.0f, 1.0f}) {
          cases.push_back({ta, tb, 37, 45, 29, 0, beta, dt});
          cases.push_back({ta, tb, 64, 96, 128, 8, beta, dt});
        }
  for (const auto& c : cases) {
    SCOPED_TRACE(testing::Message() << "ta=" << c.ta << " tb=" << c.tb << " M=" << c.M << " N=" << c.N
                                    << " K=" << c.K << " pad=" << c.pad << " beta=" << c.beta
                                    << " bf16=" << (c.dt == DType::BF16));
    const int64_t lda = (c.ta ? c.M : c.K) + c.pad, ldb = (c.tb ? c.K : c.N) + c.pad, ldc = c.N + c.pad;
    const int64_t na = (c.ta ? c.K : c.M) * lda, nb = (c.tb ? c.N : c.K) * ldb, nc = c.M * ldc;
    auto a32 = randn(na, 10), b32 = randn(nb, 11), c0 = randn(nc, 12);
    std::vector<uint16_t> a16(na), b16(nb);
    for (int64_t i = 0; i < na; ++i) a16[i] = float_to_bf16(a32[i]);
    for (int64_t i = 0; i < nb; ++i) b16[i] = float_to_bf16(b32[i]);
    auto [g, r] = both([&](Backend& be) {
      Buf<float> A(be, a32), B(be, b32), C(be, c0);
      Buf<uint16_t> A16(be, a16), B16(be, b16);
      const void* pa = c.dt == DType::BF16 ? static_cast<const void*>(A16.get()) : A.get();
      const void* pb = c.dt == DType::BF16 ? static_cast<const void*>(B16.get()) : B.get();
      be.gemm(c.ta, c.tb, c.M, c.N, c.K, 0.75f, pa, lda, pb, ldb, c.beta, C, ldc, c.dt);
      auto h = C.host();
      for (int64_t i = 0; i < c.M; ++i)  // padding columns of C are not compared (the reference leaves them alone)
        for (int64_t j = c.N; j < ldc; ++j) h[i * ldc + j] = 0;
      return VV{h};
    });
    EXPECT_TRUE(close_scaled(g[0], r[0], c.dt == DType::BF16 ? 2e-4f : 1e-4f));
  }
}

TEST_F(CudaKernels, GemmQwenShapeBf16VsFastCpu) {
  // A Qwen2.5-0.5B MLP-shaped product (reference backend too slow here; the fast CPU backend is itself tested
  // against the reference in tests/backend/cpu).
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

TEST_F(CudaKernels, BiasAndEmbedding) {
  const int64_t rows = 300, cols = 67, V = 50;
  auto y0 = randn(rows * cols, 30), bias = randn(cols, 31), table = randn(V * cols, 32);
  auto ids = randint(rows, 0, V, 33);
  ids[1] = ids[0];  // repeated ids accumulate
  auto [g, r] = both([&](Backend& be) {
    Buf<float> y(be, y0), b(be, bias), db(be, bias), t(be, table), dt(be, table), e(be, rows * cols);
    Buf<int32_t> id(be, ids);
    be.add_bias(y, b, rows, cols);
    be.bias_grad(db, y, rows, cols);
    be.embedding_forward(e, t, id, rows, cols);
    be.embedding_backward(dt, y, id, rows, cols);
    return VV{y.host(), db.host(), e.host(), dt.host()};
  });
  EXPECT_TRUE(close(g[0], r[0], 0, 0)) << "add_bias";
  EXPECT_TRUE(close(g[1], r[1], 1e-3f, 1e-5f)) << "bias_grad";
  EXPECT_TRUE(close(g[2], r[2], 0, 0)) << "embedding_forward";
  EXPECT_TRUE(close(g[3], r[3], 1e-5f, 1e-5f)) << "embedding_backward";
}

TEST_F(CudaKernels, RmsNorm) {
  for (int64_t H : {64, 896, 1000}) {
    SCOPED_TRACE(H);
    const int64_t n = 133;
    auto x0 = randn(n * H, 40, 2.0f), w0 = randn(H, 41), dy0 = randn(n * H, 42), dx0 = randn(n * H, 43);
    auto dw0 = randn(H, 44);
    auto [g, r] = both([&](Backend& be) {
      Buf<float> x(be, x0), w(be, w0), y(be, n * H), rstd(be, n), dy(be, dy0), dx(be, dx0), dw(be, dw0);
      be.rmsnorm_forward(y, rstd, x, w, n, H, 1e-6f);
      be.rmsnorm_backward(dx, dw, dy, x, w, rstd, n, H);
      return VV{y.host(), rstd.host(), dx.host(), dw.host()};
    });
    EXPECT_TRUE(close(g[0], r[0], 1e-5f, 1e-5f)) << "y";
    EXPECT_TRUE(close(g[1], r[1], 0, 1e-5f)) << "rstd";
    EXPECT_TRUE(close(g[2], r[2], 1e-5f, 1e-4f)) << "dx";
    EXPECT_TRUE(close_scaled(g[3], r[3], 1e-5f)) << "dw";
  }
}

TEST_F(CudaKernels, Rope) {
  const int64_t n = 70, heads = 3, d = 64;
  std::vector<float> inv(d / 2);
  for (int64_t f = 0; f < d / 2; ++f) inv[f] = float(1.0 / std::pow(1e6, double(2 * f) / double(d)));
  auto pos = randint(n, 0, 4096, 50);
  pos[0] = 0;
  auto x0 = randn(n * heads * d, 51);
  auto [g, r] = both([&](Backend& be) {
    Buf<float> x(be, x0), invf(be, inv), y(be, x0);
    Buf<int32_t> p(be, pos);
    be.rope(x, p, invf, n, heads, d, false);
    auto fwd = x.host();
    be.rope(y, p, invf, n, heads, d, true);
    return VV{fwd, y.host()};
  });
  EXPECT_TRUE(close(g[0], r[0], 2e-5f, 1e-5f)) << "forward";
  EXPECT_TRUE(close(g[1], r[1], 2e-5f, 1e-5f)) << "inverse";
}

TEST_F(CudaKernels, SwiGlu) {
  const int64_t n = 12345;
  auto ga = randn(n, 60, 3.0f), up = randn(n, 61), dh = randn(n, 62);
  auto [g, r] = both([&](Backend& be) {
    Buf<float> G(be, ga), U(be, up), D(be, dh), h(be, n), dg(be, n), du(be, n);
    be.swiglu_forward(h, G, U, n);
    be.swiglu_backward(dg, du, D, G, U, n);
    return VV{h.host(), dg.host(), du.host()};
  });
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(close(g[i], r[i], 1e-6f, 1e-5f)) << i;
}

TEST_F(CudaKernels, SoftmaxCrossEntropy) {
  for (int64_t V : {1000, 151936}) {
    SCOPED_TRACE(V);
    const int64_t rows = 9;
    auto x0 = randn(rows * V, 70, 3.0f);
    auto t = randint(rows, 0, int32_t(V), 71);
    t[2] = -100;
    t[5] = -1;
    // row 3: make the target the (unique) argmax so greedy is 1 somewhere
    x0[3 * V + t[3]] = 100.0f;
    for (float gs : {0.0f, 0.125f}) {
      SCOPED_TRACE(gs);
      auto [g, r] = both([&](Backend& be) {
        Buf<float> x(be, x0), loss(be, rows);
        Buf<uint8_t> greedy(be, rows);
        Buf<int32_t> tg(be, t);
        be.softmax_cross_entropy(x, loss, greedy, tg, rows, V, gs);
        auto gr = greedy.host();
        return VV{x.host(), loss.host(), std::vector<float>(gr.begin(), gr.end())};
      });
      EXPECT_TRUE(close(g[1], r[1], 1e-4f, 1e-5f)) << "loss";
      EXPECT_EQ(g[2], r[2]) << "greedy";
      EXPECT_EQ(g[2][3], 1.0f);
      EXPECT_TRUE(close(g[0], r[0], 1e-8f, 1e-4f)) << (gs == 0 ? "logits untouched" : "grad");
    }
  }
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

TEST_F(CudaKernels, AttentionDocMaskedGqa) {
  for (auto [B, T, H, KV, d] : std::vector<std::array<int64_t, 5>>{
           {2, 37, 4, 2, 16}, {3, 64, 4, 4, 32}, {2, 128, 14, 2, 64}, {1, 96, 12, 2, 128}, {2, 50, 9, 3, 64}}) {
    SCOPED_TRACE(testing::Message() << "B=" << B << " T=" << T << " H=" << H << " KV=" << KV << " d=" << d);
    AttnShape s{B, T, H, KV, d, 1.0f / std::sqrt(float(d))};
    attention_case(*cuda_, *ref_, s, 5e-3f);
  }
}

TEST_F(CudaKernels, AttentionLastTqQueries) {
  // KV-cache decoding: queries are the last Tq positions of each row, keys/values all T.
  for (auto [B, T, Tq] : std::vector<std::array<int64_t, 3>>{{1, 40, 1}, {1, 33, 7}, {2, 64, 5}}) {
    SCOPED_TRACE(testing::Message() << "B=" << B << " T=" << T << " Tq=" << Tq);
    AttnShape s{B, T, 4, 2, 32, 1.0f / std::sqrt(32.0f)};
    s.Tq = Tq;
    const int64_t d = s.head_dim;
    auto q0 = randn(B * Tq * s.n_heads * d, 90), k0 = randn(B * T * s.n_kv_heads * d, 91);
    auto v0 = randn(B * T * s.n_kv_heads * d, 92);
    auto doc = make_docs(B, T);
    auto [g, r] = both([&](Backend& be) {
      Buf<float> q(be, q0), k(be, k0), v(be, v0), out(be, B * Tq * s.n_heads * d), lse(be, B * Tq * s.n_heads);
      Buf<int32_t> dc(be, doc);
      be.attention_forward(out, lse, q, k, v, dc, s);
      return VV{out.host(), lse.host()};
    });
    EXPECT_TRUE(close_scaled(g[0], r[0], 5e-3f)) << "out";
    EXPECT_TRUE(close_scaled(g[1], r[1], 5e-3f)) << "lse";
  }
}

TEST_F(CudaKernels, AttentionFullFp32AndSmallChunks) {
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
