// Every fast CPU kernel against its scalar reference (reference_backend.cpp) on random, non-zero inputs.
// Tolerances: the reference accumulates in double, the fast kernels in fp32 (oneDNN, simd reductions); the bound is a
// relative max-abs error (max |a-b| / max |ref|) of a few 1e-6 for O(1000)-term fp32 sums, looser only where stated.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/fast_math.h"
#include "util/bf16.h"

namespace sft::backend {
namespace {

std::vector<float> randn(size_t n, uint64_t seed, float sd = 1.0f) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

double rel_err(const std::vector<float>& a, const std::vector<float>& ref) {
  double mx = 0, mref = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    mx = std::max(mx, static_cast<double>(std::fabs(a[i] - ref[i])));
    mref = std::max(mref, static_cast<double>(std::fabs(ref[i])));
  }
  return mref == 0 ? mx : mx / mref;
}

struct CpuKernels : ::testing::Test {
  std::unique_ptr<Backend> fast = make_cpu_backend(), ref = make_cpu_reference_backend();
};

TEST_F(CpuKernels, GemmAllTransposesBetaAlphaF32) {
  const int64_t M = 37, N = 53, K = 71;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (float beta : {0.0f, 1.0f}) {
        const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
        auto A = randn((ta ? K : M) * lda, 1), B = randn((tb ? N : K) * ldb, 2), C0 = randn(M * ldc, 3);
        auto c1 = C0, c2 = C0;
        fast->gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, c1.data(), ldc, DType::F32);
        ref->gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, c2.data(), ldc, DType::F32);
        EXPECT_LT(rel_err(c1, c2), 2e-6) << "ta=" << ta << " tb=" << tb << " beta=" << beta;
      }
}

TEST_F(CpuKernels, GemmBf16MatchesReferenceOnSameBf16Operands) {
  const int64_t M = 33, N = 65, K = 130;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      auto Af = randn(M * K, 4), Bf = randn(K * N, 5);
      std::vector<uint16_t> A(Af.size()), B(Bf.size());
      fast->f32_to_bf16(A.data(), Af.data(), A.size());
      fast->f32_to_bf16(B.data(), Bf.data(), B.size());
      std::vector<float> c1(M * N, NAN), c2(M * N, 0.0f);
      fast->gemm(ta, tb, M, N, K, 1.0f, A.data(), ta ? M : K, B.data(), tb ? K : N, 0.0f, c1.data(), N, DType::BF16);
      ref->gemm(ta, tb, M, N, K, 1.0f, A.data(), ta ? M : K, B.data(), tb ? K : N, 0.0f, c2.data(), N, DType::BF16);
      // bf16 products are exact in fp32; only the fp32 accumulation order differs.
      EXPECT_LT(rel_err(c1, c2), 2e-6) << "ta=" << ta << " tb=" << tb;
    }
}

TEST_F(CpuKernels, Bf16ConversionRoundsToNearestEven) {
  auto x = randn(1000, 6, 100.0f);
  std::vector<uint16_t> a(x.size()), b(x.size());
  fast->f32_to_bf16(a.data(), x.data(), x.size());
  ref->f32_to_bf16(b.data(), x.data(), x.size());
  EXPECT_EQ(a, b);
  EXPECT_EQ(float_to_bf16(1.00390625f), 0x3f80);
  std::vector<float> r1(x.size()), r2(x.size());
  fast->round_to_bf16(r1.data(), x.data(), x.size());
  ref->round_to_bf16(r2.data(), x.data(), x.size());
  EXPECT_EQ(r1, r2);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(r1[i], bf16_to_float(a[i]));  // exactly halfway between 1 and 1+2^-7: rounds to even (1.0)
}

