// The kernel conformance checks (see kernel_conformance.h): written once against backend::Backend&, compared with the
// CPU reference backend on random non-zero inputs, with the tolerances of the instantiating backend.
#include "kernel_conformance.h"

#include <array>
#include <cmath>

#include "util/bf16.h"
#include "util/error.h"

namespace sft::backend::conformance {

double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return INFINITY;
  double mx = 0, mref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::fabs(double(got[i]) - double(want[i]));
    if (!(e <= mx)) mx = e;  // NaN propagates
    mref = std::max(mref, std::fabs(double(want[i])));
  }
  return mref == 0 ? mx : mx / mref;
}

void KernelConformance::SetUp() {
  try {
    be_ = GetParam().make();
  } catch (const Error& e) {
    // Only a device that may be absent skips (CUDA on a machine without a GPU); a CPU factory that throws is a bug.
    if (GetParam().skip_when_unusable) GTEST_SKIP() << GetParam().name << " backend not usable here: " << e.what();
    FAIL() << GetParam().name << " backend could not be created: " << e.what();
  }
  ASSERT_NE(be_, nullptr) << GetParam().name << " factory returned no backend";
  ref_ = make_cpu_reference_backend();
}

namespace {

using VV = std::vector<std::vector<float>>;

TEST_P(KernelConformance, MemoryRoundTripCopyAndZeroInit) {
  Buf<float> a(*be_, 1000);
  for (float x : a.host()) ASSERT_EQ(x, 0.0f);  // alloc() zero-initialises
  auto v = randn(1000, 1);
  a.set(v);
  Buf<float> b(*be_, 1000);
  be_->copy(b, a, 1000 * 4);
  EXPECT_EQ(b.host(), v);
  be_->zero(b, 500 * 4);
  auto hb = b.host();
  EXPECT_EQ(hb[499], 0.0f);
  EXPECT_EQ(hb[500], v[500]);
}

TEST_P(KernelConformance, AdamWSumSquaresScaleAdd) {
  // Non-zero moments at a later step (bias correction of step 3..5) and three chained steps.
  const int64_t n = 100003;
  auto p0 = randn(n, 2), g0 = randn(n, 3, 0.1f), m0 = randn(n, 9, 0.01f), v0 = randn(n, 10, 0.01f);
  for (auto& x : v0) x = x * x;
  auto [g, r] = both([&](Backend& be) {
    Buf<float> p(be, p0), gr(be, g0), m(be, m0), v(be, v0), x(be, p0);
    AdamWArgs a;
    a.lr = 1e-3f, a.weight_decay = 0.1f;
    for (int s = 3; s <= 5; ++s) {
      a.step = s;
      be.adamw_step(p, gr, m, v, n, a);
    }
    const double ss = be.sum_squares(x, n);
    be.scale(x, 0.3f, n);
    be.add(x, gr, n);
    return VV{p.host(), m.host(), v.host(), x.host(), {float(ss)}};
  });
  EXPECT_LE(rel_err(g[0], r[0]), tol().elementwise) << "param";
  EXPECT_LE(rel_err(g[1], r[1]), tol().elementwise) << "m";
  EXPECT_LE(rel_err(g[2], r[2]), tol().elementwise) << "v";
  EXPECT_LE(rel_err(g[3], r[3]), tol().copy_like) << "scale+add";
  EXPECT_LE(rel_err(g[4], r[4]), tol().reduction) << "sum_squares";
}

TEST_P(KernelConformance, Bf16ConversionsBitExact) {
  const int64_t n = 65536 + 7;
  auto src = randn(n, 4, 3.0f);
  src[0] = 0.0f, src[1] = -0.0f, src[2] = 1e30f, src[3] = -1e-30f, src[4] = INFINITY;
  src[5] = 1.00390625f;  // exactly halfway between 1 and 1+2^-7: rounds to even (1.0)
  std::vector<uint16_t> want(n);
  for (int64_t i = 0; i < n; ++i) want[i] = float_to_bf16(src[i]);
  ASSERT_EQ(want[5], 0x3f80);
  Buf<float> s(*be_, src);
  Buf<uint16_t> d(*be_, n);
  be_->f32_to_bf16(d, s, n);
  EXPECT_EQ(d.host(), want);
  Buf<float> back(*be_, n);
  be_->bf16_to_f32(back, d, n);
  auto b = back.host();
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(b[i], bf16_to_float(want[i])) << i;
  if (!be_->fast_bf16_gemm()) {  // round_to_bf16 is only required of backends that emulate bf16 gemm
    Buf<float> rounded(*be_, n);
    be_->round_to_bf16(rounded, s, n);
    EXPECT_EQ(rounded.host(), b);
    be_->round_to_bf16(s, s, n);  // in place (dst == src) is allowed
    EXPECT_EQ(s.host(), b);
  }
}

struct GemmCase {
  int64_t M, N, K, pad_a, pad_b, pad_c;
};

TEST_P(KernelConformance, GemmAllTransposesAlphaBetaF32AndBf16) {
  for (DType dt : {DType::F32, DType::BF16})
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (float beta : {0.0f, 1.0f})
          for (const GemmCase& c : {GemmCase{37, 53, 71, 3, 5, 2}, GemmCase{37, 45, 29, 0, 0, 0},
                                    GemmCase{64, 96, 128, 8, 8, 8}, GemmCase{33, 65, 130, 0, 0, 0}}) {
            SCOPED_TRACE(testing::Message() << "ta=" << ta << " tb=" << tb << " M=" << c.M << " N=" << c.N
                                            << " K=" << c.K << " beta=" << beta << " bf16=" << (dt == DType::BF16));
            const int64_t lda = (ta ? c.M : c.K) + c.pad_a, ldb = (tb ? c.K : c.N) + c.pad_b, ldc = c.N + c.pad_c;
            const int64_t na = (ta ? c.K : c.M) * lda, nb = (tb ? c.N : c.K) * ldb, nc = c.M * ldc;
            auto a32 = randn(na, 10), b32 = randn(nb, 11), c0 = randn(nc, 12);
            std::vector<uint16_t> a16(na), b16(nb);
            for (int64_t i = 0; i < na; ++i) a16[i] = float_to_bf16(a32[i]);
            for (int64_t i = 0; i < nb; ++i) b16[i] = float_to_bf16(b32[i]);
            // beta = 0 must overwrite: C starts as NaN then.
            if (beta == 0) std::fill(c0.begin(), c0.end(), NAN);
            auto [g, r] = both([&](Backend& be) {
              Buf<float> A(be, a32), B(be, b32), C(be, c0);
              Buf<uint16_t> A16(be, a16), B16(be, b16);
              const void* pa = dt == DType::BF16 ? static_cast<const void*>(A16.get()) : A.get();
              const void* pb = dt == DType::BF16 ? static_cast<const void*>(B16.get()) : B.get();
              be.gemm(ta, tb, c.M, c.N, c.K, 0.75f, pa, lda, pb, ldb, beta, C, ldc, dt);
              auto h = C.host();
              std::vector<float> out;  // the M x N result only (the padding columns of C are not output)
              for (int64_t i = 0; i < c.M; ++i) out.insert(out.end(), h.begin() + i * ldc, h.begin() + i * ldc + c.N);
              return VV{out};
            });
            EXPECT_LE(rel_err(g[0], r[0]), dt == DType::BF16 ? tol().gemm_bf16 : tol().gemm_f32);
          }
}

TEST_P(KernelConformance, BiasAndEmbedding) {
  for (auto [rows, cols, V] : std::vector<std::array<int64_t, 3>>{{67, 131, 29}, {300, 67, 50}}) {
    SCOPED_TRACE(testing::Message() << "rows=" << rows << " cols=" << cols << " V=" << V);
    auto y0 = randn(rows * cols, 30), bias = randn(cols, 31), table = randn(V * cols, 32);
    auto ids = randint(rows, 0, int32_t(V), 33);
    ids[1] = ids[0];  // repeated ids accumulate (scatter-add)
    auto [g, r] = both([&](Backend& be) {
      Buf<float> y(be, y0), b(be, bias), db(be, bias), t(be, table), dt(be, table), e(be, rows * cols);
      Buf<int32_t> id(be, ids);
      be.add_bias(y, b, rows, cols);
      be.bias_grad(db, y, rows, cols);  // (+=) onto the non-zero bias values
      be.embedding_forward(e, t, id, rows, cols);
      be.embedding_backward(dt, y, id, rows, cols);
      return VV{y.host(), db.host(), e.host(), dt.host()};
    });
    EXPECT_EQ(g[0], r[0]) << "add_bias (one fp32 add per element)";
    EXPECT_LE(rel_err(g[1], r[1]), tol().reduction) << "bias_grad";
    EXPECT_EQ(g[2], r[2]) << "embedding_forward (a copy)";
    EXPECT_LE(rel_err(g[3], r[3]), tol().elementwise) << "embedding_backward";
  }
}

TEST_P(KernelConformance, RmsNormForwardBackward) {
  // w_offset 0 (Llama, Qwen: gain w) and 1 (Gemma: gain 1 + w)
  for (auto [n, H, off] : std::vector<std::array<int64_t, 3>>{
           {67, 131, 0}, {133, 64, 0}, {133, 896, 0}, {133, 1000, 0}, {67, 131, 1}, {133, 1000, 1}}) {
    SCOPED_TRACE(testing::Message() << "n=" << n << " H=" << H << " w_offset=" << off);
    auto x0 = randn(n * H, 40, 2.0f), w0 = randn(H, 41), dy0 = randn(n * H, 42), dx0 = randn(n * H, 43);
    auto dw0 = randn(H, 44);
    const float w_offset = float(off);
    auto [g, r] = both([&](Backend& be) {
      Buf<float> x(be, x0), w(be, w0), y(be, n * H), rstd(be, n), dy(be, dy0), dx(be, dx0), dw(be, dw0);
      be.rmsnorm_forward(y, rstd, x, w, n, H, 1e-6f, w_offset);
      be.rmsnorm_backward(dx, dw, dy, x, w, rstd, n, H, w_offset);  // (+=) onto non-zero dx, dw
      return VV{y.host(), rstd.host(), dx.host(), dw.host()};
    });
    EXPECT_LE(rel_err(g[0], r[0]), tol().reduction) << "y";
    EXPECT_LE(rel_err(g[1], r[1]), tol().reduction) << "rstd";
    EXPECT_LE(rel_err(g[2], r[2]), tol().norm_backward) << "dx";
    EXPECT_LE(rel_err(g[3], r[3]), tol().norm_backward) << "dw";
  }
}

TEST_P(KernelConformance, RopeForwardAndInverse) {
  // d 16 / theta 1e4 with small positions; d 64 / theta 1e6 (Qwen) with positions up to 4096; many tokens sharing
  // few positions (a batch of rows: the fast backend's per-position cos/sin table, used when max_pos < n).
  for (auto [n, heads, d, theta, max_pos] : std::vector<std::array<double, 5>>{
           {45, 3, 16, 1e4, 40}, {70, 3, 64, 1e6, 4096}, {256, 4, 64, 1e6, 63}}) {
    SCOPED_TRACE(testing::Message() << "d=" << d << " theta=" << theta);
    const auto N = int64_t(n), Hh = int64_t(heads), D = int64_t(d);
    std::vector<float> inv(D / 2);
    for (int64_t f = 0; f < D / 2; ++f) inv[f] = float(1.0 / std::pow(theta, double(2 * f) / d));
    auto pos = randint(N, 0, int32_t(max_pos), 50);
    pos[0] = 0;
    auto x0 = randn(N * Hh * D, 51);
    auto [g, r] = both([&](Backend& be) {
      Buf<float> x(be, x0), invf(be, inv), y(be, x0);
      Buf<int32_t> p(be, pos);
      be.rope(x, p, invf, N, Hh, D, false);
      auto fwd = x.host();
      be.rope(x, p, invf, N, Hh, D, true);  // the inverse undoes the forward rotation
      auto undone = x.host();
      be.rope(y, p, invf, N, Hh, D, true);
      return VV{fwd, y.host(), undone};
    });
    EXPECT_LE(rel_err(g[0], r[0]), tol().elementwise) << "forward";
    EXPECT_LE(rel_err(g[1], r[1]), tol().elementwise) << "inverse";
    EXPECT_LE(rel_err(g[2], x0), tol().elementwise) << "inverse(forward(x)) == x";
  }
}

TEST_P(KernelConformance, SwiGluForwardBackward) {
  for (int64_t n : {12345, 40000}) {
    auto ga = randn(n, 60, 3.0f), up = randn(n, 61), dh = randn(n, 62);
    auto [g, r] = both([&](Backend& be) {
      Buf<float> G(be, ga), U(be, up), D(be, dh), h(be, n), dg(be, n), du(be, n);
      be.swiglu_forward(h, G, U, n);
      be.swiglu_backward(dg, du, D, G, U, n);
      return VV{h.host(), dg.host(), du.host()};
    });
    const char* names[] = {"h", "dgate", "dup"};
    for (int i = 0; i < 3; ++i) EXPECT_LE(rel_err(g[i], r[i]), tol().elementwise) << names[i] << " n=" << n;
    // In place (dgate over gate, dup over up, as the decoder calls it): the same bits as into separate buffers.
    auto [gi, ri] = both([&](Backend& be) {
      Buf<float> G(be, ga), U(be, up), D(be, dh);
      be.swiglu_backward(G, U, D, G, U, n);
      return VV{G.host(), U.host()};
    });
    EXPECT_EQ(gi[0], g[1]) << "dgate in place, n=" << n;
    EXPECT_EQ(gi[1], g[2]) << "dup in place, n=" << n;
    EXPECT_EQ(ri[0], r[1]) << "reference dgate in place, n=" << n;
    EXPECT_EQ(ri[1], r[2]) << "reference dup in place, n=" << n;
  }
}

TEST_P(KernelConformance, GegluForwardBackward) {
  // gate spread 3: both branches of the tanh (|x| below and above 0.625) and its saturation are exercised
  for (int64_t n : {12345, 40000}) {
    auto ga = randn(n, 160, 3.0f), up = randn(n, 161), dh = randn(n, 162);
    auto [g, r] = both([&](Backend& be) {
      Buf<float> G(be, ga), U(be, up), D(be, dh), h(be, n), dg(be, n), du(be, n);
      be.geglu_forward(h, G, U, n);
      be.geglu_backward(dg, du, D, G, U, n);
      return VV{h.host(), dg.host(), du.host()};
    });
    const char* names[] = {"h", "dgate", "dup"};
    for (int i = 0; i < 3; ++i) EXPECT_LE(rel_err(g[i], r[i]), tol().elementwise) << names[i] << " n=" << n;
    auto [gi, ri] = both([&](Backend& be) {  // in place, as the decoder calls it
      Buf<float> G(be, ga), U(be, up), D(be, dh);
      be.geglu_backward(G, U, D, G, U, n);
      return VV{G.host(), U.host()};
    });
    EXPECT_EQ(gi[0], g[1]) << "dgate in place, n=" << n;
    EXPECT_EQ(gi[1], g[2]) << "dup in place, n=" << n;
    EXPECT_EQ(ri[0], r[1]) << "reference dgate in place, n=" << n;
    EXPECT_EQ(ri[1], r[2]) << "reference dup in place, n=" << n;
  }
}

TEST_P(KernelConformance, LogitSoftcap) {
  const int64_t n = 70001;
  auto x0 = randn(n, 170, 20.0f);  // logits of both signs, many beyond the cap (tanh saturates) and many below
  x0[0] = 0.0f, x0[1] = 1e-4f, x0[2] = -300.0f;
  auto [g, r] = both([&](Backend& be) {
    Buf<float> x(be, x0);
    be.logit_softcap(x, n, 30.0f);
    return VV{x.host()};
  });
  EXPECT_LE(rel_err(g[0], r[0]), tol().elementwise);
  for (int64_t i = 0; i < n; ++i) ASSERT_LE(std::fabs(g[0][i]), 30.0f) << i;
}

TEST_P(KernelConformance, DropoutSameMaskOnEveryBackendAndInPlace) {
  const int64_t n = 50001;
  const float p = 0.1f;
  auto x0 = randn(n, 65);
  auto [g, r] = both([&](Backend& be) {
    Buf<float> x(be, x0), y(be, n);
    be.dropout(y, x, n, p, 1234);
    be.dropout(x, x, n, p, 1234);  // y may equal x
    return VV{y.host(), x.host()};
  });
  EXPECT_LE(rel_err(g[0], r[0]), tol().copy_like) << "out of place";
  EXPECT_EQ(g[1], g[0]) << "in place == out of place";
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool keep = dropout_keep(1234, uint64_t(i), p);
    kept += keep;
    if (!keep) ASSERT_EQ(g[0][i], 0.0f) << i;
  }
  EXPECT_NEAR(double(kept) / n, 1.0 - p, 0.01);  // ~5 standard deviations of the binomial keep count
}

