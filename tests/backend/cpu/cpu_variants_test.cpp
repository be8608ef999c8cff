// Every CPU kernel variant compiled into this binary that this CPU can run (cpu_variant.h: generic / avx2 / avx512)
// against the scalar reference on random, non-zero inputs — the run-time dispatch must never change results beyond
// fp32 reassociation. (The kernel conformance suite, ../kernel_conformance.cpp, covers make_cpu_backend(), i.e. the best
// variant, in more depth; ctest also reruns it with SFT_CPU_KERNELS=generic.) Bounds as in fast_conformance_test.cpp: relative max-abs error of a few 1e-6 for
// fp32 sums of O(100-1000) terms computed in a different order than the double-accumulating reference.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_dispatch.h"

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

TEST(CpuVariants, DispatchListsGenericLastAndHonoursTheEnvironment) {
  const std::vector<std::string> v = cpu::cpu_kernel_variants();
  ASSERT_FALSE(v.empty());
  EXPECT_EQ(v.back(), "generic");
  EXPECT_NO_THROW(cpu::make_cpu_backend_variant("generic"));
  EXPECT_THROW(cpu::make_cpu_backend_variant("no-such-isa"), std::exception);
}

TEST(CpuVariants, EveryVariantMatchesTheReference) {
  auto ref = make_cpu_reference_backend();
  for (const std::string& name : cpu::cpu_kernel_variants()) {
    SCOPED_TRACE("variant " + name);
    auto fast = cpu::make_cpu_backend_variant(name);
    // elementwise + optimizer (n above the threading grain, not a multiple of any vector width)
    const int64_t n = 40013;
    auto p = randn(n, 1), g = randn(n, 2, 0.1f), m = randn(n, 3, 0.01f), v0 = randn(n, 4, 0.01f);
    for (auto& x : v0) x = x * x;
    auto p1 = p, p2 = p, m1 = m, m2 = m, v1 = v0, v2 = v0;
    AdamWArgs a;
    a.lr = 1e-3f, a.weight_decay = 0.1f, a.step = 5;
    fast->adamw_step(p1.data(), g.data(), m1.data(), v1.data(), n, a);
    ref->adamw_step(p2.data(), g.data(), m2.data(), v2.data(), n, a);
    EXPECT_LT(rel_err(p1, p2), 1e-6);
    EXPECT_LT(rel_err(v1, v2), 1e-6);
    auto gate = randn(n, 5, 3.0f), up = randn(n, 6), dh = randn(n, 7);
    std::vector<float> h1(n), h2(n), dg1(n), dg2(n), du1(n), du2(n);
    fast->swiglu_forward(h1.data(), gate.data(), up.data(), n);
    ref->swiglu_forward(h2.data(), gate.data(), up.data(), n);
    EXPECT_LT(rel_err(h1, h2), 1e-6);
    fast->swiglu_backward(dg1.data(), du1.data(), dh.data(), gate.data(), up.data(), n);
    ref->swiglu_backward(dg2.data(), du2.data(), dh.data(), gate.data(), up.data(), n);
    EXPECT_LT(rel_err(dg1, dg2), 1e-6);
    EXPECT_LT(rel_err(du1, du2), 1e-6);
    std::vector<float> r1(n), r2(n);
    fast->round_to_bf16(r1.data(), p.data(), n);
    ref->round_to_bf16(r2.data(), p.data(), n);
    EXPECT_EQ(r1, r2);
    // rmsnorm forward/backward
    const int64_t rows = 67, H = 203;
    auto x = randn(rows * H, 8, 2.0f), w = randn(H, 9), dy = randn(rows * H, 10);
    std::vector<float> s1(rows), s2(rows), o1(rows * H), o2(rows * H);
    fast->rmsnorm_forward(o1.data(), s1.data(), x.data(), w.data(), rows, H, 1e-6f, 0.0f);
    ref->rmsnorm_forward(o2.data(), s2.data(), x.data(), w.data(), rows, H, 1e-6f, 0.0f);
    EXPECT_LT(rel_err(o1, o2), 2e-6);
    auto dx1 = randn(rows * H, 11), dx2 = dx1, dw1 = randn(H, 12), dw2 = dw1;
    fast->rmsnorm_backward(dx1.data(), dw1.data(), dy.data(), x.data(), w.data(), s2.data(), rows, H, 0.0f);
    ref->rmsnorm_backward(dx2.data(), dw2.data(), dy.data(), x.data(), w.data(), s2.data(), rows, H, 0.0f);
    EXPECT_LT(rel_err(dx1, dx2), 5e-6);
    EXPECT_LT(rel_err(dw1, dw2), 5e-6);
    // softmax cross-entropy with gradient
    const int64_t cr = 5, V = 3001;
    auto lg = randn(cr * V, 13, 3.0f);
    std::vector<int32_t> t = {4, -100, 3000, 17, 0};
    auto lg1 = lg, lg2 = lg;
    std::vector<float> l1(cr), l2(cr);
    fast->softmax_cross_entropy(lg1.data(), l1.data(), nullptr, t.data(), cr, V, 0.5f, 0.0f);
    ref->softmax_cross_entropy(lg2.data(), l2.data(), nullptr, t.data(), cr, V, 0.5f, 0.0f);
    EXPECT_LT(rel_err(l1, l2), 1e-6);
    EXPECT_LT(rel_err(lg1, lg2), 1e-6);
    // a long vocabulary with a rising trend: the running max grows block after block (rescaled partial sums), and
    // the gradient path that keeps exp(x - block max) in place is compared with and without the argmax flag
    const int64_t V2 = 20011;
    auto lr = randn(2 * V2, 18, 2.0f);
    for (int64_t j = 0; j < V2; ++j) lr[j] += 4e-4f * static_cast<float>(j), lr[V2 + j] -= 4e-4f * static_cast<float>(j);
    std::vector<int32_t> t2 = {123, 20000};
    for (bool with_greedy : {false, true}) {
      auto a1 = lr, a2 = lr;
      std::vector<float> q1(2), q2(2);
      std::vector<uint8_t> gr1(2), gr2(2);
      fast->softmax_cross_entropy(a1.data(), q1.data(), with_greedy ? gr1.data() : nullptr, t2.data(), 2, V2, 0.125f, 0.0f);
      ref->softmax_cross_entropy(a2.data(), q2.data(), with_greedy ? gr2.data() : nullptr, t2.data(), 2, V2, 0.125f, 0.0f);
      EXPECT_LT(rel_err(q1, q2), 1e-6) << "greedy " << with_greedy;
      EXPECT_LT(rel_err(a1, a2), 2e-6) << "greedy " << with_greedy;
      EXPECT_EQ(gr1, gr2);
    }
    // attention forward + backward, GQA, two packed documents
    AttnShape s;
    s.B = 2, s.T = 23, s.n_heads = 4, s.n_kv_heads = 2, s.head_dim = 16, s.scale = 0.25f;
    const int64_t N = s.B * s.T;
    std::vector<int32_t> doc(N);
    for (int64_t i = 0; i < N; ++i) doc[i] = static_cast<int32_t>(i < 9 ? 0 : (i < s.T ? 1 : 2));
    auto q = randn(N * 4 * 16, 14), k = randn(N * 2 * 16, 15), vv = randn(N * 2 * 16, 16), dout = randn(q.size(), 17);
    std::vector<float> ao1(q.size()), ao2(q.size()), ls1(N * 4), ls2(N * 4);
    fast->attention_forward(ao1.data(), ls1.data(), q.data(), k.data(), vv.data(), doc.data(), s);
    ref->attention_forward(ao2.data(), ls2.data(), q.data(), k.data(), vv.data(), doc.data(), s);
    EXPECT_LT(rel_err(ao1, ao2), 2e-6);
    std::vector<float> dq1(q.size()), dq2(q.size()), dk1(k.size()), dk2(k.size()), dv1(k.size()), dv2(k.size());
    fast->attention_backward(dq1.data(), dk1.data(), dv1.data(), dout.data(), q.data(), k.data(), vv.data(),
                             ao2.data(), ls2.data(), doc.data(), s);
    ref->attention_backward(dq2.data(), dk2.data(), dv2.data(), dout.data(), q.data(), k.data(), vv.data(),
                            ao2.data(), ls2.data(), doc.data(), s);
    EXPECT_LT(rel_err(dq1, dq2), 1e-5);
    EXPECT_LT(rel_err(dk1, dk2), 1e-5);
    EXPECT_LT(rel_err(dv1, dv2), 1e-5);
  }
}