TEST_F(CpuKernels, ElementwiseAndOptimizer) {
  const int64_t n = 40000;
  auto p = randn(n, 7), g = randn(n, 8, 0.1f), m = randn(n, 9, 0.01f), v0 = randn(n, 10, 0.01f);
  for (auto& x : v0) x = x * x;
  auto p1 = p, p2 = p, m1 = m, m2 = m, v1 = v0, v2 = v0;
  AdamWArgs a;
  a.lr = 1e-3f, a.weight_decay = 0.1f, a.step = 3;
  fast->adamw_step(p1.data(), g.data(), m1.data(), v1.data(), n, a);
  ref->adamw_step(p2.data(), g.data(), m2.data(), v2.data(), n, a);
  EXPECT_LT(rel_err(p1, p2), 1e-6);
  EXPECT_LT(rel_err(m1, m2), 1e-6);
  EXPECT_LT(rel_err(v1, v2), 1e-6);
  EXPECT_NEAR(fast->sum_squares(p.data(), n) / ref->sum_squares(p.data(), n), 1.0, 1e-6);
  auto y1 = p, y2 = p;
  fast->add(y1.data(), g.data(), n);
  ref->add(y2.data(), g.data(), n);
  EXPECT_EQ(y1, y2);
  fast->scale(y1.data(), 0.3f, n);
  ref->scale(y2.data(), 0.3f, n);
  EXPECT_EQ(y1, y2);
  auto gate = randn(n, 11, 3.0f), up = randn(n, 12), dh = randn(n, 13);
  std::vector<float> h1(n), h2(n), dg1(n), dg2(n), du1(n), du2(n);
  fast->swiglu_forward(h1.data(), gate.data(), up.data(), n);
  ref->swiglu_forward(h2.data(), gate.data(), up.data(), n);
  EXPECT_LT(rel_err(h1, h2), 1e-6);
  fast->swiglu_backward(dg1.data(), du1.data(), dh.data(), gate.data(), up.data(), n);
  ref->swiglu_backward(dg2.data(), du2.data(), dh.data(), gate.data(), up.data(), n);
  EXPECT_LT(rel_err(dg1, dg2), 1e-6);
  EXPECT_LT(rel_err(du1, du2), 1e-6);
}

TEST_F(CpuKernels, BiasEmbeddingRmsnorm) {
  const int64_t n = 67, H = 131, V = 29;
  auto y = randn(n * H, 14), b = randn(H, 15);
  auto y1 = y, y2 = y;
  fast->add_bias(y1.data(), b.data(), n, H);
  ref->add_bias(y2.data(), b.data(), n, H);
  EXPECT_EQ(y1, y2);
  auto db1 = b, db2 = b;
  fast->bias_grad(db1.data(), y.data(), n, H);
  ref->bias_grad(db2.data(), y.data(), n, H);
  EXPECT_LT(rel_err(db1, db2), 2e-6);

  auto table = randn(V * H, 16);
  std::vector<int32_t> ids(n);
  std::mt19937 g(17);
  for (auto& i : ids) i = static_cast<int32_t>(g() % V);  // repeats on purpose (scatter-add)
  std::vector<float> e1(n * H), e2(n * H);
  fast->embedding_forward(e1.data(), table.data(), ids.data(), n, H);
  ref->embedding_forward(e2.data(), table.data(), ids.data(), n, H);
  EXPECT_EQ(e1, e2);
  auto dt1 = table, dt2 = table;
  fast->embedding_backward(dt1.data(), y.data(), ids.data(), n, H);
  ref->embedding_backward(dt2.data(), y.data(), ids.data(), n, H);
  EXPECT_LT(rel_err(dt1, dt2), 1e-6);

  auto x = randn(n * H, 18, 2.0f), w = randn(H, 19), dy = randn(n * H, 20);
  std::vector<float> r1(n), r2(n), o1(n * H), o2(n * H);
  fast->rmsnorm_forward(o1.data(), r1.data(), x.data(), w.data(), n, H, 1e-6f);
  ref->rmsnorm_forward(o2.data(), r2.data(), x.data(), w.data(), n, H, 1e-6f);
  EXPECT_LT(rel_err(o1, o2), 2e-6);
  EXPECT_LT(rel_err(r1, r2), 2e-6);
  auto dx1 = randn(n * H, 21), dx2 = dx1, dw1 = randn(H, 22), dw2 = dw1;
  fast->rmsnorm_backward(dx1.data(), dw1.data(), dy.data(), x.data(), w.data(), r2.data(), n, H);
  ref->rmsnorm_backward(dx2.data(), dw2.data(), dy.data(), x.data(), w.data(), r2.data(), n, H);
  EXPECT_LT(rel_err(dx1, dx2), 5e-6);
  EXPECT_LT(rel_err(dw1, dw2), 5e-6);
}

