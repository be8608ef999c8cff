// CPU-only tests of the CUDA backend's device-independent parts (run without a GPU, unlike the rest of tests/gpu):
//  - to_col_major(): the row-major -> column-major BLAS mapping every cuBLASLt / cuBLAS call uses, checked by
//    emulating the column-major BLAS product on the host against the row-major definition;
//  - attention_forward_impl / attention_backward_impl: the chunked, head-packed, batched-GEMM attention algorithm,
//    driven by host implementations of its operations (same semantics as the CUDA kernels, kernels.h), against the CPU
//    reference backend's attention. Tolerance 2e-5 of the output scale (fp32 loops vs double reference).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/attention_plan.h"
#include "gpu_test_util.h"

namespace sft::gputest {
namespace {

using backend::AttnShape;
using backend::cuda::AttnOps;
using backend::cuda::ColMajorGemm;
using backend::cuda::GemmArgs;

// Row-major definition of GemmArgs (fp32 operands), double accumulation.
void gemm_rowmajor(const GemmArgs& g) {
  const auto* A = static_cast<const float*>(g.A);
  const auto* B = static_cast<const float*>(g.B);
  for (int64_t bi = 0; bi < g.batch; ++bi) {
    const float* a = A + bi * g.stride_a;
    const float* b = B + bi * g.stride_b;
    float* c = g.C + bi * g.stride_c;
    for (int64_t i = 0; i < g.M; ++i)
      for (int64_t j = 0; j < g.N; ++j) {
        double acc = 0;
        for (int64_t l = 0; l < g.K; ++l) {
          const float av = g.trans_a ? a[l * g.lda + i] : a[i * g.lda + l];
          const float bv = g.trans_b ? b[j * g.ldb + l] : b[l * g.ldb + j];
          acc += double(av) * bv;
        }
        float& cv = c[i * g.ldc + j];
        cv = float(g.alpha * acc + (g.beta == 0.0f ? 0.0 : double(g.beta) * cv));
      }
  }
}

// Column-major BLAS semantics (as cuBLAS documents them) applied to a ColMajorGemm: BLAS A = our B, BLAS B = our A.
void gemm_colmajor(const ColMajorGemm& c, const GemmArgs& g) {
  const auto* Ab = static_cast<const float*>(g.B);
  const auto* Bb = static_cast<const float*>(g.A);
  for (int64_t bi = 0; bi < g.batch; ++bi) {
    const float* a = Ab + bi * c.stride_a;
    const float* b = Bb + bi * c.stride_b;
    float* cc = g.C + bi * c.stride_c;
    for (int64_t r = 0; r < c.m; ++r)
      for (int64_t col = 0; col < c.n; ++col) {
        double acc = 0;
        for (int64_t l = 0; l < c.k; ++l) {
          const float av = c.trans_a ? a[l + r * c.lda] : a[r + l * c.lda];     // op(A)(r, l)
          const float bv = c.trans_b ? b[col + l * c.ldb] : b[l + col * c.ldb];  // op(B)(l, col)
          acc += double(av) * bv;
        }
        float& cv = cc[r + col * c.ldc];
        cv = float(g.alpha * acc + (g.beta == 0.0f ? 0.0 : double(g.beta) * cv));
      }
  }
}

TEST(CudaPlan, ColMajorMappingMatchesRowMajorDefinition) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f})
        for (int64_t batch : {1, 3}) {
          SCOPED_TRACE(testing::Message() << "ta=" << ta << " tb=" << tb << " beta=" << beta << " batch=" << batch);
          GemmArgs g;
          g.trans_a = ta, g.trans_b = tb, g.M = 7, g.N = 5, g.K = 6, g.alpha = 0.5f, g.beta = beta;
          g.lda = (ta ? g.M : g.K) + 2, g.ldb = (tb ? g.K : g.N) + 1, g.ldc = g.N + 3;
          const int64_t na = (ta ? g.K : g.M) * g.lda, nb = (tb ? g.N : g.K) * g.ldb, nc = g.M * g.ldc;
          g.batch = batch, g.stride_a = na + 4, g.stride_b = nb + 2, g.stride_c = nc + 1;
          auto A = randn(size_t(g.stride_a * batch), 1), B = randn(size_t(g.stride_b * batch), 2);
          auto C0 = randn(size_t(g.stride_c * batch), 3);
          const ColMajorGemm c = to_col_major(g);
          // BLAS shape rules: op(A) is m x k, op(B) is k x n, C is m x n, leading dims cover the stored rows.
          EXPECT_EQ(c.trans_a ? c.a_cols : c.a_rows, c.m);
          EXPECT_EQ(c.trans_a ? c.a_rows : c.a_cols, c.k);
          EXPECT_EQ(c.trans_b ? c.b_cols : c.b_rows, c.k);
          EXPECT_EQ(c.trans_b ? c.b_rows : c.b_cols, c.n);
          EXPECT_EQ(c.c_rows, c.m);
          EXPECT_EQ(c.c_cols, c.n);
          EXPECT_GE(c.lda, c.a_rows);
          EXPECT_GE(c.ldb, c.b_rows);
          EXPECT_GE(c.ldc, c.c_rows);
          auto want = C0, got = C0;
          g.A = A.data(), g.B = B.data();
          g.C = want.data();
          gemm_rowmajor(g);
          g.C = got.data();
          gemm_colmajor(c, g);
          EXPECT_TRUE(close(got, want, 1e-6f, 1e-6f));
        }
}