// The Gemma 2 kernels and options on every variant: GeGLU (vector tanh), the (1 + w) norm gain, the soft-capped
// cross-entropy and attention, the sliding window. Bounds as above (1e-6 elementwise, 2e-6 / 1e-5 attention).
TEST(CpuVariants, GemmaKernelsMatchTheReference) {
  auto ref = make_cpu_reference_backend();
  for (const std::string& name : cpu::cpu_kernel_variants()) {
    SCOPED_TRACE("variant " + name);
    auto fast = cpu::make_cpu_backend_variant(name);
    const int64_t n = 40013;
    auto gate = randn(n, 30, 3.0f), up = randn(n, 31), dh = randn(n, 32);
    std::vector<float> h1(n), h2(n), dg1(n), dg2(n), du1(n), du2(n);
    fast->geglu_forward(h1.data(), gate.data(), up.data(), n);
    ref->geglu_forward(h2.data(), gate.data(), up.data(), n);
    EXPECT_LT(rel_err(h1, h2), 1e-6);
    fast->geglu_backward(dg1.data(), du1.data(), dh.data(), gate.data(), up.data(), n);
    ref->geglu_backward(dg2.data(), du2.data(), dh.data(), gate.data(), up.data(), n);
    EXPECT_LT(rel_err(dg1, dg2), 1e-6);
    EXPECT_LT(rel_err(du1, du2), 1e-6);
    const int64_t rows = 37, H = 203;
    auto x = randn(rows * H, 33, 2.0f), w = randn(H, 34, 0.3f), dy = randn(rows * H, 35);
    std::vector<float> s1(rows), s2(rows), o1(rows * H), o2(rows * H), dx1(rows * H), dx2(rows * H), dw1(H), dw2(H);
    fast->rmsnorm_forward(o1.data(), s1.data(), x.data(), w.data(), rows, H, 1e-6f, 1.0f);
    ref->rmsnorm_forward(o2.data(), s2.data(), x.data(), w.data(), rows, H, 1e-6f, 1.0f);
    EXPECT_LT(rel_err(o1, o2), 2e-6);
    fast->rmsnorm_backward(dx1.data(), dw1.data(), dy.data(), x.data(), w.data(), s2.data(), rows, H, 1.0f);
    ref->rmsnorm_backward(dx2.data(), dw2.data(), dy.data(), x.data(), w.data(), s2.data(), rows, H, 1.0f);
    EXPECT_LT(rel_err(dx1, dx2), 5e-6);
    EXPECT_LT(rel_err(dw1, dw2), 5e-6);
    const int64_t cr = 4, V = 3001;
    auto lg = randn(cr * V, 36, 20.0f);
    std::vector<int32_t> t = {4, -100, 3000, 17};
    auto lg1 = lg, lg2 = lg;
    std::vector<float> l1(cr), l2(cr);
    fast->softmax_cross_entropy(lg1.data(), l1.data(), nullptr, t.data(), cr, V, 0.5f, 30.0f);
    ref->softmax_cross_entropy(lg2.data(), l2.data(), nullptr, t.data(), cr, V, 0.5f, 30.0f);
    EXPECT_LT(rel_err(l1, l2), 1e-6);
    EXPECT_LT(rel_err(lg1, lg2), 1e-6);
    AttnShape s;
    s.B = 2, s.T = 41, s.n_heads = 4, s.n_kv_heads = 2, s.head_dim = 16, s.scale = 0.25f, s.softcap = 2.0f;
    s.window = 6;
    const int64_t N = s.B * s.T;
    std::vector<int32_t> doc(N);
    for (int64_t i = 0; i < N; ++i) doc[i] = static_cast<int32_t>(i < 17 ? 0 : (i < s.T ? 1 : 2));
    auto q = randn(N * 4 * 16, 37, 2.0f), k = randn(N * 2 * 16, 38, 2.0f), vv = randn(N * 2 * 16, 39);
    auto dout = randn(q.size(), 40);
    std::vector<float> ao1(q.size()), ao2(q.size()), ls1(N * 4), ls2(N * 4);
    fast->attention_forward(ao1.data(), ls1.data(), q.data(), k.data(), vv.data(), doc.data(), s);
    ref->attention_forward(ao2.data(), ls2.data(), q.data(), k.data(), vv.data(), doc.data(), s);
    EXPECT_LT(rel_err(ao1, ao2), 2e-6);
    EXPECT_LT(rel_err(ls1, ls2), 2e-6);
    std::vector<float> dq1(q.size()), dq2(q.size()), dk1(k.size()), dk2(k.size()), dv1(k.size()), dv2(k.size());
    fast->attention_backward(dq1.data(), dk1.data(), dv1.data(), dout.data(), q.data(), k.data(), vv.data(),
                             ao2.data(), ls2.data(), doc.data(), s);
    ref->attention_backward(dq2.data(), dk2.data(), dv2.data(), dout.data(), q.data(), k.data(), vv.data(),
                            ao2.data(), ls2.data(), doc.data(), s);
    EXPECT_LT(rel_err(dq1, dq2), 1e-5);
    EXPECT_LT(rel_err(dk1, dk2), 1e-5);
    EXPECT_LT(rel_err(dv1, dv2), 1e-5);
  }
}

}  // namespace
}  // namespace sft::backend