TEST_P(KernelConformance, SoftmaxCrossEntropyLossGradGreedyTies) {
  for (int64_t V : {1000, 5003, 151936}) {
    SCOPED_TRACE(V);
    const int64_t rows = 10;
    auto x0 = randn(rows * V, 70, 3.0f);
    auto t = randint(rows, 0, int32_t(V), 71);
    t[0] = 0, t[1] = int32_t(V - 1), t[2] = -100, t[5] = -1;  // edge targets and two ignored rows
    x0[3 * V + t[3]] = 100.0f;                                  // row 3: the target is the unique argmax
    t[4] = 17, x0[4 * V + 17] = 60.0f, x0[4 * V + 900] = 60.0f;  // row 4: tie, target is the lower index: greedy
    t[6] = 900, x0[6 * V + 17] = 60.0f, x0[6 * V + 900] = 60.0f;  // row 6: tie, target is the higher index: not
    for (float gs : {0.0f, 0.25f}) {
      SCOPED_TRACE(gs);
      auto [g, r] = both([&](Backend& be) {
        Buf<float> x(be, x0), loss(be, rows);
        Buf<uint8_t> greedy(be, rows);
        Buf<int32_t> tg(be, t);
        be.softmax_cross_entropy(x, loss, greedy, tg, rows, V, gs, 0.0f);
        auto gr = greedy.host();
        return VV{x.host(), loss.host(), std::vector<float>(gr.begin(), gr.end())};
      });
      EXPECT_LE(rel_err(g[1], r[1]), tol().elementwise) << "loss";
      EXPECT_EQ(g[2], r[2]) << "greedy";
      EXPECT_EQ(g[2][3], 1.0f);
      EXPECT_EQ(g[2][4], 1.0f) << "tie resolved to the lowest index (torch.argmax)";
      EXPECT_EQ(g[2][6], 0.0f) << "tie resolved to the lowest index (torch.argmax)";
      EXPECT_EQ(g[1][2], 0.0f) << "ignored row";
      if (gs == 0) {
        EXPECT_EQ(g[0], x0) << "grad_scale 0 leaves the logits untouched";
      } else {
        EXPECT_LE(rel_err(g[0], r[0]), tol().elementwise) << "grad";
        for (int64_t j = 0; j < V; ++j) ASSERT_EQ(g[0][2 * V + j], 0.0f) << "ignored row gets grad 0";
      }
    }
  }
}

