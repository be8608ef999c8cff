// The fast CPU backend: oneDNN matmuls (dnnl_gemm.cpp), OpenMP-parallel elementwise/norm/softmax kernels, and a
// tiled attention (cpu_attention.cpp). Every kernel here has its scalar oracle in reference_backend.cpp and a test in
// tests/backend/cpu comparing the two on random inputs. Frozen-weight gemms (bf16 / 4-bit LoRA bases): cpu_frozen.cpp.
// This file (with cpu_attention.cpp) is compiled once per CPU variant: as itself for the baseline x86-64 build, and
// included by fast_backend_avx2.cpp / fast_backend_avx512.cpp with SFT_CPU_VARIANT set, so the same loops are
// vectorised for each ISA and cpu_dispatch.cpp picks the best one the running CPU supports (see cpu_variant.h).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_attention.h"
#include "backend/cpu/cpu_frozen.h"
#include "backend/cpu/cpu_memory.h"
#include "backend/cpu/dnnl_gemm.h"
#include "backend/cpu/fast_math.h"
#include "util/bf16.h"

SFT_CPU_TARGET_BEGIN
namespace sft::backend::cpu::SFT_CPU_VARIANT {
#include "backend/cpu/cpu_vec.h"
namespace {

constexpr int64_t kGrain = 1 << 14;  // elementwise loops below this size are not worth waking threads for
constexpr float kGeluBeta = 0.7978845608028654f;  // sqrt(2 / pi), as torch's gelu(approximate="tanh")
constexpr float kGeluKappa = 0.044715f;

// x = c * tanh(x / c) over n floats, in vectors (Gemma 2's logit soft-capping, torch's order: divide, tanh, scale).
void cap_block(float* x, int64_t n, float c) {
  int64_t i = 0;
  for (; i + kVec <= n; i += kVec) vstore(x + i, c * vtanh(vload(x + i) / c));
  for (; i < n; ++i) x[i] = c * fast_tanh(x[i] / c);
}

class CpuBackend final : public CpuMemoryBackend {
 public:
  std::string name() const override { return "cpu"; }
  std::string variant() const { return SFT_CPU_VARIANT_NAME; }

  void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a) override {
    const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(a.beta1), static_cast<double>(a.step)));
    const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(a.beta2), static_cast<double>(a.step)));
    const float decay = 1.0f - a.lr * a.weight_decay, step_size = a.lr / bc1, inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