// The score of a raw product and the mask (semantics of kernels.h: scale, softcap, window).
double host_score(double x, const AttnShape& s) {
  return s.softcap > 0 ? s.softcap * std::tanh(x * s.scale / s.softcap) : x * s.scale;
}
bool host_visible(const int32_t* docb, int32_t di, int64_t i, int64_t c, const AttnShape& s) {
  return di >= 0 && c <= i && docb[c] == di && (s.window <= 0 || i - c < s.window);
}

// Host versions of the attention operations (semantics of kernels.h).
class HostAttnOps final : public AttnOps {
 public:
  float* scratch(int slot, size_t bytes) override {
    auto& v = slots_.at(size_t(slot));
    if (v.size() * 4 < bytes) v.assign((bytes + 3) / 4, std::nanf(""));  // garbage: must be overwritten before use
    return v.data();
  }
  void gemm(const GemmArgs& g) override {
    ++gemms;
    gemm_rowmajor(g);
  }
  void pack_heads(float* dst, const float* src, int64_t rows, int64_t T, int64_t heads, int64_t d) override {
    for (int64_t b = 0; b < rows; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t t = 0; t < T; ++t)
          for (int64_t e = 0; e < d; ++e)
            dst[((b * heads + h) * T + t) * d + e] = src[((b * T + t) * heads + h) * d + e];
  }
  void unpack_heads(float* dst, const float* src, int64_t rows, int64_t T, int64_t heads, int64_t d) override {
    for (int64_t b = 0; b < rows; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t t = 0; t < T; ++t)
          for (int64_t e = 0; e < d; ++e)
            dst[((b * T + t) * heads + h) * d + e] = src[((b * heads + h) * T + t) * d + e];
  }
  void softmax_forward(float* S, float* lse, const int32_t* doc, int64_t rows, int64_t heads, int64_t Tq, int64_t T,
                       const AttnShape& s) override {
    for (int64_t b = 0; b < rows; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t iq = 0; iq < Tq; ++iq) {
          const int64_t i = T - Tq + iq;
          float* row = S + ((b * heads + h) * Tq + iq) * T;
          const int32_t di = doc[b * T + i];
          float& l = lse[(b * Tq + iq) * heads + h];
          auto valid = [&](int64_t c) { return host_visible(doc + b * T, di, i, c, s); };
          double m = -INFINITY;
          for (int64_t c = 0; c < T; ++c)
            if (valid(c)) m = std::max(m, host_score(row[c], s));
          if (di < 0) {
            for (int64_t c = 0; c < T; ++c) row[c] = 0;
            l = 0;
            continue;
          }
          double sum = 0;
          for (int64_t c = 0; c < T; ++c)
            if (valid(c)) sum += std::exp(host_score(row[c], s) - m);
          for (int64_t c = 0; c < T; ++c) row[c] = valid(c) ? float(std::exp(host_score(row[c], s) - m) / sum) : 0.f;
          l = float(m + std::log(sum));
        }
  }
  void probs_from_lse(float* S, float* th, const float* lse, const int32_t* doc, int64_t rows, int64_t heads,
                      int64_t T, const AttnShape& s) override {
    EXPECT_EQ(th != nullptr, s.softcap > 0) << "the tanh buffer exactly when soft-capped";
    for (int64_t b = 0; b < rows; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < T; ++i) {
          float* row = S + ((b * heads + h) * T + i) * T;
          const int32_t di = doc[b * T + i];
          const float l = lse[(b * T + i) * heads + h];
          for (int64_t c = 0; c < T; ++c) {
            if (th) th[((b * heads + h) * T + i) * T + c] = float(std::tanh(double(row[c]) * s.scale / s.softcap));
            row[c] = host_visible(doc + b * T, di, i, c, s) ? float(std::exp(host_score(row[c], s) - l)) : 0.f;
          }
        }
  }
  void row_dot(float* Dd, const float* dout, const float* out, int64_t n, int64_t heads, int64_t d) override {
    for (int64_t w = 0; w < n * heads; ++w) {
      double s = 0;
      for (int64_t e = 0; e < d; ++e) s += double(dout[w * d + e]) * out[w * d + e];
      Dd[w] = float(s);
    }
  }
  void dscores(float* dP, const float* P, const float* th, const float* Dd, int64_t rows, int64_t heads, int64_t T,
               float scale) override {
    for (int64_t b = 0; b < rows; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t i = 0; i < T; ++i)
          for (int64_t c = 0; c < T; ++c) {
            const int64_t idx = ((b * heads + h) * T + i) * T + c;
            const float dscore = th ? scale * (1.0f - th[idx] * th[idx]) : scale;
            dP[idx] = P[idx] == 0.f ? 0.f : dscore * P[idx] * (dP[idx] - Dd[(b * T + i) * heads + h]);
          }
  }
  int gemms = 0;