TEST_P(KernelConformance, SoftmaxCrossEntropySoftCapped) {
  // Gemma 2's final soft-cap: loss, greedy flag and the gradient with respect to the uncapped logits; the logits of
  // rows with a target hold the capped values when no gradient is asked for. Logits spread 15 around a cap of 10:
  // most of them bend, many saturate (ties of capped values at the top then resolve to the lowest index).
  for (int64_t V : {1000, 5003, 151936}) {
    SCOPED_TRACE(V);
    const int64_t rows = 8;
    const float cap = 10.0f;
    auto x0 = randn(rows * V, 175, 15.0f);
    auto t = randint(rows, 0, int32_t(V), 176);
    t[0] = 0, t[1] = int32_t(V - 1), t[2] = -100;
    t[3] = 11, x0[3 * V + 11] = 200.0f;  // capped to ~10: the argmax unless another logit saturates as far
    for (int withg : {0, 1})
      for (float gs : {0.0f, 0.25f}) {
        SCOPED_TRACE(testing::Message() << "gs=" << gs << " greedy=" << withg);
        auto [g, r] = both([&](Backend& be) {
          Buf<float> x(be, x0), loss(be, rows);
          Buf<uint8_t> greedy(be, rows);
          Buf<int32_t> tg(be, t);
          be.softmax_cross_entropy(x, loss, withg ? greedy.get() : nullptr, tg, rows, V, gs, cap);
          auto gr = greedy.host();
          return VV{x.host(), loss.host(), std::vector<float>(gr.begin(), gr.end())};
        });
        EXPECT_LE(rel_err(g[1], r[1]), tol().elementwise) << "loss";
        if (withg) {
          EXPECT_EQ(g[2], r[2]) << "greedy";
        }
        EXPECT_EQ(g[1][2], 0.0f) << "ignored row";
        EXPECT_LE(rel_err(g[0], r[0]), tol().elementwise) << (gs == 0 ? "capped logits" : "grad");
        for (int64_t j = 0; j < V; ++j) {
          const float want = gs == 0 ? x0[2 * V + j] : 0.0f;  // an ignored row: left as it was, or grad 0
          ASSERT_EQ(g[0][2 * V + j], want) << "ignored row, column " << j;
        }
      }
  }
}

