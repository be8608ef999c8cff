// Flash-style attention on the CPU. Each query row keeps only a [T] score strip (never a [T x T] matrix per head):
// scores -> row max -> exp/sum -> weighted V, with the log-sum-exp saved for the backward, which recomputes the
// probabilities from it. Masked keys are never visited: a query of document d only loops over keys from the first
// token of d in its row up to itself (for contiguous/packed documents that is exactly the unmasked range, so fully
// masked key tiles — other documents, the future, padding — cost nothing).
#include "backend/cpu/cpu_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <vector>

#include "util/error.h"

SFT_CPU_TARGET_BEGIN
namespace sft::backend::cpu::SFT_CPU_VARIANT {
namespace {

// lo[t] = the first position in t's row whose doc id equals doc[t] (keys before it are all masked).
std::vector<int64_t> first_key(const int32_t* doc, const AttnShape& s) {
  std::vector<int64_t> lo(static_cast<size_t>(s.B * s.T));
  for (int64_t b = 0; b < s.B; ++b) {
    std::unordered_map<int32_t, int64_t> first;
    for (int64_t i = 0; i < s.T; ++i) {
      const int32_t d = doc[b * s.T + i];
      auto it = first.try_emplace(d, i).first;
      lo[b * s.T + i] = it->second;
    }
  }
  return lo;
}

inline float dot(const float* a, const float* b, int64_t d) {
  float acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t e = 0; e < d; ++e) acc += a[e] * b[e];
  return acc;
}

}  // namespace

void attention_forward_tiled(float* out, float* lse, const float* q, const float* k, const float* v,
                             const int32_t* doc, const AttnShape& s) {
  const int64_t d = s.head_dim, H = s.n_heads, KV = s.n_kv_heads, rep = H / KV, T = s.T;
  const std::vector<int64_t> lo = first_key(doc, s);
  const int64_t Tq = s.q_len();
  constexpr int64_t kQueryTile = 16;
  const int64_t tiles = (Tq + kQueryTile - 1) / kQueryTile;
#pragma omp parallel
  {
    std::vector<float> p(static_cast<size_t>(T));
    std::vector<float> acc(static_cast<size_t>(d));
#pragma omp for collapse(3) schedule(dynamic, 1)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const int64_t iq1 = std::min(Tq, (tile + 1) * kQueryTile);
          for (int64_t iq = tile * kQueryTile; iq < iq1; ++iq) {
            const int64_t i = T - Tq + iq;  // key position of this query
            const int64_t ti = b * T + i, qrow = b * Tq + iq;
            float* o = out + (qrow * H + h) * d;
            if (doc[ti] < 0) {
              std::fill(o, o + d, 0.0f);
              lse[qrow * H + h] = 0;
              continue;
            }
            const float* qi = q + (qrow * H + h) * d;
            const int64_t j0 = lo[ti];
            float mx = -INFINITY;
            for (int64_t j = j0; j <= i; ++j) {
              const int64_t tj = b * T + j;
              if (doc[tj] != doc[ti]) {
                p[j] = -INFINITY;
                continue;
              }
              p[j] = dot(qi, k + (tj * KV + h / rep) * d, d) * s.scale;
              mx = std::max(mx, p[j]);
            }
            float sum = 0;
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t j = j0; j <= i; ++j) {
              if (p[j] == -INFINITY) continue;
              const float pj = std::exp(p[j] - mx);
              sum += pj;
              const float* vj = v + ((b * T + j) * KV + h / rep) * d;
#pragma omp simd
              for (int64_t e = 0; e < d; ++e) acc[e] += pj * vj[e];
            }
            const float inv = 1.0f / sum;
#pragma omp simd
            for (int64_t e = 0; e < d; ++e) o[e] = acc[e] * inv;
            lse[qrow * H + h] = mx + std::log(sum);
          }
        }
  }
}

void attention_backward_tiled(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                              const float* v, const float* out, const float* lse, const int32_t* doc,
                              const AttnShape& s) {
  const int64_t d = s.head_dim, H = s.n_heads, KV = s.n_kv_heads, rep = H / KV, T = s.T;
  SFT_CHECK(s.q_len() == T, "attention_backward: needs queries at every position (Tq=", s.Tq, " T=", T, ")");
  const std::vector<int64_t> lo = first_key(doc, s);
  // dK/dV of query head h go to a private [T, d] strip per (row, head), summed over the heads of a GQA group at the
  // end: no atomics, and work splits over B*n_heads tasks.
  std::vector<float> dk_h(static_cast<size_t>(s.B * H * T * d)), dv_h(dk_h.size());
#pragma omp parallel for collapse(2) schedule(dynamic, 1)
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      float* gk = dk_h.data() + (b * H + h) * T * d;
      float* gv = dv_h.data() + (b * H + h) * T * d;
      std::fill(gk, gk + T * d, 0.0f);
      std::fill(gv, gv + T * d, 0.0f);
      for (int64_t i = 0; i < T; ++i) {
        const int64_t ti = b * T + i;
        float* gq = dq + (ti * H + h) * d;
        std::fill(gq, gq + d, 0.0f);
        if (doc[ti] < 0) continue;
        const float* qi = q + (ti * H + h) * d;
        const float* doi = dout + (ti * H + h) * d;
        const float D = dot(doi, out + (ti * H + h) * d, d);
        const float l = lse[ti * H + h];
        for (int64_t j = lo[ti]; j <= i; ++j) {
          const int64_t tj = b * T + j;
          if (doc[tj] != doc[ti]) continue;
          const float* kj = k + (tj * KV + h / rep) * d;
          const float* vj = v + (tj * KV + h / rep) * d;
          const float p = std::exp(dot(qi, kj, d) * s.scale - l);
          const float ds = p * (dot(doi, vj, d) - D) * s.scale;
          float* gkj = gk + j * d;
          float* gvj = gv + j * d;
#pragma omp simd
          for (int64_t e = 0; e < d; ++e) {
            gq[e] += ds * kj[e];
            gkj[e] += ds * qi[e];
            gvj[e] += p * doi[e];
          }
        }
      }
    }
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t i = 0; i < T; ++i)
      for (int64_t g = 0; g < KV; ++g) {
        float* dki = dk + ((b * T + i) * KV + g) * d;
        float* dvi = dv + ((b * T + i) * KV + g) * d;
        std::fill(dki, dki + d, 0.0f);
        std::fill(dvi, dvi + d, 0.0f);
        for (int64_t r = 0; r < rep; ++r) {
          const int64_t h = g * rep + r;
          const float* sk = dk_h.data() + ((b * H + h) * T + i) * d;
          const float* sv = dv_h.data() + ((b * H + h) * T + i) * d;
#pragma omp simd
          for (int64_t e = 0; e < d; ++e) {
            dki[e] += sk[e];
            dvi[e] += sv[e];
          }
        }
      }
}

}  // namespace sft::backend::cpu::SFT_CPU_VARIANT
SFT_CPU_TARGET_END
