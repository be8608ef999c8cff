// The plain scalar reference of every kernel of backend.h: single-threaded, straightforward loops, double accumulators.
// It is the oracle the fast CPU kernels (fast_backend.cpp) and the CUDA kernels are tested against, so it favours
// being obviously right over being fast. Never used on a real training path.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

#include "backend/cpu/cpu_memory.h"
#include "backend/quant4.h"
#include "util/bf16.h"

namespace sft::backend::cpu {
namespace {

float load(const void* p, int64_t i, DType dt) {
  return dt == DType::F32 ? static_cast<const float*>(p)[i] : bf16_to_float(static_cast<const uint16_t*>(p)[i]);
}

// gelu(x, approximate="tanh") in double, and its derivative when asked.
double gelu_tanh(double x, double* derivative = nullptr) {
  const double k = std::sqrt(2.0 / std::numbers::pi), c = 0.044715;
  const double t = std::tanh(k * (x + c * x * x * x));
  if (derivative) *derivative = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3.0 * c * x * x);
  return 0.5 * x * (1.0 + t);
}

class CpuReferenceBackend final : public CpuMemoryBackend {
 public:
  std::string name() const override { return "cpu-reference"; }

  void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const AdamWArgs& a) override {
    const double bc1 = 1.0 - std::pow(static_cast<double>(a.beta1), static_cast<double>(a.step));
    const double bc2 = 1.0 - std::pow(static_cast<double>(a.beta2), static_cast<double>(a.step));
    for (int64_t i = 0; i < n; ++i) {
      p[i] -= a.lr * a.weight_decay * p[i];
      m[i] = a.beta1 * m[i] + (1.0f - a.beta1) * g[i];
      v[i] = a.beta2 * v[i] + (1.0f - a.beta2) * g[i] * g[i];
      const double denom = std::sqrt(v[i] / bc2) + a.eps;
      p[i] -= static_cast<float>(a.lr * (m[i] / bc1) / denom);
    }
  }
  double sum_squares(const float* x, int64_t n) override {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
    return s;
  }
  void scale(float* x, float s, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
  }
  void add(float* y, const float* x, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
  }
  void f32_to_bf16(uint16_t* dst, const float* src, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bf16(src[i]);
  }
  void bf16_to_f32(float* dst, const uint16_t* src, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(src[i]);
  }

