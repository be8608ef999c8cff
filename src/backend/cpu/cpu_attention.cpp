// Flash-style attention on the CPU, in gemm-shaped tiles. A task takes a tile of up to kQueryTile queries of one
// (batch row, head) and walks blocks of kKeyBlock keys: S = Q K^T, then an online softmax (running row max and sum,
// the accumulator rescaled when the max grows), then O += P V. The backward recomputes P from the saved log-sum-exp
// and per (tile, block) does dP = dO V^T, dS = P * (dP - D), dV += P^T dO, dK += dS^T Q, dQ += dS K. Every one of
// those products goes through one register-blocked micro-kernel (gemm_tile below) that broadcasts an element of A and
// FMAs whole vectors of a row-major B, so each operand that is multiplied along keys is packed once per call: K and V
// transposed per kv head ([d, T]) for S and dP, V and K row-major with the head dim padded to a vector ([T, dp]) for
// O += P V and dQ += dS K. That scratch is the size of K and V (per kv head, not per query head), freed on return.
// Masking: a query of document d sees the keys from the first token of d in its row up to itself, so its visible keys
// form an interval (exactly, when d's tokens are contiguous, which packing guarantees; a document id that reappears
// after another one is also handled, by a per-key check on those rows only). A tile visits only the key blocks
// covering the union of its rows' intervals, so other documents' keys, the future and padding cost nothing; inside a
// visited block the out-of-interval scores are masked (-inf before the exp in the forward, P = 0 in the backward).
// Padding queries (doc < 0) produce output 0, lse 0, and no gradient. A sliding window (AttnShape::window) only moves
// the start of each query's interval up to i - window + 1, so a tile also skips the keys left of every row's window.
// Soft-capped scores (AttnShape::softcap): s = c tanh(scale q.k / c) before the mask; the backward recomputes the
// tanh from the same product and multiplies dS by its derivative scale (1 - tanh^2).
// Shared keys (AttnShape::shared_keys, forward only): rows after the first read the key blocks below the shared
// length from row 0's packed panels, so a batch of branches after one prefix packs that prefix once.
#include "backend/cpu/cpu_attention.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <unordered_map>
#include <vector>

#include "util/error.h"