#pragma omp parallel for simd if (n > kGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i];
      const float mi = a.beta1 * m[i] + (1.0f - a.beta1) * gi;
      const float vi = a.beta2 * v[i] + (1.0f - a.beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) * inv_sqrt_bc2 + a.eps);
    }
  }
  double sum_squares(const float* x, int64_t n) override {
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > kGrain) schedule(static)
    for (int64_t c = 0; c < n; c += 4096) {
      float part = 0;  // fp32 inside a short block, double across blocks
      const int64_t e = std::min(n, c + 4096);
#pragma omp simd reduction(+ : part)
      for (int64_t i = c; i < e; ++i) part += x[i] * x[i];
      s += part;
    }
    return s;
  }
  void scale(float* x, float s, int64_t n) override {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
  }
  void add(float* y, const float* x, int64_t n) override {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  }
  void f32_to_bf16(uint16_t* dst, const float* src, int64_t n) override {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]);
  }
  void bf16_to_f32(float* dst, const uint16_t* src, int64_t n) override {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i]);
  }

  void round_to_bf16(float* dst, const float* src, int64_t n) override {
#pragma omp parallel for simd if (n > kGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(float_to_bf16(src[i]));
  }
  // The AVX-512 variant with oneDNN's native bf16 matmul; AVX2/generic report false even on a CPU that has one, so a
  // forced SFT_CPU_KERNELS=avx2 behaves as an AVX2-only CPU (emulated bf16, fp32 frozen-weight tiles).
  bool fast_bf16_gemm() const override { return variant_native_bf16(); }
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
            const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab) override {
    dnnl_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ab);
  }
  void frozen_gemm(bool trans_w, int64_t M, const void* X, int64_t ldx, DType x_dt, const FrozenWeight& W, DType w_dt,
                   float beta, float* Y, int64_t ldy) override {
    frozen_gemm_panels(trans_w, M, X, ldx, x_dt, W, w_dt, beta, Y, ldy);
  }
  void frozen_embedding(float* out, const FrozenWeight& table, const int32_t* ids, int64_t n, DType w_dt) override {
    frozen_embedding_rows(out, table, ids, n, w_dt);
  }
  void add_bias(float* y, const float* bias, int64_t rows, int64_t cols) override {
#pragma omp parallel for if (rows * cols > kGrain) schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      float* yr = y + r * cols;
#pragma omp simd
      for (int64_t c = 0; c < cols; ++c) yr[c] += bias[c];
    }
  }
  void bias_grad(float* db, const float* dy, int64_t rows, int64_t cols) override {
    // columns split across threads: each thread owns its columns, so no reduction race.
#pragma omp parallel for if (rows * cols > kGrain) schedule(static)
    for (int64_t c0 = 0; c0 < cols; c0 += 64) {
      const int64_t c1 = std::min(cols, c0 + 64);
      float acc[64] = {};
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += dy[r * cols + c];
      for (int64_t c = c0; c < c1; ++c) db[c] += acc[c - c0];
    }
  }

  void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n, int64_t H) override {
#pragma omp parallel for if (n * H > kGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) std::copy_n(table + static_cast<int64_t>(ids[i]) * H, H, out + i * H);
  }
  void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t n, int64_t H) override {
    // hidden columns split across threads (a token id may repeat, so rows cannot be split without atomics).
#pragma omp parallel if (n * H > kGrain)
    {
      const int nt = omp_get_num_threads(), t = omp_get_thread_num();
      const int64_t h0 = H * t / nt, h1 = H * (t + 1) / nt;
      for (int64_t i = 0; i < n; ++i) {
        float* dst = dtable + static_cast<int64_t>(ids[i]) * H;
        const float* src = dout + i * H;
#pragma omp simd
        for (int64_t h = h0; h < h1; ++h) dst[h] += src[h];
      }
    }
  }

  // w_offset 0 keeps the plain gain loop (no + 0.0f per element); 1 is Gemma's (1 + w), added in fp32 as torch does.
  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t H, float eps,
                       float w_offset) override {
#pragma omp parallel for if (n * H > kGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * H;
      float ss = 0;
#pragma omp simd reduction(+ : ss)
      for (int64_t h = 0; h < H; ++h) ss += xi[h] * xi[h];
      const float r = 1.0f / std::sqrt(ss / static_cast<float>(H) + eps);
      rstd[i] = r;
      float* yi = y + i * H;
      if (w_offset == 0.0f) {
#pragma omp simd
        for (int64_t h = 0; h < H; ++h) yi[h] = w[h] * (xi[h] * r);
      } else {
#pragma omp simd
        for (int64_t h = 0; h < H; ++h) yi[h] = (w[h] + w_offset) * (xi[h] * r);
      }
    }
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                        int64_t n, int64_t H, float w_offset) override {
    std::vector<float> gain;  // w + w_offset (Gemma), computed once; w itself when the offset is 0
    if (w_offset != 0.0f) {
      gain.resize(static_cast<size_t>(H));
      for (int64_t h = 0; h < H; ++h) gain[h] = w[h] + w_offset;
      w = gain.data();
    }
    const int nt = (n * H > kGrain) ? omp_get_max_threads() : 1;
    std::vector<float> dw_part(static_cast<size_t>(nt * H), 0.0f);  // per-thread dw, summed at the end
#pragma omp parallel num_threads(nt)
    {
      float* dwt = dw_part.data() + static_cast<int64_t>(omp_get_thread_num()) * H;
#pragma omp for schedule(static)
      for (int64_t i = 0; i < n; ++i) {
        const float* xi = x + i * H;
        const float* dyi = dy + i * H;
        const float r = rstd[i];
        float dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int64_t h = 0; h < H; ++h) dot += dyi[h] * w[h] * xi[h];
        const float mean = dot * r / static_cast<float>(H);
        float* dxi = dx + i * H;
#pragma omp simd
        for (int64_t h = 0; h < H; ++h) {
          const float xhat = xi[h] * r;
          dxi[h] += r * (dyi[h] * w[h] - xhat * mean);
          dwt[h] += dyi[h] * xhat;
        }
      }
    }
    for (int t = 0; t < nt; ++t)
      for (int64_t h = 0; h < H; ++h) dw[h] += dw_part[t * H + h];
  }

  // cos/sin are the expensive part (scalar libm calls, d/2 of each per token against d*heads multiply-adds), and a
  // batch repeats positions (every row starts at 0; packed documents restart), so they are computed once per
  // distinct position into a [max_pos + 1, d/2] table (the same float(pos) * inv_freq angle: bit-identical values),
  // unless the positions are sparse (max_pos >= n: then per token, as the reference does).
  void rope(float* x, const int32_t* pos, const float* inv_freq, int64_t n, int64_t heads, int64_t d,
            bool inverse) override {
    const int64_t half = d / 2;
    int32_t max_pos = -1;
    bool nonneg = true;
    for (int64_t i = 0; i < n; ++i) {
      max_pos = std::max(max_pos, pos[i]);
      nonneg = nonneg && pos[i] >= 0;
    }
    const bool table = nonneg && max_pos < n;
    const int64_t rows = table ? int64_t(max_pos) + 1 : n;
    std::vector<float> cs(static_cast<size_t>(rows * half)), sn(cs.size());
#pragma omp parallel for if (rows * half > 4096) schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t f = 0; f < half; ++f) {
        const float angle = static_cast<float>(table ? int32_t(r) : pos[r]) * inv_freq[f];
        cs[r * half + f] = std::cos(angle);
        sn[r * half + f] = inverse ? -std::sin(angle) : std::sin(angle);
      }