// Doc ids for B rows of T: row 0 packs three documents (doc 0 reappears non-contiguously: general doc ids must still
// attend), row 1 one document then padding, row 2 many short documents (7 tokens: query tiles and key blocks of the
// tiled kernels straddle several) then padding, further rows one each.
std::vector<int32_t> make_docs(int64_t B, int64_t T) {
  std::vector<int32_t> doc(B * T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < T; ++i) {
      int32_t d = int32_t(b * 10);
      if (b == 0) d = i < T / 3 ? 0 : (i < T / 2 ? 1 : 2);
      if (b == 1 && i >= T - T / 4) d = -1;
      if (b == 2) d = i >= T - T / 8 ? -1 : int32_t(100 + i / 7);
      doc[b * T + i] = d;
    }
  if (T > 20) doc[T / 2 + 2] = 0;
  return doc;
}

TEST_P(KernelConformance, AttentionDocMaskedGqaPaddedForwardBackward) {
  for (auto [B, T, H, KV, d] : std::vector<std::array<int64_t, 5>>{
           {2, 37, 6, 2, 8}, {2, 37, 4, 2, 16}, {3, 64, 4, 4, 32}, {2, 128, 14, 2, 64}, {1, 96, 12, 2, 128},
           {2, 50, 9, 3, 64},
           // tiled-kernel edges (cpu_attention.cpp: 32-query tiles, 64-key blocks, vectors of 8/16 floats): T below
           // one vector and below a tile, T a few blocks long and not a multiple of either, a head dim that is not a
           // multiple of the vector (zero-padded), GQA rep 1 and 4, many short documents per row (row 2)
           {2, 5, 2, 1, 16}, {3, 20, 4, 2, 32}, {3, 150, 4, 1, 20}, {3, 201, 8, 2, 64}}) {
    SCOPED_TRACE(testing::Message() << "B=" << B << " T=" << T << " H=" << H << " KV=" << KV << " d=" << d);
    AttnShape s{B, T, H, KV, d, 1.0f / std::sqrt(float(d))};
    const int64_t N = B * T;
    auto q0 = randn(N * H * d, 80), k0 = randn(N * KV * d, 81), v0 = randn(N * KV * d, 82);
    auto do0 = randn(N * H * d, 83);
    auto doc = make_docs(B, T);
    auto [g, r] = both([&](Backend& be) {
      Buf<float> q(be, q0), k(be, k0), v(be, v0), dout(be, do0), out(be, N * H * d), lse(be, N * H);
      Buf<float> dq(be, q0), dk(be, k0), dv(be, v0);  // garbage in: the backward overwrites
      Buf<int32_t> dc(be, doc);
      be.attention_forward(out, lse, q, k, v, dc, s);
      be.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, dc, s);
      return VV{out.host(), lse.host(), dq.host(), dk.host(), dv.host()};
    });
    const char* names[] = {"out", "lse", "dq", "dk", "dv"};
    for (int i = 0; i < 5; ++i)
      EXPECT_LE(rel_err(g[i], r[i]), i < 2 ? tol().attention : tol().attention_backward) << names[i];
    // padding (rows 1 and 2, doc -1): zero output, lse 0, no gradient
    for (int64_t tok = 0; tok < N; ++tok) {
      if (doc[tok] >= 0) continue;
      for (int64_t e = 0; e < H * d; ++e) ASSERT_EQ(g[0][tok * H * d + e], 0.0f) << "out of padding token " << tok;
      for (int64_t e = 0; e < H; ++e) ASSERT_EQ(g[1][tok * H + e], 0.0f) << "lse of padding token " << tok;
      for (int64_t e = 0; e < H * d; ++e) ASSERT_EQ(g[2][tok * H * d + e], 0.0f) << "dq of padding token " << tok;
      for (int64_t e = 0; e < KV * d; ++e) ASSERT_EQ(g[3][tok * KV * d + e], 0.0f) << "dk of padding token " << tok;
      for (int64_t e = 0; e < KV * d; ++e) ASSERT_EQ(g[4][tok * KV * d + e], 0.0f) << "dv of padding token " << tok;
    }
  }
}