SFT_CPU_TARGET_BEGIN
namespace sft::backend::cpu::SFT_CPU_VARIANT {
#include "backend/cpu/cpu_vec.h"
namespace {

constexpr int64_t kQueryTile = 32;  // queries per task tile (rows of S)
constexpr int64_t kKeyBlock = 64;   // keys per block (columns of S); a multiple of 2 vectors for every variant
static_assert(kKeyBlock % (2 * kVec) == 0);

// Short names for cpu_vec.h's vector load and store (one unaligned vector move each).
static inline vfloat ld(const float* p) { return vload(p); }
static inline void st(float* p, vfloat v) { vstore(p, v); }
static inline vfloat bc(float x) { return x - vfloat{}; }  // broadcast (x - 0 == x exactly: no add is emitted)

// ---- the micro-kernel: C[M x N] (= or +=) A[M x K] * B[K x N] ----
// A(m, k) = a[m * ars + k * aks] (so A^T is the same call with the strides swapped), B row-major with leading
// dimension ldb, N a multiple of kVec. Blocks of kMR rows x kNV vectors of C stay in registers across the K loop.
template <int MR, int NV, bool kAccumulate>
inline void micro_tile(float* c, int64_t ldc, const float* a, int64_t ars, int64_t aks, const float* b, int64_t ldb,
                       int64_t K) {
  vfloat acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = kAccumulate ? ld(c + r * ldc + v * kVec) : vfloat{};
  for (int64_t k = 0; k < K; ++k) {
    vfloat bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = ld(b + k * ldb + v * kVec);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const vfloat ar = bc(a[r * ars + k * aks]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += ar * bv[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) st(c + r * ldc + v * kVec, acc[r][v]);
}

template <int NV, int kMR, bool kAccumulate>
inline void rows_tile(float* c, int64_t ldc, const float* a, int64_t ars, int64_t aks, const float* b, int64_t ldb,
                      int64_t M, int64_t K) {
  static_assert(kMR <= 6);
  int64_t m = 0;
  for (; m + kMR <= M; m += kMR)
    micro_tile<kMR, NV, kAccumulate>(c + m * ldc, ldc, a + m * ars, ars, aks, b, ldb, K);
  switch (M - m) {
    case 5: micro_tile<5, NV, kAccumulate>(c + m * ldc, ldc, a + m * ars, ars, aks, b, ldb, K); break;
    case 4: micro_tile<4, NV, kAccumulate>(c + m * ldc, ldc, a + m * ars, ars, aks, b, ldb, K); break;
    case 3: micro_tile<3, NV, kAccumulate>(c + m * ldc, ldc, a + m * ars, ars, aks, b, ldb, K); break;
    case 2: micro_tile<2, NV, kAccumulate>(c + m * ldc, ldc, a + m * ars, ars, aks, b, ldb, K); break;
    case 1: micro_tile<1, NV, kAccumulate>(c + m * ldc, ldc, a + m * ars, ars, aks, b, ldb, K); break;
    default: break;
  }
}

// Column panels of 2 vectors x 6 rows: 12 accumulators + 2 vectors of B + 1 broadcast fit the 16 vector registers
// of AVX2 (the classic 6 x 16 sgemm kernel), so B is loaded once per k instead of once per row and FMA; then
// 1 vector x 6 rows for a remaining vector (head dims that are not a multiple of 2 vectors).
// (A 3 x 4-vector panel needed 17 registers: GCC folded the B loads into every FMA, 15 loads per 12 FMAs, and the
// kernel ran at about a third of the FMA peak; bench/attention_bench.)
template <bool kAccumulate>
void gemm_tile(float* c, int64_t ldc, const float* a, int64_t ars, int64_t aks, const float* b, int64_t ldb, int64_t M,
               int64_t N, int64_t K) {
  int64_t n = 0;
  for (; n + 2 * kVec <= N; n += 2 * kVec) rows_tile<2, 6, kAccumulate>(c + n, ldc, a, ars, aks, b + n, ldb, M, K);
  if (n < N) rows_tile<1, 6, kAccumulate>(c + n, ldc, a, ars, aks, b + n, ldb, M, K);
}

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Per token of a row: the first key it may see (lo, the first position of its document in the row) and whether its
// document is contiguous from there (exact: the visible keys are exactly [lo, t]).
struct KeyRanges {
  std::vector<int64_t> lo;
  std::vector<uint8_t> exact;
};

KeyRanges key_ranges(const int32_t* doc, const AttnShape& s) {
  KeyRanges kr{std::vector<int64_t>(static_cast<size_t>(s.B * s.T)), std::vector<uint8_t>(static_cast<size_t>(s.B * s.T))};
  for (int64_t b = 0; b < s.B; ++b) {
    std::unordered_map<int32_t, int64_t> first;
    int64_t run_start = 0;
    for (int64_t i = 0; i < s.T; ++i) {
      const int64_t t = b * s.T + i;
      if (i > 0 && doc[t] != doc[t - 1]) run_start = i;
      kr.lo[t] = first.try_emplace(doc[t], i).first->second;
      kr.exact[t] = kr.lo[t] == run_start;
    }
  }
  return kr;
}

// The query rows of one tile: each row's visible key interval [first, last] (empty for padding: first > last).
struct TileRows {
  int64_t n = 0;  // rows in this tile
  int64_t first[kQueryTile], last[kQueryTile];
  bool exact[kQueryTile];
  int32_t doc[kQueryTile];
  int64_t jmin = 0, jmax = -1;  // union of the intervals
};

TileRows tile_rows(const int32_t* doc, const KeyRanges& kr, int64_t b, int64_t T, int64_t i0, int64_t n,
                   int64_t window) {
  TileRows t;
  t.n = n;
  t.jmin = T;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t ti = b * T + i0 + r;
    t.doc[r] = doc[ti];
    t.exact[r] = kr.exact[ti] != 0;
    if (doc[ti] < 0) {
      t.first[r] = 1;
      t.last[r] = 0;
      continue;
    }
    t.first[r] = window > 0 ? std::max(kr.lo[ti], i0 + r - window + 1) : kr.lo[ti];
    t.last[r] = i0 + r;
    t.jmin = std::min(t.jmin, t.first[r]);
    t.jmax = std::max(t.jmax, t.last[r]);
  }
  return t;
}

// Row r of a block starting at key j0: the visible columns [c0, c1) (c1 <= c0: none); keys of another document inside
// it (non-contiguous document ids only) are reported by masked().
struct RowSpan {
  int64_t c0, c1;
};
inline RowSpan row_span(const TileRows& t, int64_t r, int64_t j0, int64_t nb) {
  return {std::clamp<int64_t>(t.first[r] - j0, 0, nb), std::clamp<int64_t>(t.last[r] - j0 + 1, 0, nb)};
}

// Packs one tensor [B*T, KV, d] per (row, kv head): transposed in key blocks, [Tp / kKeyBlock][d][kKeyBlock]
// (Tp = T rounded up to a block, zero past T), so the B operand of S = Q K^T is one contiguous 16 KB panel per block
// (a [d, T] layout read 64 rows a row length apart, and S ran 1.5x slower than O += P V), and/or
// row-major [T, dp] (head dim zero-padded to a vector).
struct Packed {
  int64_t Tp = 0, dp = 0;
  std::vector<float> t, r;  // transposed, row-major
  const float* trans(int64_t b, int64_t g, int64_t KV, int64_t d) const { return t.data() + (b * KV + g) * d * Tp; }
  // Block of keys [j0, j0 + kKeyBlock) of a trans() panel (j0 a multiple of kKeyBlock); leading dimension kKeyBlock.
  static const float* block(const float* trans, int64_t j0, int64_t d) { return trans + j0 * d; }
  const float* rows(int64_t b, int64_t g, int64_t KV, int64_t T) const { return r.data() + (b * KV + g) * T * dp; }
};

// n floats, vector by vector (std::copy of a 64-float head row was a memmove call per row: ~5 % of the kernel).
inline void copy_floats(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + kVec <= n; i += kVec) st(dst + i, ld(src + i));
  for (; i < n; ++i) dst[i] = src[i];
}

// First key of the blocks that rows b > 0 hold themselves under AttnShape::shared_keys (0 without it).
inline int64_t shared_block_start(const AttnShape& s) { return s.shared_keys / kKeyBlock * kKeyBlock; }

// Packs into `p`, reusing its storage: the callers keep one Packed per role in thread_local storage, because fresh
// multi-megabyte vectors every call cost page faults and kernel page clearing (~5 % of the kernel, perf). The
// retained size is that of the largest call's K and V, per calling thread.
void pack(Packed& p, const float* x, const AttnShape& s, bool transposed, bool row_major) {
  const int64_t d = s.head_dim, KV = s.n_kv_heads, T = s.T;
  p.Tp = round_up(T, kKeyBlock);
  p.dp = round_up(d, kVec);
  if (transposed) p.t.assign(static_cast<size_t>(s.B * KV * d * p.Tp), 0.0f);
  if (row_major) p.r.assign(static_cast<size_t>(s.B * KV * T * p.dp), 0.0f);
  // Shared keys (AttnShape::shared_keys): rows b > 0 read the whole blocks below S0 from row 0's panels, so only
  // their blocks from S0 on are packed (the block that straddles the boundary takes its shared keys from row 0).
  const int64_t S0 = shared_block_start(s);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t g = 0; g < KV; ++g) {
      for (int64_t j = b == 0 ? 0 : S0; j < T; ++j) {
        const float* src = x + (((j < s.shared_keys ? 0 : b) * T + j) * KV + g) * d;
        if (row_major) copy_floats(p.r.data() + ((b * KV + g) * T + j) * p.dp, src, d);
        if (transposed) {
          float* dst = p.t.data() + (b * KV + g) * d * p.Tp + (j / kKeyBlock) * d * kKeyBlock + j % kKeyBlock;
          for (int64_t e = 0; e < d; ++e) dst[e * kKeyBlock] = src[e];
        }
      }
    }
}

// Copies n rows of one head (row stride `stride`) into a [kQueryTile, dp] tile, zero-padding the head dim.
void load_rows(float* dst, int64_t dp, const float* src, int64_t stride, int64_t n, int64_t d) {
  for (int64_t r = 0; r < n; ++r) {
    copy_floats(dst + r * dp, src + r * stride, d);
    std::fill(dst + r * dp + d, dst + (r + 1) * dp, 0.0f);
  }
}

}  // namespace

