// The attention algorithm of the CUDA backend and the row-major -> column-major GEMM mapping, free of CUDA calls
// (the operations come through AttnOps), so tests/gpu/attention_plan_test.cpp checks them on the CPU.
//
// Per chunk of batch rows: q/k/v copied head-major ([rows, heads, T, d]; for q that is [rows, kv_heads, n_rep, T, d]),
// then strided-batched GEMMs over (row, kv head) with the n_rep query heads of a kv head stacked as n_rep*Tq rows:
// GQA without replicating k/v, and the backward's dK = dS^T Q, dV = P^T dO sum the group's heads inside the GEMM.
#include "backend/cuda/attention_plan.h"

#include <algorithm>

#include "util/error.h"

namespace sft::backend::cuda {

ColMajorGemm to_col_major(const GemmArgs& g) {
  ColMajorGemm c;
  c.trans_a = g.trans_b;
  c.trans_b = g.trans_a;
  c.m = g.N;
  c.n = g.M;
  c.k = g.K;
  // our B: row-major [K,N] (ldb) = column-major [N rows, K cols]; with trans_b row-major [N,K] = column-major [K, N]
  c.a_rows = g.trans_b ? g.K : g.N;
  c.a_cols = g.trans_b ? g.N : g.K;
  c.lda = g.ldb;
  c.stride_a = g.stride_b;
  // our A: row-major [M,K] = column-major [K, M]; with trans_a row-major [K,M] = column-major [M, K]
  c.b_rows = g.trans_a ? g.M : g.K;
  c.b_cols = g.trans_a ? g.K : g.M;
  c.ldb = g.lda;
  c.stride_b = g.stride_a;
  c.c_rows = g.N;
  c.c_cols = g.M;
  c.ldc = g.ldc;
  c.stride_c = g.stride_c;
  return c;
}

int64_t attention_chunk_rows(const AttnShape& s, int buffers, int64_t limit_bytes) {
  const int64_t per_row = int64_t(buffers) * s.n_heads * s.q_len() * s.T * int64_t(sizeof(float));
  const int64_t rows = per_row > 0 ? limit_bytes / per_row : s.B;
  return std::clamp<int64_t>(rows, 1, std::max<int64_t>(s.B, 1));
}

namespace {
void check_attn_shape(const AttnShape& s) {
  SFT_CHECK(s.B >= 0 && s.T >= 0 && s.n_heads > 0 && s.n_kv_heads > 0 && s.head_dim > 0 &&
                s.n_heads % s.n_kv_heads == 0,
            "cuda attention: bad shape B=", s.B, " T=", s.T, " heads=", s.n_heads, " kv_heads=", s.n_kv_heads,
            " head_dim=", s.head_dim);
}
}  // namespace

void attention_forward_impl(AttnOps& ops, float* out, float* lse, const float* q, const float* k, const float* v,
                            const int32_t* doc, const AttnShape& s, int64_t chunk, GemmCompute mode) {
  check_attn_shape(s);
  if (s.B == 0 || s.T == 0) return;
  const int64_t T = s.T, Tq = s.q_len(), nH = s.n_heads, nKV = s.n_kv_heads, d = s.head_dim, rep = nH / nKV;
  SFT_CHECK(Tq >= 1 && Tq <= T, "cuda attention_forward: Tq=", s.Tq, " must be in [0, T=", T, "]");
  chunk = std::clamp<int64_t>(chunk, 1, s.B);
  float* S = ops.scratch(0, size_t(chunk * nH * Tq * T) * 4);
  float* Qp = ops.scratch(2, size_t(chunk * nH * Tq * d) * 4);
  float* Kp = ops.scratch(3, size_t(chunk * nKV * T * d) * 4);
  float* Vp = ops.scratch(4, size_t(chunk * nKV * T * d) * 4);
  float* Op = ops.scratch(5, size_t(chunk * nH * Tq * d) * 4);
  for (int64_t b0 = 0; b0 < s.B; b0 += chunk) {
    const int64_t rows = std::min(chunk, s.B - b0);
    ops.pack_heads(Qp, q + b0 * Tq * nH * d, rows, Tq, nH, d);
    ops.pack_heads(Kp, k + b0 * T * nKV * d, rows, T, nKV, d);
    ops.pack_heads(Vp, v + b0 * T * nKV * d, rows, T, nKV, d);
    GemmArgs g;  // S[rep*Tq, T] = Q[rep*Tq, d] K[T, d]^T per (row, kv head)
    g.trans_b = true;
    g.M = rep * Tq, g.N = T, g.K = d;
    g.A = Qp, g.lda = d, g.stride_a = rep * Tq * d;
    g.B = Kp, g.ldb = d, g.stride_b = T * d;
    g.C = S, g.ldc = T, g.stride_c = rep * Tq * T;
    g.batch = rows * nKV;
    g.compute = mode;
    ops.gemm(g);
    ops.softmax_forward(S, lse + b0 * Tq * nH, doc + b0 * T, rows, nH, Tq, T, s);
    GemmArgs o;  // O[rep*Tq, d] = P[rep*Tq, T] V[T, d]
    o.M = rep * Tq, o.N = d, o.K = T;
    o.A = S, o.lda = T, o.stride_a = rep * Tq * T;
    o.B = Vp, o.ldb = d, o.stride_b = T * d;
    o.C = Op, o.ldc = d, o.stride_c = rep * Tq * d;
    o.batch = rows * nKV;
    o.compute = mode;
    ops.gemm(o);
    ops.unpack_heads(out + b0 * Tq * nH * d, Op, rows, Tq, nH, d);
  }
}

void attention_backward_impl(AttnOps& ops, float* dq, float* dk, float* dv, const float* dout, const float* q,
                             const float* k, const float* v, const float* out, const float* lse, const int32_t* doc,
                             const AttnShape& s, int64_t chunk, GemmCompute mode) {
  check_attn_shape(s);
  SFT_CHECK(s.q_len() == s.T, "cuda attention_backward: needs queries at every position (Tq=", s.Tq, " T=", s.T, ")");
  if (s.B == 0 || s.T == 0) return;
  const int64_t T = s.T, nH = s.n_heads, nKV = s.n_kv_heads, d = s.head_dim, rep = nH / nKV;
  chunk = std::clamp<int64_t>(chunk, 1, s.B);
  float* P = ops.scratch(0, size_t(chunk * nH * T * T) * 4);
  float* dP = ops.scratch(1, size_t(chunk * nH * T * T) * 4);
  float* Qp = ops.scratch(2, size_t(chunk * nH * T * d) * 4);
  float* Kp = ops.scratch(3, size_t(chunk * nKV * T * d) * 4);
  float* Vp = ops.scratch(4, size_t(chunk * nKV * T * d) * 4);
  float* dOp = ops.scratch(5, size_t(chunk * nH * T * d) * 4);
  float* dQp = ops.scratch(6, size_t(chunk * nH * T * d) * 4);
  float* dKp = ops.scratch(7, size_t(chunk * nKV * T * d) * 4);
  float* dVp = ops.scratch(8, size_t(chunk * nKV * T * d) * 4);
  float* Dd = ops.scratch(9, size_t(s.B * T * nH) * 4);
  float* th = s.softcap > 0 ? ops.scratch(10, size_t(chunk * nH * T * T) * 4) : nullptr;
  ops.row_dot(Dd, dout, out, s.B * T, nH, d);
  for (int64_t b0 = 0; b0 < s.B; b0 += chunk) {
    const int64_t rows = std::min(chunk, s.B - b0);
    const int64_t nb = rows * nKV;
    ops.pack_heads(Qp, q + b0 * T * nH * d, rows, T, nH, d);
    ops.pack_heads(Kp, k + b0 * T * nKV * d, rows, T, nKV, d);
    ops.pack_heads(Vp, v + b0 * T * nKV * d, rows, T, nKV, d);
    ops.pack_heads(dOp, dout + b0 * T * nH * d, rows, T, nH, d);
    {  // P = softmax recomputed: S = Q K^T, then exp(scale*S - lse)
      GemmArgs g;
      g.trans_b = true;
      g.M = rep * T, g.N = T, g.K = d;
      g.A = Qp, g.lda = d, g.stride_a = rep * T * d;
      g.B = Kp, g.ldb = d, g.stride_b = T * d;
      g.C = P, g.ldc = T, g.stride_c = rep * T * T;
      g.batch = nb, g.compute = mode;
      ops.gemm(g);
      ops.probs_from_lse(P, th, lse + b0 * T * nH, doc + b0 * T, rows, nH, T, s);
    }
    {  // dV[T, d] = P^T[T, rep*T] dO[rep*T, d]  (sums the rep query heads of the kv head)
      GemmArgs g;
      g.trans_a = true;
      g.M = T, g.N = d, g.K = rep * T;
      g.A = P, g.lda = T, g.stride_a = rep * T * T;
      g.B = dOp, g.ldb = d, g.stride_b = rep * T * d;
      g.C = dVp, g.ldc = d, g.stride_c = T * d;
      g.batch = nb, g.compute = mode;
      ops.gemm(g);
    }
    {  // dP[rep*T, T] = dO[rep*T, d] V[T, d]^T
      GemmArgs g;
      g.trans_b = true;
      g.M = rep * T, g.N = T, g.K = d;
      g.A = dOp, g.lda = d, g.stride_a = rep * T * d;
      g.B = Vp, g.ldb = d, g.stride_b = T * d;
      g.C = dP, g.ldc = T, g.stride_c = rep * T * T;
      g.batch = nb, g.compute = mode;
      ops.gemm(g);
    }
    // dS = dscore * P * (dP - D)   (into dP; dscore = scale, times 1 - tanh^2 with a soft-cap)
    ops.dscores(dP, P, th, Dd + b0 * T * nH, rows, nH, T, s.scale);
    {  // dQ[rep*T, d] = dS[rep*T, T] K[T, d]
      GemmArgs g;
      g.M = rep * T, g.N = d, g.K = T;
      g.A = dP, g.lda = T, g.stride_a = rep * T * T;
      g.B = Kp, g.ldb = d, g.stride_b = T * d;
      g.C = dQp, g.ldc = d, g.stride_c = rep * T * d;
      g.batch = nb, g.compute = mode;
      ops.gemm(g);
    }
    {  // dK[T, d] = dS^T[T, rep*T] Q[rep*T, d]
      GemmArgs g;
      g.trans_a = true;
      g.M = T, g.N = d, g.K = rep * T;
      g.A = dP, g.lda = T, g.stride_a = rep * T * T;
      g.B = Qp, g.ldb = d, g.stride_b = rep * T * d;
      g.C = dKp, g.ldc = d, g.stride_c = T * d;
      g.batch = nb, g.compute = mode;
      ops.gemm(g);
    }
    ops.unpack_heads(dq + b0 * T * nH * d, dQp, rows, T, nH, d);
    ops.unpack_heads(dk + b0 * T * nKV * d, dKp, rows, T, nKV, d);
    ops.unpack_heads(dv + b0 * T * nKV * d, dVp, rows, T, nKV, d);
  }
}

}  // namespace sft::backend::cuda