TEST_P(KernelConformance, AttentionSoftCapAndSlidingWindow) {
  // Gemma 2: scores soft-capped (a small cap against scores of a few units, so the tanh bends them) and a sliding
  // window (shorter than a document: keys beyond it are masked inside a document; wider than a key block and not a
  // multiple of it), alone and together, over packed documents and padding; forward, backward, and the last-Tq rows.
  struct Case {
    int64_t B, T, H, KV, d, window;
    float softcap;
  };
  for (const Case& c : std::vector<Case>{{2, 37, 4, 2, 16, 0, 1.5f},
                                         {3, 150, 4, 1, 20, 9, 0.0f},
                                         {3, 201, 8, 2, 64, 70, 3.0f},
                                         {2, 96, 6, 3, 32, 1, 2.0f}}) {
    SCOPED_TRACE(testing::Message() << "B=" << c.B << " T=" << c.T << " window=" << c.window << " softcap="
                                    << c.softcap);
    AttnShape s{c.B, c.T, c.H, c.KV, c.d, 1.0f / std::sqrt(float(c.d))};
    s.softcap = c.softcap;
    s.window = c.window;
    const int64_t N = c.B * c.T;
    auto q0 = randn(N * c.H * c.d, 180, 2.0f), k0 = randn(N * c.KV * c.d, 181, 2.0f), v0 = randn(N * c.KV * c.d, 182);
    auto do0 = randn(N * c.H * c.d, 183);
    auto doc = make_docs(c.B, c.T);
    const int64_t Tq = 7;
    std::vector<float> q_last;  // the last Tq query rows of each row
    for (int64_t b = 0; b < c.B; ++b)
      q_last.insert(q_last.end(), q0.begin() + (b * c.T + c.T - Tq) * c.H * c.d,
                    q0.begin() + (b * c.T + c.T) * c.H * c.d);
    AttnShape sq = s;
    sq.Tq = Tq;
    auto [g, r] = both([&](Backend& be) {
      Buf<float> q(be, q0), k(be, k0), v(be, v0), dout(be, do0), out(be, N * c.H * c.d), lse(be, N * c.H);
      Buf<float> dq(be, q0), dk(be, k0), dv(be, v0), ql(be, q_last), ol(be, c.B * Tq * c.H * c.d);
      Buf<float> ll(be, c.B * Tq * c.H);
      Buf<int32_t> dc(be, doc);
      be.attention_forward(out, lse, q, k, v, dc, s);
      be.attention_backward(dq, dk, dv, dout, q, k, v, out, lse, dc, s);
      be.attention_forward(ol, ll, ql, k, v, dc, sq);
      return VV{out.host(), lse.host(), dq.host(), dk.host(), dv.host(), ol.host(), ll.host()};
    });
    const char* names[] = {"out", "lse", "dq", "dk", "dv", "out (last Tq)", "lse (last Tq)"};
    for (int i = 0; i < 7; ++i)
      EXPECT_LE(rel_err(g[i], r[i]), i >= 2 && i <= 4 ? tol().attention_backward : tol().attention) << names[i];
  }
  // The window is honoured: with window 1 every query sees only itself, so out == v of its own kv head.
  AttnShape s1{1, 10, 2, 1, 8, 0.3f};
  s1.window = 1;
  auto q1 = randn(10 * 2 * 8, 185), k1 = randn(10 * 8, 186), v1 = randn(10 * 8, 187);
  std::vector<int32_t> doc1(10, 0);
  Buf<float> q(*be_, q1), k(*be_, k1), v(*be_, v1), out(*be_, 10 * 2 * 8), lse(*be_, 10 * 2);
  Buf<int32_t> dc(*be_, doc1);
  be_->attention_forward(out, lse, q, k, v, dc, s1);
  std::vector<float> want;
  for (int64_t i = 0; i < 10; ++i)
    for (int64_t h = 0; h < 2; ++h) want.insert(want.end(), v1.begin() + i * 8, v1.begin() + (i + 1) * 8);
  EXPECT_LE(rel_err(out.host(), want), tol().attention) << "window 1: out == own v";
}