void attention_forward_tiled(float* out, float* lse, const float* q, const float* k, const float* v,
                             const int32_t* doc, const AttnShape& s) {
  const int64_t d = s.head_dim, H = s.n_heads, KV = s.n_kv_heads, rep = H / KV, T = s.T;
  const int64_t Tq = s.q_len();
  SFT_CHECK(s.shared_keys >= 0 && s.shared_keys <= T, "attention_forward: shared_keys ", s.shared_keys, " outside [0, T=",
            T, "]");
  const KeyRanges kr = key_ranges(doc, s);
  // Locals name the calling thread's scratch: inside the parallel region a thread_local would be each worker's own.
  static thread_local Packed k_scratch, v_scratch;
  Packed& kp = k_scratch;
  Packed& vp = v_scratch;
  pack(kp, k, s, /*transposed=*/true, /*row_major=*/false);
  pack(vp, v, s, /*transposed=*/false, /*row_major=*/true);
  const int64_t dp = vp.dp, tiles = (Tq + kQueryTile - 1) / kQueryTile, S0 = shared_block_start(s);
  constexpr float kNegInf = -INFINITY;
#pragma omp parallel
  {
    std::vector<float> qt(kQueryTile * dp), o(kQueryTile * dp), sc(kQueryTile * kKeyBlock);
    float m[kQueryTile], l[kQueryTile];
    // Largest tiles (latest queries: the most keys) first, for balance under the dynamic schedule.
#pragma omp for collapse(3) schedule(dynamic, 1)
    for (int64_t tile_rev = 0; tile_rev < tiles; ++tile_rev)
      for (int64_t b = 0; b < s.B; ++b)
        for (int64_t h = 0; h < H; ++h) {
          const int64_t tile = tiles - 1 - tile_rev, g = h / rep;
          const int64_t iq0 = tile * kQueryTile, n = std::min(kQueryTile, Tq - iq0);
          const TileRows rows = tile_rows(doc, kr, b, T, T - Tq + iq0, n, s.window);
          const float* kt = kp.trans(b, g, KV, d);
          const float* vr = vp.rows(b, g, KV, T);
          const float* kt0 = kp.trans(0, g, KV, d);  // blocks below S0 (shared keys)
          const float* vr0 = vp.rows(0, g, KV, T);
          load_rows(qt.data(), dp, q + ((b * Tq + iq0) * H + h) * d, H * d, n, d);
          std::fill(o.begin(), o.end(), 0.0f);
          std::fill(m, m + kQueryTile, kNegInf);
          std::fill(l, l + kQueryTile, 0.0f);
          // Blocks on the packed grid; keys before jmin in the first block are masked like any other.
          for (int64_t j0 = rows.jmin / kKeyBlock * kKeyBlock; j0 <= rows.jmax; j0 += kKeyBlock) {
            const int64_t nb = std::min(kKeyBlock, rows.jmax + 1 - j0), nbv = round_up(nb, kVec);
            const bool shared = j0 < S0;
            gemm_tile<false>(sc.data(), kKeyBlock, qt.data(), dp, 1, Packed::block(shared ? kt0 : kt, j0, d), kKeyBlock,
                             n, nbv, d);
            for (int64_t r = 0; r < n; ++r) {
              float* sr = sc.data() + r * kKeyBlock;
              const RowSpan sp = row_span(rows, r, j0, nb);
              if (sp.c1 <= sp.c0) {
                std::fill(sr, sr + nbv, 0.0f);  // no visible key here: P row 0
                continue;
              }
              if (s.softcap > 0) {
                for (int64_t c = 0; c < nbv; c += kVec) st(sr + c, s.softcap * vtanh(ld(sr + c) * s.scale / s.softcap));
              } else {
                for (int64_t c = 0; c < nbv; c += kVec) st(sr + c, ld(sr + c) * s.scale);
              }
              std::fill(sr, sr + sp.c0, kNegInf);
              std::fill(sr + sp.c1, sr + nbv, kNegInf);
              if (!rows.exact[r])
                for (int64_t c = sp.c0; c < sp.c1; ++c)
                  if (doc[b * T + j0 + c] != rows.doc[r]) sr[c] = kNegInf;
              vfloat vm = bc(kNegInf);
              for (int64_t c = 0; c < nbv; c += kVec) vm = vmax(vm, ld(sr + c));
              const float m_new = std::max(m[r], hmax(vm));
              vfloat vs{};
              for (int64_t c = 0; c < nbv; c += kVec) {
                const vfloat p = vexp(ld(sr + c) - m_new);
                st(sr + c, p);
                vs += p;
              }
              if (m_new > m[r]) {
                const float alpha = std::exp(m[r] - m_new);  // 0 on the first visible block (m = -inf)
                l[r] *= alpha;
                float* orow = o.data() + r * dp;
                for (int64_t e = 0; e < dp; e += kVec) st(orow + e, ld(orow + e) * alpha);
                m[r] = m_new;
              }
              l[r] += hsum(vs);
            }
            gemm_tile<true>(o.data(), dp, sc.data(), kKeyBlock, 1, (shared ? vr0 : vr) + j0 * dp, dp, n, dp, nb);
          }
          for (int64_t r = 0; r < n; ++r) {
            const int64_t qrow = b * Tq + iq0 + r;
            float* dst = out + (qrow * H + h) * d;
            if (rows.first[r] > rows.last[r]) {  // padding
              std::fill(dst, dst + d, 0.0f);
              lse[qrow * H + h] = 0;
              continue;
            }
            const float inv = 1.0f / l[r];
            for (int64_t e = 0; e < d; ++e) dst[e] = o[r * dp + e] * inv;
            lse[qrow * H + h] = m[r] + std::log(l[r]);
          }
        }
  }
}