 private:
  std::array<std::vector<float>, 12> slots_;
};

std::vector<int32_t> docs(int64_t B, int64_t T) {  // row 0: three documents; row 1: one document + padding; others one
  std::vector<int32_t> doc(size_t(B * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < T; ++i) {
      int32_t dd = int32_t(b * 10);
      if (b == 0) dd = i < T / 3 ? 0 : (i < T / 2 ? 1 : 2);
      if (b == 1 && i >= T - T / 4) dd = -1;
      doc[size_t(b * T + i)] = dd;
    }
  return doc;
}

TEST(CudaPlan, AttentionAlgorithmMatchesCpuReference) {
  auto ref = backend::make_cpu_reference_backend();
  struct Case {
    int64_t B, T, H, KV, d, Tq, chunk;
    float softcap = 0;  // Gemma 2's attention soft-cap (small, so that the tanh bends the scores)
    int64_t window = 0;
  };
  for (const Case& c : std::vector<Case>{{2, 13, 4, 2, 8, 0, 2},
                                         {3, 16, 4, 2, 8, 0, 1},
                                         {3, 11, 6, 3, 4, 0, 2},
                                         {2, 9, 4, 4, 8, 0, 5},
                                         {2, 12, 6, 1, 8, 0, 1},
                                         {1, 20, 4, 2, 8, 1, 1},
                                         {2, 20, 4, 2, 8, 6, 1},
                                         {3, 16, 4, 2, 8, 0, 2, 1.5f, 0},
                                         {3, 16, 4, 2, 8, 0, 1, 0, 5},
                                         {2, 20, 4, 1, 8, 0, 2, 2.0f, 6},
                                         {2, 20, 4, 2, 8, 6, 1, 1.5f, 4}}) {
    SCOPED_TRACE(testing::Message() << "B=" << c.B << " T=" << c.T << " H=" << c.H << " KV=" << c.KV << " d=" << c.d
                                    << " Tq=" << c.Tq << " chunk=" << c.chunk << " softcap=" << c.softcap
                                    << " window=" << c.window);
    AttnShape s{c.B, c.T, c.H, c.KV, c.d, 1.0f / std::sqrt(float(c.d))};
    s.Tq = c.Tq;
    s.softcap = c.softcap;
    s.window = c.window;
    const int64_t Tq = s.q_len(), nq = c.B * Tq * c.H * c.d, nkv = c.B * c.T * c.KV * c.d;
    auto q = randn(size_t(nq), 11), k = randn(size_t(nkv), 12), v = randn(size_t(nkv), 13);
    auto dout = randn(size_t(nq), 14);
    auto doc = docs(c.B, c.T);
    std::vector<float> out_r(static_cast<size_t>(nq)), lse_r(static_cast<size_t>(c.B * Tq * c.H));
    ref->attention_forward(out_r.data(), lse_r.data(), q.data(), k.data(), v.data(), doc.data(), s);
    HostAttnOps ops;
    std::vector<float> out(size_t(nq), NAN), lse(size_t(c.B * Tq * c.H), NAN);
    attention_forward_impl(ops, out.data(), lse.data(), q.data(), k.data(), v.data(), doc.data(), s, c.chunk,
                           backend::cuda::GemmCompute::F32);
    EXPECT_TRUE(close_scaled(out, out_r, 2e-5f)) << "out";
    EXPECT_TRUE(close_scaled(lse, lse_r, 2e-5f)) << "lse";
    if (c.Tq != 0) continue;  // the backward needs every query position
    std::vector<float> dq_r(static_cast<size_t>(nq)), dk_r(static_cast<size_t>(nkv)), dv_r(static_cast<size_t>(nkv));
    ref->attention_backward(dq_r.data(), dk_r.data(), dv_r.data(), dout.data(), q.data(), k.data(), v.data(),
                            out_r.data(), lse_r.data(), doc.data(), s);
    std::vector<float> dq(size_t(nq), NAN), dk(size_t(nkv), NAN), dv(size_t(nkv), NAN);
    attention_backward_impl(ops, dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(),
                            out_r.data(), lse_r.data(), doc.data(), s, c.chunk, backend::cuda::GemmCompute::F32);
    EXPECT_TRUE(close_scaled(dq, dq_r, 2e-5f)) << "dq";
    EXPECT_TRUE(close_scaled(dk, dk_r, 2e-5f)) << "dk";
    EXPECT_TRUE(close_scaled(dv, dv_r, 2e-5f)) << "dv";
  }
}

TEST(CudaPlan, ChunkRowsBoundedByScratchLimit) {
  AttnShape s{64, 1024, 14, 2, 64, 0.125f};
  const int64_t per_row = 14LL * 1024 * 1024 * 4;
  EXPECT_EQ(backend::cuda::attention_chunk_rows(s, 1, 2LL << 30), (2LL << 30) / per_row);      // 36 rows
  EXPECT_EQ(backend::cuda::attention_chunk_rows(s, 2, 2LL << 30), (2LL << 30) / per_row / 2);  // 18 rows
  EXPECT_EQ(backend::cuda::attention_chunk_rows(s, 2, 1), 1);
  EXPECT_EQ(backend::cuda::attention_chunk_rows(s, 1, int64_t(1) << 40), 64);
}

}  // namespace
}  // namespace sft::gputest