TEST_P(KernelConformance, AttentionLastTqQueriesKvCache) {
  // KV-cache decoding: queries are the last Tq positions of each row, keys/values all T. Checked against the
  // reference with Tq and against the rows of this backend's own full (Tq = T) computation.
  for (auto [B, T, H, KV, d, Tq] : std::vector<std::array<int64_t, 6>>{
           {1, 29, 4, 1, 8, 3}, {1, 40, 4, 2, 32, 1}, {1, 33, 4, 2, 32, 7}, {2, 64, 4, 2, 32, 5},
           {3, 150, 4, 2, 24, 70}}) {  // Tq spanning several query tiles, packed short documents in row 2
    SCOPED_TRACE(testing::Message() << "B=" << B << " T=" << T << " Tq=" << Tq);
    AttnShape full{B, T, H, KV, d, 1.0f / std::sqrt(float(d))};
    AttnShape s = full;
    s.Tq = Tq;
    const int64_t row = H * d;
    auto qfull = randn(B * T * row, 90), k0 = randn(B * T * KV * d, 91), v0 = randn(B * T * KV * d, 92);
    std::vector<float> q0;  // the last Tq query rows of each batch row
    for (int64_t b = 0; b < B; ++b)
      q0.insert(q0.end(), qfull.begin() + (b * T + T - Tq) * row, qfull.begin() + (b * T + T) * row);
    auto doc = make_docs(B, T);
    auto [g, r] = both([&](Backend& be) {
      Buf<float> q(be, q0), qf(be, qfull), k(be, k0), v(be, v0), out(be, B * Tq * row), lse(be, B * Tq * H);
      Buf<float> of(be, B * T * row), lf(be, B * T * H);
      Buf<int32_t> dc(be, doc);
      be.attention_forward(out, lse, q, k, v, dc, s);
      be.attention_forward(of, lf, qf, k, v, dc, full);
      auto ofh = of.host();
      std::vector<float> last;
      for (int64_t b = 0; b < B; ++b)
        last.insert(last.end(), ofh.begin() + (b * T + T - Tq) * row, ofh.begin() + (b * T + T) * row);
      return VV{out.host(), lse.host(), last};
    });
    EXPECT_LE(rel_err(g[0], r[0]), tol().attention) << "out";
    EXPECT_LE(rel_err(g[1], r[1]), tol().attention) << "lse";
    EXPECT_LE(rel_err(g[0], g[2]), tol().attention) << "Tq rows == last rows of the full computation";
  }
}