TEST_F(CpuKernels, RopeForwardAndInverse) {
  const int64_t n = 45, heads = 3, d = 16;
  auto x = randn(n * heads * d, 23);
  std::vector<float> inv(d / 2);
  for (int64_t f = 0; f < d / 2; ++f) inv[f] = static_cast<float>(1.0 / std::pow(10000.0, 2.0 * f / d));
  std::vector<int32_t> pos(n);
  for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>((i * 7) % 40);
  auto x1 = x, x2 = x;
  fast->rope(x1.data(), pos.data(), inv.data(), n, heads, d, false);
  ref->rope(x2.data(), pos.data(), inv.data(), n, heads, d, false);
  EXPECT_LT(rel_err(x1, x2), 1e-6);
  fast->rope(x1.data(), pos.data(), inv.data(), n, heads, d, true);  // inverse undoes the rotation
  EXPECT_LT(rel_err(x1, x), 1e-6);
}

TEST_F(CpuKernels, AttentionPackedPaddedGqa) {
  AttnShape s;
  s.B = 2, s.T = 37, s.n_heads = 6, s.n_kv_heads = 2, s.head_dim = 8, s.scale = 1.0f / std::sqrt(8.0f);
  const int64_t N = s.B * s.T;
  std::vector<int32_t> doc(N);
  for (int64_t i = 0; i < s.T; ++i) {
    doc[i] = i < 10 ? 0 : (i < 25 ? 1 : 2);   // row 0: three packed documents
    doc[s.T + i] = i < 30 ? 5 : -1;           // row 1: one document + padding
  }
  doc[20] = 0;  // a non-contiguous reappearance of doc 0 must still be attended (general doc ids)
  auto q = randn(N * s.n_heads * s.head_dim, 24), k = randn(N * s.n_kv_heads * s.head_dim, 25),
       v = randn(N * s.n_kv_heads * s.head_dim, 26), dout = randn(q.size(), 27);
  std::vector<float> o1(q.size()), o2(q.size()), l1(N * s.n_heads), l2(N * s.n_heads);
  fast->attention_forward(o1.data(), l1.data(), q.data(), k.data(), v.data(), doc.data(), s);
  ref->attention_forward(o2.data(), l2.data(), q.data(), k.data(), v.data(), doc.data(), s);
  EXPECT_LT(rel_err(o1, o2), 2e-6);
  EXPECT_LT(rel_err(l1, l2), 2e-6);
  std::vector<float> dq1(q.size()), dq2(q.size()), dk1(k.size()), dk2(k.size()), dv1(v.size()), dv2(v.size());
  fast->attention_backward(dq1.data(), dk1.data(), dv1.data(), dout.data(), q.data(), k.data(), v.data(), o2.data(),
                           l2.data(), doc.data(), s);
  ref->attention_backward(dq2.data(), dk2.data(), dv2.data(), dout.data(), q.data(), k.data(), v.data(), o2.data(),
                          l2.data(), doc.data(), s);
  EXPECT_LT(rel_err(dq1, dq2), 1e-5);
  EXPECT_LT(rel_err(dk1, dk2), 1e-5);
  EXPECT_LT(rel_err(dv1, dv2), 1e-5);
  // padding rows: zero output and no gradient
  for (int64_t e = 0; e < s.n_heads * s.head_dim; ++e) EXPECT_EQ(o1[(s.T + 33) * s.n_heads * s.head_dim + e], 0.0f);
}

TEST_F(CpuKernels, AttentionLastQueriesOnlyMatchesFullAttention) {
  // KV-cache decoding: queries for the last Tq positions only must equal those rows of the full computation.
  AttnShape s;
  s.B = 1, s.T = 29, s.n_heads = 4, s.n_kv_heads = 1, s.head_dim = 8, s.scale = 0.3f;
  std::vector<int32_t> doc(s.T, 0);
  auto q = randn(s.T * 4 * 8, 40), k = randn(s.T * 8, 41), v = randn(s.T * 8, 42);
  std::vector<float> o_full(q.size()), l_full(s.T * 4);
  ref->attention_forward(o_full.data(), l_full.data(), q.data(), k.data(), v.data(), doc.data(), s);
  AttnShape t = s;
  t.Tq = 3;
  for (Backend* be : {fast.get(), ref.get()}) {
    std::vector<float> o(3 * 4 * 8), l(3 * 4);
    be->attention_forward(o.data(), l.data(), q.data() + 26 * 32, k.data(), v.data(), doc.data(), t);
    std::vector<float> want(o_full.begin() + 26 * 32, o_full.end());
    EXPECT_LT(rel_err(o, want), 2e-6) << be->name();
  }
}