void attention_backward_tiled(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                              const float* v, const float* out, const float* lse, const int32_t* doc,
                              const AttnShape& s) {
  const int64_t d = s.head_dim, H = s.n_heads, KV = s.n_kv_heads, rep = H / KV, T = s.T;
  SFT_CHECK(s.q_len() == T, "attention_backward: needs queries at every position (Tq=", s.Tq, " T=", T, ")");
  SFT_CHECK(s.shared_keys == 0, "attention_backward: shared_keys is a forward-only layout");
  const KeyRanges kr = key_ranges(doc, s);
  static thread_local Packed k_scratch, v_scratch;  // see attention_forward_tiled
  Packed& kp = k_scratch;
  Packed& vp = v_scratch;
  pack(kp, k, s, /*transposed=*/true, /*row_major=*/true);
  pack(vp, v, s, /*transposed=*/true, /*row_major=*/false);
  const int64_t dp = kp.dp, tiles = (T + kQueryTile - 1) / kQueryTile;
  // dK/dV of query head h go to a private [T, dp] strip per (row, head), summed over the heads of a GQA group at the
  // end: no atomics, and work splits over B*n_heads equal tasks (each walks all query tiles of its head).
  static thread_local std::vector<float> dk_scratch, dv_scratch;  // reused like the packed K/V (see pack)
  std::vector<float>& dk_h = dk_scratch;
  std::vector<float>& dv_h = dv_scratch;
  dk_h.assign(static_cast<size_t>(s.B * H * T * dp), 0.0f);
  dv_h.assign(dk_h.size(), 0.0f);
#pragma omp parallel
  {
    std::vector<float> qt(kQueryTile * dp), dot_tile(kQueryTile * dp), dqt(kQueryTile * dp);
    std::vector<float> pm(kQueryTile * kKeyBlock), dsm(kQueryTile * kKeyBlock);
    float Dr[kQueryTile], lr[kQueryTile];
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const int64_t g = h / rep;
        float* gk = dk_h.data() + (b * H + h) * T * dp;
        float* gv = dv_h.data() + (b * H + h) * T * dp;
        const float* kt = kp.trans(b, g, KV, d);
        const float* k_rows = kp.rows(b, g, KV, T);
        const float* vt = vp.trans(b, g, KV, d);
        for (int64_t tile = 0; tile < tiles; ++tile) {
          const int64_t i0 = tile * kQueryTile, n = std::min(kQueryTile, T - i0);
          const TileRows rows = tile_rows(doc, kr, b, T, i0, n, s.window);
          const int64_t base = (b * T + i0) * H + h;  // (token, head) row of the tile's first query
          load_rows(qt.data(), dp, q + base * d, H * d, n, d);
          load_rows(dot_tile.data(), dp, dout + base * d, H * d, n, d);
          std::fill(dqt.begin(), dqt.end(), 0.0f);
          for (int64_t r = 0; r < n; ++r) {
            const float* o_r = out + (base + r * H) * d;
            const float* do_r = dout + (base + r * H) * d;
            float D = 0;
            for (int64_t e = 0; e < d; ++e) D += do_r[e] * o_r[e];
            Dr[r] = D;
            lr[r] = lse[base + r * H];
          }
          for (int64_t j0 = rows.jmin / kKeyBlock * kKeyBlock; j0 <= rows.jmax; j0 += kKeyBlock) {
            const int64_t nb = std::min(kKeyBlock, rows.jmax + 1 - j0), nbv = round_up(nb, kVec);
            gemm_tile<false>(pm.data(), kKeyBlock, qt.data(), dp, 1, Packed::block(kt, j0, d), kKeyBlock, n, nbv, d);
            gemm_tile<false>(dsm.data(), kKeyBlock, dot_tile.data(), dp, 1, Packed::block(vt, j0, d), kKeyBlock, n,
                             nbv, d);  // S and dP
            for (int64_t r = 0; r < n; ++r) {
              float* pr = pm.data() + r * kKeyBlock;
              float* dr = dsm.data() + r * kKeyBlock;
              const RowSpan sp = row_span(rows, r, j0, nb);
              if (sp.c1 <= sp.c0) {
                std::fill(pr, pr + nbv, 0.0f);
                std::fill(dr, dr + nbv, 0.0f);
                continue;
              }
              const vfloat vl = bc(lr[r]), vD = bc(Dr[r]);
              if (s.softcap > 0) {
                for (int64_t c = 0; c < nbv; c += kVec) {
                  const vfloat t = vtanh(ld(pr + c) * s.scale / s.softcap);
                  const vfloat p = vexp(s.softcap * t - vl);
                  st(pr + c, p);
                  st(dr + c, p * (ld(dr + c) - vD) * (s.scale * (1.0f - t * t)));
                }
              } else {
                for (int64_t c = 0; c < nbv; c += kVec) {
                  const vfloat p = vexp(ld(pr + c) * s.scale - vl);
                  st(pr + c, p);
                  st(dr + c, p * (ld(dr + c) - vD) * s.scale);
                }
              }
              std::fill(pr, pr + sp.c0, 0.0f);
              std::fill(dr, dr + sp.c0, 0.0f);
              std::fill(pr + sp.c1, pr + nbv, 0.0f);
              std::fill(dr + sp.c1, dr + nbv, 0.0f);
              if (!rows.exact[r])
                for (int64_t c = sp.c0; c < sp.c1; ++c)
                  if (doc[b * T + j0 + c] != rows.doc[r]) pr[c] = dr[c] = 0.0f;
            }
            // dV[j0..] += P^T dO, dK[j0..] += dS^T Q, dQ += dS K
            gemm_tile<true>(gv + j0 * dp, dp, pm.data(), 1, kKeyBlock, dot_tile.data(), dp, nb, dp, n);
            gemm_tile<true>(gk + j0 * dp, dp, dsm.data(), 1, kKeyBlock, qt.data(), dp, nb, dp, n);
            gemm_tile<true>(dqt.data(), dp, dsm.data(), kKeyBlock, 1, k_rows + j0 * dp, dp, n, dp, nb);
          }
          for (int64_t r = 0; r < n; ++r) copy_floats(dq + (base + r * H) * d, dqt.data() + r * dp, d);
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
          const float* sk = dk_h.data() + ((b * H + h) * T + i) * dp;
          const float* sv = dv_h.data() + ((b * H + h) * T + i) * dp;
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