TEST_P(KernelConformance, AttentionSharedKeysReadRowZero) {
  // Branch scoring (model/kv_session.cpp): rows of [prefix | own tokens | padding] whose prefix K/V only row 0 holds.
  // Rows b > 0 hold NaN there, so reading them would show; the result must equal the run where every row holds its
  // own copy (bit for bit on this backend: same keys in the same order) and the reference.
  if (!be_->attention_shares_keys()) {  // the capability's contract: a backend without it rejects the layout
    AttnShape s{2, 8, 2, 1, 8, 0.3f};
    s.shared_keys = 4;
    Buf<float> q(*be_, randn(2 * 8 * 2 * 8, 98)), kv(*be_, randn(2 * 8 * 8, 99)), out(*be_, 2 * 8 * 2 * 8);
    Buf<float> lse(*be_, 2 * 8 * 2);
    Buf<int32_t> dc(*be_, std::vector<int32_t>(16, 0));
    EXPECT_THROW(be_->attention_forward(out, lse, q, kv, kv, dc, s), Error);
    return;
  }
  for (auto [B, T, H, KV, d, Tq, P] : std::vector<std::array<int64_t, 7>>{
           {3, 40, 4, 2, 16, 9, 31},    // prefix inside the first key block
           {4, 150, 6, 2, 32, 40, 110},  // prefix ending mid-block after whole shared blocks
           {2, 200, 4, 1, 64, 72, 128},  // prefix ending on a block boundary
           {1, 70, 4, 2, 24, 6, 64}}) {  // one row: nothing to share
    SCOPED_TRACE(testing::Message() << "B=" << B << " T=" << T << " Tq=" << Tq << " P=" << P);
    AttnShape s{B, T, H, KV, d, 1.0f / std::sqrt(float(d))};
    s.Tq = Tq;
    AttnShape shared = s;
    shared.shared_keys = P;
    const int64_t kv_row = KV * d;
    auto q0 = randn(B * Tq * H * d, 95), k0 = randn(B * T * kv_row, 96), v0 = randn(B * T * kv_row, 97);
    std::vector<int32_t> doc(B * T, -1);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t own = Tq - (b * 5) % Tq;  // branches of different lengths, padded on the right
      for (int64_t j = 0; j < T - Tq + own; ++j) doc[b * T + j] = 0;
      for (int64_t j = 0; j < P; ++j)  // every row's copy of the prefix is row 0's
        for (int64_t e = 0; e < kv_row; ++e) {
          k0[(b * T + j) * kv_row + e] = k0[j * kv_row + e];
          v0[(b * T + j) * kv_row + e] = v0[j * kv_row + e];
        }
    }
    auto ks = k0, vs = v0;
    for (int64_t b = 1; b < B; ++b)
      for (int64_t j = 0; j < P; ++j)
        for (int64_t e = 0; e < kv_row; ++e) ks[(b * T + j) * kv_row + e] = vs[(b * T + j) * kv_row + e] = NAN;
    auto [g, r] = both([&](Backend& be) {
      Buf<float> q(be, q0), k(be, ks), v(be, vs), kf(be, k0), vf(be, v0), out(be, B * Tq * H * d), lse(be, B * Tq * H);
      Buf<float> of(be, B * Tq * H * d), lf(be, B * Tq * H);
      Buf<int32_t> dc(be, doc);
      be.attention_forward(out, lse, q, k, v, dc, shared);
      be.attention_forward(of, lf, q, kf, vf, dc, s);
      return VV{out.host(), lse.host(), of.host(), lf.host()};
    });
    EXPECT_LE(rel_err(g[0], r[0]), tol().attention) << "out vs reference";
    EXPECT_LE(rel_err(g[1], r[1]), tol().attention) << "lse vs reference";
    EXPECT_EQ(g[0], g[2]) << "out equals the run with every row's own copy";
    EXPECT_EQ(g[1], g[3]) << "lse equals the run with every row's own copy";
  }
}

}  // namespace