TEST_F(CpuKernels, AttentionGradientMatchesFiniteDifferences) {
  // The reference backward itself checked against central differences of the reference forward (in fp32, so a
  // loose 2e-2 relative bound on a few coordinates; the exact checks are the torch parity tests in tests/model).
  AttnShape s;
  s.B = 1, s.T = 6, s.n_heads = 2, s.n_kv_heads = 1, s.head_dim = 4, s.scale = 0.5f;
  std::vector<int32_t> doc = {0, 0, 0, 1, 1, -1};
  auto q = randn(6 * 2 * 4, 28), k = randn(6 * 4, 29), v = randn(6 * 4, 30), w = randn(q.size(), 31);
  std::vector<float> o(q.size()), l(12);
  auto loss = [&](const std::vector<float>& qq, const std::vector<float>& kk) {
    ref->attention_forward(o.data(), l.data(), qq.data(), kk.data(), v.data(), doc.data(), s);
    double acc = 0;
    for (size_t i = 0; i < o.size(); ++i) acc += static_cast<double>(o[i]) * w[i];
    return acc;
  };
  loss(q, k);
  auto o0 = o, l0 = l;
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  ref->attention_backward(dq.data(), dk.data(), dv.data(), w.data(), q.data(), k.data(), v.data(), o0.data(),
                          l0.data(), doc.data(), s);
  const float h = 1e-2f;
  for (size_t i : {0u, 9u, 17u, 30u}) {
    auto qp = q, qm = q;
    qp[i] += h, qm[i] -= h;
    EXPECT_NEAR((loss(qp, k) - loss(qm, k)) / (2 * h), dq[i], 2e-2 * (1 + std::fabs(dq[i]))) << "dq " << i;
    auto kp = k, km = k;
    kp[i % k.size()] += h, km[i % k.size()] -= h;
    EXPECT_NEAR((loss(q, kp) - loss(q, km)) / (2 * h), dk[i % k.size()], 2e-2 * (1 + std::fabs(dk[i % k.size()])));
  }
}

TEST(FastMath, ExpWithinFewUlpOverTheUsedRange) {
  double worst = 0;
  for (float x = -100.0f; x < 88.0f; x += 0.0137f) {
    const double want = std::exp(static_cast<double>(x));
    const double got = cpu::fast_exp(x);
    if (want < 1e-37) {
      EXPECT_LT(got, 1e-37);  // underflow region: 0 or a denormal, never garbage
      continue;
    }
    worst = std::max(worst, std::fabs(got - want) / want);
  }
  EXPECT_LT(worst, 3e-7);  // ~2.5 ulp of fp32
}

TEST_F(CpuKernels, SoftmaxCrossEntropy) {
  const int64_t rows = 9, V = 5003;
  auto x = randn(rows * V, 32, 3.0f);
  std::vector<int32_t> t = {4, 0, -100, 5002, 17, 99, -1, 3000, 1};
  x[5 * V + 99] = 50.0f;  // row 5: its target is the argmax
  auto x1 = x, x2 = x;
  std::vector<float> l1(rows), l2(rows);
  std::vector<uint8_t> g1(rows), g2(rows);
  fast->softmax_cross_entropy(x1.data(), l1.data(), g1.data(), t.data(), rows, V, 0.25f);
  ref->softmax_cross_entropy(x2.data(), l2.data(), g2.data(), t.data(), rows, V, 0.25f);
  EXPECT_LT(rel_err(l1, l2), 1e-6);
  EXPECT_EQ(g1, g2);
  EXPECT_EQ(g1[5], 1);
  EXPECT_LT(rel_err(x1, x2), 1e-6);
  for (int64_t j = 0; j < V; ++j) EXPECT_EQ(x1[2 * V + j], 0.0f);
}

}  // namespace
}  // namespace sft::backend