#pragma omp parallel for if (n * heads * d > kGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const float* c = cs.data() + (table ? pos[i] : i) * half;
      const float* sv = sn.data() + (table ? pos[i] : i) * half;
      for (int64_t h = 0; h < heads; ++h) {
        float* lo = x + (i * heads + h) * d;
        float* hi = lo + half;
#pragma omp simd
        for (int64_t f = 0; f < half; ++f) {
          const float a = lo[f], b = hi[f];
          lo[f] = a * c[f] - b * sv[f];
          hi[f] = b * c[f] + a * sv[f];
        }
      }
    }
  }

  bool attention_shares_keys() const override { return true; }
  bool attention_skips_other_documents() const override { return true; }  // key blocks of the query's documents only
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* doc,
                         const AttnShape& s) override {
    attention_forward_tiled(out, lse, q, k, v, doc, s);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const int32_t* doc,
                          const AttnShape& s) override {
    attention_backward_tiled(dq, dk, dv, dout, q, k, v, out, lse, doc, s);
  }

  // SwiGLU loops in explicit vectors (cpu_vec.h) + a scalar tail with the same math; blocks of 4096 per OpenMP task.
  void swiglu_forward(float* h, const float* gate, const float* up, int64_t n) override {
#pragma omp parallel for if (n > kGrain) schedule(static)
    for (int64_t b = 0; b < n; b += 4096) {
      const int64_t e = std::min(n, b + 4096);
      int64_t i = b;
      for (; i + kVec <= e; i += kVec) {
        const vfloat g = vload(gate + i);
        vstore(h + i, g / (1.0f + vexp(-g)) * vload(up + i));
      }
      for (; i < e; ++i) {
        const float g = gate[i];
        h[i] = g / (1.0f + fast_exp(-g)) * up[i];
      }
    }
  }
  void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                       int64_t n) override {
#pragma omp parallel for if (n > kGrain) schedule(static)
    for (int64_t b = 0; b < n; b += 4096) {
      const int64_t e = std::min(n, b + 4096);
      int64_t i = b;
      for (; i + kVec <= e; i += kVec) {
        const vfloat g = vload(gate + i), u = vload(up + i), d = vload(dh + i), sg = 1.0f / (1.0f + vexp(-g));
        vstore(dup + i, d * g * sg);  // every load above comes first: dup/dgate may be up/gate (in place)
        vstore(dgate + i, d * u * sg * (1.0f + g * (1.0f - sg)));
      }
      for (; i < e; ++i) {
        const float g = gate[i], u = up[i], d = dh[i], sg = 1.0f / (1.0f + fast_exp(-g));
        dup[i] = d * g * sg;
        dgate[i] = d * u * sg * (1.0f + g * (1.0f - sg));
      }
    }
  }

  // GeGLU loops as SwiGLU's (vectors + scalar tail with the same math), torch's gelu(approximate="tanh") formula.
  void geglu_forward(float* h, const float* gate, const float* up, int64_t n) override {
#pragma omp parallel for if (n > kGrain) schedule(static)
    for (int64_t b = 0; b < n; b += 4096) {
      const int64_t e = std::min(n, b + 4096);
      int64_t i = b;
      for (; i + kVec <= e; i += kVec) {
        const vfloat g = vload(gate + i);
        const vfloat t = vtanh(kGeluBeta * (g + kGeluKappa * (g * g * g)));
        vstore(h + i, 0.5f * g * (1.0f + t) * vload(up + i));
      }
      for (; i < e; ++i) {
        const float g = gate[i], t = fast_tanh(kGeluBeta * (g + kGeluKappa * (g * g * g)));
        h[i] = 0.5f * g * (1.0f + t) * up[i];
      }
    }
  }
  void geglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                      int64_t n) override {
#pragma omp parallel for if (n > kGrain) schedule(static)
    for (int64_t b = 0; b < n; b += 4096) {
      const int64_t e = std::min(n, b + 4096);
      int64_t i = b;
      for (; i + kVec <= e; i += kVec) {
        const vfloat g = vload(gate + i), u = vload(up + i), d = vload(dh + i), g2 = g * g;
        const vfloat t = vtanh(kGeluBeta * (g + kGeluKappa * (g2 * g)));
        const vfloat dgelu = 0.5f * (1.0f + t) + 0.5f * g * (1.0f - t * t) * (kGeluBeta * (1.0f + 3.0f * kGeluKappa * g2));
        vstore(dup + i, d * (0.5f * g * (1.0f + t)));  // every load above comes first (in place allowed)
        vstore(dgate + i, d * u * dgelu);
      }
      for (; i < e; ++i) {
        const float g = gate[i], u = up[i], d = dh[i], g2 = g * g;
        const float t = fast_tanh(kGeluBeta * (g + kGeluKappa * (g2 * g)));
        const float dgelu = 0.5f * (1.0f + t) + 0.5f * g * (1.0f - t * t) * (kGeluBeta * (1.0f + 3.0f * kGeluKappa * g2));
        dup[i] = d * (0.5f * g * (1.0f + t));
        dgate[i] = d * u * dgelu;
      }
    }
  }

  void logit_softcap(float* x, int64_t n, float c) override {
#pragma omp parallel for if (n > kGrain) schedule(static)
    for (int64_t b = 0; b < n; b += 4096) cap_block(x + b, std::min<int64_t>(4096, n - b), c);
  }

  void softmax_cross_entropy(float* logits, float* loss, uint8_t* greedy, const int32_t* targets, int64_t rows,
                             int64_t V, float grad_scale, float softcap) override {
#pragma omp parallel for schedule(dynamic, 1) if (rows * V > kGrain)
    for (int64_t r = 0; r < rows; ++r) {
      float* x = logits + r * V;
      const int32_t t = targets[r];
      if (t < 0) {
        loss[r] = 0;
        if (greedy) greedy[r] = 0;
        if (grad_scale != 0.0f) std::fill(x, x + V, 0.0f);
        continue;
      }
      // One pass for max and sum: blocks of 2048 logits (8 KB, in L1) get their max, the running sum is rescaled
      // when the max grows, and the block's exp-sum is taken while it is still in L1 (the row itself, 600 KB for a
      // 151,936 vocabulary, does not fit in L2: a separate max pass would stream it from memory once more).
      // With a gradient to produce, the block's exp(x - block max) values are stored in place and the gradient pass
      // only rescales them by exp(block max - lse): one exp per logit instead of two. (When the argmax flag is also
      // wanted the logits must survive the first pass, so that rare combination keeps the two-exp form.)
      // Soft-capped logits (Gemma 2) are capped in place first; their gradient needs the capped values in the last
      // pass (dz/dx = 1 - (z/c)^2), so they take the two-exp form too.
      if (softcap > 0) cap_block(x, V, softcap);
      const bool store = grad_scale != 0.0f && greedy == nullptr && softcap <= 0;
      const int64_t n_blocks = (V + 2047) / 2048;
      float block_max_small[128];
      std::vector<float> block_max_big;
      float* bmax = block_max_small;
      if (store && n_blocks > 128) {
        block_max_big.resize(static_cast<size_t>(n_blocks));
        bmax = block_max_big.data();
      }
      float mx = -std::numeric_limits<float>::infinity();
      double sum = 0;  // double across blocks of fp32 partial sums
      const float xt = x[t];
      for (int64_t c = 0, blk = 0; c < V; c += 2048, ++blk) {
        const int64_t e = std::min(V, c + 2048);
        vfloat vm = vsplat(-std::numeric_limits<float>::infinity());
        int64_t j = c;
        for (; j + kVec <= e; j += kVec) vm = vmax(vm, vload(x + j));
        float bm = hmax(vm);
        for (; j < e; ++j) bm = std::max(bm, x[j]);
        if (bm > mx) {
          if (sum != 0) sum *= std::exp(static_cast<double>(mx) - static_cast<double>(bm));
          mx = bm;
        }
        float part;
        if (store) {  // p = exp(x - bm) kept in place; sum in units of exp(mx)
          vfloat vs = vfloat{};
          const vfloat vb = vsplat(bm);
          for (j = c; j + kVec <= e; j += kVec) {
            const vfloat pj = vexp(vload(x + j) - vb);
            vstore(x + j, pj);
            vs += pj;
          }
          part = hsum(vs);
          for (; j < e; ++j) part += (x[j] = fast_exp(x[j] - bm));
          bmax[blk] = bm;
          sum += static_cast<double>(part) * std::exp(static_cast<double>(bm) - static_cast<double>(mx));
        } else {
          vfloat vs = vfloat{};
          const vfloat vmx = vsplat(mx);
          for (j = c; j + kVec <= e; j += kVec) vs += vexp(vload(x + j) - vmx);
          part = hsum(vs);
          for (; j < e; ++j) part += fast_exp(x[j] - mx);
          sum += part;
        }
      }
      const float lse = mx + static_cast<float>(std::log(sum));
      loss[r] = lse - xt;
      if (greedy) {
        // argmax with lowest-index ties equals t  <=>  x[t] == max and no earlier index reaches it
        bool g = (xt == mx);
        for (int64_t j = 0; g && j < t; ++j) g = x[j] < mx;
        greedy[r] = g ? 1 : 0;
      }
      if (store) {
        for (int64_t c = 0, blk = 0; c < V; c += 2048, ++blk) {
          const int64_t e = std::min(V, c + 2048);
          const float f = grad_scale * static_cast<float>(std::exp(static_cast<double>(bmax[blk]) - lse));
          const vfloat vf = vsplat(f);
          int64_t j = c;
          for (; j + kVec <= e; j += kVec) vstore(x + j, vload(x + j) * vf);
          for (; j < e; ++j) x[j] *= f;
        }
        x[t] -= grad_scale;
      } else if (grad_scale != 0.0f && softcap > 0) {
        const vfloat vl = vsplat(lse);
        int64_t j = 0;
        for (; j + kVec <= V; j += kVec) {
          const vfloat z = vload(x + j), zc = z / softcap;
          vstore(x + j, grad_scale * vexp(z - vl) * (1.0f - zc * zc));
        }
        for (; j < V; ++j) {
          const float zc = x[j] / softcap;
          x[j] = grad_scale * fast_exp(x[j] - lse) * (1.0f - zc * zc);
        }
        const float zc = xt / softcap;  // the target: (p - 1) times the same factor
        x[t] = (grad_scale * fast_exp(xt - lse) - grad_scale) * (1.0f - zc * zc);
      } else if (grad_scale != 0.0f) {
        const vfloat vl = vsplat(lse);
        int64_t j = 0;
        for (; j + kVec <= V; j += kVec) vstore(x + j, grad_scale * vexp(vload(x + j) - vl));
        for (; j < V; ++j) x[j] = grad_scale * fast_exp(x[j] - lse);
        x[t] -= grad_scale;
      }
    }
  }
};

}  // namespace

std::unique_ptr<Backend> make_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace sft::backend::cpu::SFT_CPU_VARIANT
SFT_CPU_TARGET_END