// The oracle itself: the reference attention backward against central differences of the reference forward (fp32,
// so a loose 2e-2 relative bound on a few coordinates; the exact checks are the torch parity tests in tests/model).
TEST(ReferenceOracle, AttentionGradientMatchesFiniteDifferences) {
  auto ref = make_cpu_reference_backend();
  AttnShape s;
  s.B = 1, s.T = 6, s.n_heads = 2, s.n_kv_heads = 1, s.head_dim = 4, s.scale = 0.5f;
  std::vector<int32_t> doc = {0, 0, 0, 1, 1, -1};
  auto q = randn(6 * 2 * 4, 28), k = randn(6 * 4, 29), v = randn(6 * 4, 30), w = randn(q.size(), 31);
  std::vector<float> o(q.size()), l(12);
  auto loss = [&](const std::vector<float>& qq, const std::vector<float>& kk, const std::vector<float>& vv) {
    ref->attention_forward(o.data(), l.data(), qq.data(), kk.data(), vv.data(), doc.data(), s);
    double acc = 0;
    for (size_t i = 0; i < o.size(); ++i) acc += static_cast<double>(o[i]) * w[i];
    return acc;
  };
  loss(q, k, v);
  auto o0 = o, l0 = l;
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  ref->attention_backward(dq.data(), dk.data(), dv.data(), w.data(), q.data(), k.data(), v.data(), o0.data(),
                          l0.data(), doc.data(), s);
  const float h = 1e-2f;
  for (size_t i : {0u, 9u, 17u, 30u}) {
    auto qp = q, qm = q;
    qp[i] += h, qm[i] -= h;
    EXPECT_NEAR((loss(qp, k, v) - loss(qm, k, v)) / (2 * h), dq[i], 2e-2 * (1 + std::fabs(dq[i]))) << "dq " << i;
    const size_t j = i % k.size();
    auto kp = k, km = k;
    kp[j] += h, km[j] -= h;
    EXPECT_NEAR((loss(q, kp, v) - loss(q, km, v)) / (2 * h), dk[j], 2e-2 * (1 + std::fabs(dk[j]))) << "dk " << j;
    auto vp = v, vm = v;
    vp[j] += h, vm[j] -= h;
    EXPECT_NEAR((loss(q, k, vp) - loss(q, k, vm)) / (2 * h), dv[j], 2e-2 * (1 + std::fabs(dv[j]))) << "dv " << j;
  }
}

}  // namespace sft::backend::conformance