  void round_to_bf16(float* dst, const float* src, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_float(float_to_bf16(src[i]));
  }
  bool fast_bf16_gemm() const override { return true; }  // the oracle multiplies bf16 operands as they are
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda,
            const void* B, int64_t ldb, float beta, float* C, int64_t ldc, DType ab) override {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) {
          const float a = load(A, ta ? k * lda + i : i * lda + k, ab);
          const float b = load(B, tb ? j * ldb + k : k * ldb + j, ab);
          acc += static_cast<double>(a) * b;
        }
        float& c = C[i * ldc + j];
        c = static_cast<float>(alpha * acc + (beta == 0.0f ? 0.0 : static_cast<double>(beta) * c));
      }
  }
  // The weight's values through the host dequantisation of quant4.cpp (the format's definition), whole; products
  // summed in double.
  void frozen_gemm(bool trans_w, int64_t M, const void* X, int64_t ldx, DType x_dt, const FrozenWeight& W, DType w_dt,
                   float beta, float* Y, int64_t ldy) override {
    check_frozen_call("frozen_gemm", W, x_dt, w_dt, beta);
    std::vector<float> w(static_cast<size_t>(W.numel()));
    dequantize_host(W, 0, W.numel(), w_dt == DType::BF16 && W.quantized(), w.data());
    const int64_t N = trans_w ? W.rows : W.cols, K = trans_w ? W.cols : W.rows;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k)
          acc += static_cast<double>(load(X, i * ldx + k, x_dt)) * w[trans_w ? j * W.cols + k : k * W.cols + j];
        float& y = Y[i * ldy + j];
        y = static_cast<float>(acc + (beta == 0.0f ? 0.0 : static_cast<double>(y)));
      }
  }
  void frozen_embedding(float* out, const FrozenWeight& table, const int32_t* ids, int64_t n, DType w_dt) override {
    check_frozen_call("frozen_embedding", table, DType::F32, w_dt, 0.0f);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t e0 = static_cast<int64_t>(ids[i]) * table.cols;
      dequantize_host(table, e0, e0 + table.cols, w_dt == DType::BF16 && table.quantized(), out + i * table.cols);
    }
  }
  void add_bias(float* y, const float* bias, int64_t rows, int64_t cols) override {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) y[r * cols + c] += bias[c];
  }
  void bias_grad(float* db, const float* dy, int64_t rows, int64_t cols) override {
    for (int64_t c = 0; c < cols; ++c) {
      double s = 0;
      for (int64_t r = 0; r < rows; ++r) s += dy[r * cols + c];
      db[c] += static_cast<float>(s);
    }
  }

  void embedding_forward(float* out, const float* table, const int32_t* ids, int64_t n, int64_t H) override {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < H; ++h) out[i * H + h] = table[static_cast<int64_t>(ids[i]) * H + h];
  }
  void embedding_backward(float* dtable, const float* dout, const int32_t* ids, int64_t n, int64_t H) override {
    for (int64_t i = 0; i < n; ++i)
      for (int64_t h = 0; h < H; ++h) dtable[static_cast<int64_t>(ids[i]) * H + h] += dout[i * H + h];
  }

  void rmsnorm_forward(float* y, float* rstd, const float* x, const float* w, int64_t n, int64_t H, float eps,
                       float w_offset) override {
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * H;
      double ss = 0;
      for (int64_t h = 0; h < H; ++h) ss += static_cast<double>(xi[h]) * xi[h];
      const float r = static_cast<float>(1.0 / std::sqrt(ss / H + eps));
      rstd[i] = r;
      for (int64_t h = 0; h < H; ++h) y[i * H + h] = (w[h] + w_offset) * (xi[h] * r);  // the gain in fp32
    }
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* rstd,
                        int64_t n, int64_t H, float w_offset) override {
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * H;
      const float* dyi = dy + i * H;
      const double r = rstd[i];
      double dot = 0;  // sum_h dy*g*xhat
      for (int64_t h = 0; h < H; ++h) dot += static_cast<double>(dyi[h]) * (w[h] + w_offset) * xi[h] * r;
      const double mean = dot / H;
      for (int64_t h = 0; h < H; ++h) {
        const double xhat = xi[h] * r;
        dx[i * H + h] += static_cast<float>(r * (dyi[h] * static_cast<double>(w[h] + w_offset) - xhat * mean));
        dw[h] += static_cast<float>(dyi[h] * xhat);
      }
    }
  }

  void rope(float* x, const int32_t* pos, const float* inv_freq, int64_t n, int64_t heads, int64_t d,
            bool inverse) override {
    const int64_t half = d / 2;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t f = 0; f < half; ++f) {
        const float angle = static_cast<float>(pos[i]) * inv_freq[f];
        const float c = std::cos(angle), s = inverse ? -std::sin(angle) : std::sin(angle);
        for (int64_t h = 0; h < heads; ++h) {
          float* xh = x + (i * heads + h) * d;
          const float a = xh[f], b = xh[f + half];
          xh[f] = a * c - b * s;
          xh[f + half] = b * c + a * s;
        }
      }
  }

  bool attention_shares_keys() const override { return true; }
  bool attention_skips_other_documents() const override { return true; }  // dot products of same-document pairs only
  // Key j visible from query position i of the same row (AttnShape: causal, same document, inside the window).
  static bool visible(const AttnShape& s, const int32_t* doc, int64_t ti, int64_t tj, int64_t i, int64_t j) {
    return j <= i && doc[tj] == doc[ti] && (s.window <= 0 || i - j < s.window);
  }
  // The score and its derivative with respect to the raw dot product (softcap: c * tanh(scale * dot / c)).
  static double score(const AttnShape& s, double dot, double* dscore_ddot = nullptr) {
    if (s.softcap <= 0) {
      if (dscore_ddot) *dscore_ddot = s.scale;
      return dot * s.scale;
    }
    const double t = std::tanh(dot * s.scale / s.softcap);
    if (dscore_ddot) *dscore_ddot = s.scale * (1.0 - t * t);
    return s.softcap * t;
  }
  void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, const int32_t* doc,
                         const AttnShape& s) override {
    const int64_t d = s.head_dim, rep = s.n_heads / s.n_kv_heads;
    std::vector<double> sc(s.T);
    const int64_t Tq = s.q_len();
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.n_heads; ++h)
        for (int64_t iq = 0; iq < Tq; ++iq) {
          const int64_t i = s.T - Tq + iq;  // key position of this query
          const int64_t ti = b * s.T + i, qrow = b * Tq + iq;
          float* o = out + (qrow * s.n_heads + h) * d;
          const float* qi = q + (qrow * s.n_heads + h) * d;
          std::fill(o, o + d, 0.0f);
          lse[qrow * s.n_heads + h] = 0;
          if (doc[ti] < 0) continue;
          double mx = -std::numeric_limits<double>::infinity();
          for (int64_t j = 0; j <= i; ++j) {
            const int64_t tj = b * s.T + j;
            if (!visible(s, doc, ti, tj, i, j)) continue;
            const int64_t kvj = (j < s.shared_keys ? 0 : b) * s.T + j;  // shared keys live in row 0
            const float* kj = k + (kvj * s.n_kv_heads + h / rep) * d;
            double dot = 0;
            for (int64_t e = 0; e < d; ++e) dot += static_cast<double>(qi[e]) * kj[e];
            sc[j] = score(s, dot);
            mx = std::max(mx, sc[j]);
          }
          double sum = 0;
          std::vector<double> acc(d, 0.0);
          for (int64_t j = 0; j <= i; ++j) {
            const int64_t tj = b * s.T + j;
            if (!visible(s, doc, ti, tj, i, j)) continue;
            const double p = std::exp(sc[j] - mx);
            sum += p;
            const int64_t kvj = (j < s.shared_keys ? 0 : b) * s.T + j;
            const float* vj = v + (kvj * s.n_kv_heads + h / rep) * d;
            for (int64_t e = 0; e < d; ++e) acc[e] += p * vj[e];
          }
          for (int64_t e = 0; e < d; ++e) o[e] = static_cast<float>(acc[e] / sum);
          lse[qrow * s.n_heads + h] = static_cast<float>(mx + std::log(sum));
        }
  }

  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const int32_t* doc,
                          const AttnShape& s) override {
    const int64_t d = s.head_dim, rep = s.n_heads / s.n_kv_heads, N = s.B * s.T;
    SFT_CHECK(s.q_len() == s.T, "attention_backward: needs queries at every position (Tq=", s.Tq, " T=", s.T, ")");
    SFT_CHECK(s.shared_keys == 0, "attention_backward: shared_keys is a forward-only layout");
    std::vector<double> gq(N * s.n_heads * d, 0.0), gk(N * s.n_kv_heads * d, 0.0), gv(N * s.n_kv_heads * d, 0.0);
    for (int64_t b = 0; b < s.B; ++b)
      for (int64_t h = 0; h < s.n_heads; ++h)
        for (int64_t i = 0; i < s.T; ++i) {
          const int64_t ti = b * s.T + i;
          if (doc[ti] < 0) continue;
          const float* qi = q + (ti * s.n_heads + h) * d;
          const float* doi = dout + (ti * s.n_heads + h) * d;
          const float* oi = out + (ti * s.n_heads + h) * d;
          double D = 0;
          for (int64_t e = 0; e < d; ++e) D += static_cast<double>(doi[e]) * oi[e];
          for (int64_t j = 0; j <= i; ++j) {
            const int64_t tj = b * s.T + j;
            if (!visible(s, doc, ti, tj, i, j)) continue;
            const int64_t kvo = (tj * s.n_kv_heads + h / rep) * d;
            double dot = 0, dp = 0;
            for (int64_t e = 0; e < d; ++e) {
              dot += static_cast<double>(qi[e]) * k[kvo + e];
              dp += static_cast<double>(doi[e]) * v[kvo + e];
            }
            double dscore = 0;
            const double p = std::exp(score(s, dot, &dscore) - lse[ti * s.n_heads + h]);
            const double ds = p * (dp - D) * dscore;
            for (int64_t e = 0; e < d; ++e) {
              gq[(ti * s.n_heads + h) * d + e] += ds * k[kvo + e];
              gk[kvo + e] += ds * qi[e];
              gv[kvo + e] += p * doi[e];
            }
          }
        }
    for (size_t i = 0; i < gq.size(); ++i) dq[i] = static_cast<float>(gq[i]);
    for (size_t i = 0; i < gk.size(); ++i) dk[i] = static_cast<float>(gk[i]);
    for (size_t i = 0; i < gv.size(); ++i) dv[i] = static_cast<float>(gv[i]);
  }

  void swiglu_forward(float* h, const float* gate, const float* up, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) {
      const double g = gate[i];
      h[i] = static_cast<float>(g / (1.0 + std::exp(-g)) * up[i]);
    }
  }
  void swiglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                       int64_t n) override {
    for (int64_t i = 0; i < n; ++i) {
      const double g = gate[i], u = up[i], d = dh[i], sg = 1.0 / (1.0 + std::exp(-g));  // read all before writing
      dup[i] = static_cast<float>(d * g * sg);
      dgate[i] = static_cast<float>(d * u * sg * (1.0 + g * (1.0 - sg)));
    }
  }

  void geglu_forward(float* h, const float* gate, const float* up, int64_t n) override {
    for (int64_t i = 0; i < n; ++i) h[i] = static_cast<float>(gelu_tanh(gate[i]) * up[i]);
  }
  void geglu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up,
                      int64_t n) override {
    for (int64_t i = 0; i < n; ++i) {
      double dg = 0;
      const double g = gate[i], u = up[i], d = dh[i], act = gelu_tanh(g, &dg);  // read all before writing
      dup[i] = static_cast<float>(d * act);
      dgate[i] = static_cast<float>(d * u * dg);
    }
  }

  void logit_softcap(float* x, int64_t n, float c) override {
    for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(c * std::tanh(static_cast<double>(x[i]) / c));
  }

  void softmax_cross_entropy(float* logits, float* loss, uint8_t* greedy, const int32_t* targets, int64_t rows,
                             int64_t V, float grad_scale, float softcap) override {
    for (int64_t r = 0; r < rows; ++r) {
      float* x = logits + r * V;
      const int32_t t = targets[r];
      if (t < 0) {
        loss[r] = 0;
        if (greedy) greedy[r] = 0;
        if (grad_scale != 0.0f) std::fill(x, x + V, 0.0f);
        continue;
      }
      if (softcap > 0) logit_softcap(x, V, softcap);  // x now holds z; dz/dx = 1 - (z/c)^2 below
      double mx = x[0];
      int64_t arg = 0;
      for (int64_t j = 1; j < V; ++j)
        if (x[j] > mx) mx = x[j], arg = j;
      double sum = 0;
      for (int64_t j = 0; j < V; ++j) sum += std::exp(x[j] - mx);
      const double lse = mx + std::log(sum);
      loss[r] = static_cast<float>(lse - x[t]);
      if (greedy) greedy[r] = (arg == t) ? 1 : 0;
      if (grad_scale != 0.0f) {
        for (int64_t j = 0; j < V; ++j) {
          const double z = x[j], dz = softcap > 0 ? 1.0 - (z / softcap) * (z / softcap) : 1.0;
          x[j] = static_cast<float>(grad_scale * (std::exp(z - lse) - (j == t ? 1.0 : 0.0)) * dz);
        }
      }
    }
  }
};

}  // namespace

std::unique_ptr<Backend> make_reference_backend_impl() { return std::make_unique<CpuReferenceBackend>(); }

}  // namespace sft::backend::cpu

namespace sft::backend {
std::unique_ptr<Backend> make_cpu_reference_backend() { return cpu::make_reference_backend_impl(); }
}  // namespace sft::backend
