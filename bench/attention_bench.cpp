// The attention kernels on the shapes that matter, against the gemm of the same backend in the same run: the
// training step's causal attention (forward and backward; SmolLM2-135M and Qwen2.5-0.5B head layouts, batch 4 x 512)
// and the evaluator's branch scoring (`sft eval` 5-shot MMLU: a batch of questions after one shared few-shot prefix,
// model::Model::KVSession::append_branches), and Gemma 2's head layout (head_dim 256) with and without its score
// soft-cap and with a sliding window (128 here, to make the window cut keys at T = 512; the published window is 4096).
// Prints the kernel variant (ISA), GFLOP/s of each (FLOPs counted over the visible query/key pairs only: 4 d per pair
// forward, 10 d backward), the median of --reps calls, and the gemm GFLOP/s of a [tokens x H] x [H x 3H] fp32 matmul
// through Backend::gemm as the yardstick. Prints JSON lines.
// usage: attention_bench [--reps 7] [--threads N (default: OpenMP's)] [--only SUBSTRING (cases whose name has it)]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_dispatch.h"

using namespace sft;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class F>
double time_median(int reps, F&& f) {
  f();  // warm-up (first-touch of scratch, thread pool)
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(t);
}

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

struct Case {
  std::string name;
  backend::AttnShape s;
  std::vector<int32_t> doc;  // [B*T]
  bool backward = false;
};

// Visible (query, key) pairs under the doc-id causal mask (a query sees earlier keys of its document in its row, inside
// the window when there is one).
double visible_pairs(const Case& c) {
  const auto& s = c.s;
  const int64_t Tq = s.q_len();
  double pairs = 0;
  for (int64_t b = 0; b < s.B; ++b)
    for (int64_t i = s.T - Tq; i < s.T; ++i) {
      const int32_t d = c.doc[b * s.T + i];
      if (d < 0) continue;
      for (int64_t j = 0; j <= i; ++j) pairs += c.doc[b * s.T + j] == d && (s.window <= 0 || i - j < s.window);
    }
  return pairs * s.n_heads;
}

void run_case(backend::Backend& be, const Case& c, int reps, double gemm_gflops) {
  const auto& s = c.s;
  const int64_t Tq = s.q_len(), d = s.head_dim;
  const size_t nq = static_cast<size_t>(s.B * Tq * s.n_heads * d), nk = static_cast<size_t>(s.B * s.T * s.n_kv_heads * d);
  auto q = randn(nq, 1), k = randn(nk, 2), v = randn(nk, 3), dout = randn(nq, 4);
  std::vector<float> out(nq), lse(static_cast<size_t>(s.B * Tq * s.n_heads)), dq(nq), dk(nk), dv(nk);
  const double pairs = visible_pairs(c);
  const double fwd = time_median(reps, [&] {
    be.attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), c.doc.data(), s);
  });
  const double fwd_gf = 4.0 * d * pairs / fwd * 1e-9;
  std::printf("{\"case\": \"%s\", \"pass\": \"forward\", \"B\": %ld, \"T\": %ld, \"Tq\": %ld, \"heads\": %ld, "
              "\"kv_heads\": %ld, \"head_dim\": %ld, \"softcap\": %g, \"window\": %ld, \"median_ms\": %.3f, "
              "\"gflops\": %.1f, \"of_gemm\": %.2f}\n",
              c.name.c_str(), s.B, s.T, Tq, s.n_heads, s.n_kv_heads, d, s.softcap, s.window, fwd * 1e3, fwd_gf,
              fwd_gf / gemm_gflops);
  if (!c.backward) return;
  const double bwd = time_median(reps, [&] {
    be.attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out.data(),
                          lse.data(), c.doc.data(), s);
  });
  const double bwd_gf = 10.0 * d * pairs / bwd * 1e-9;
  std::printf("{\"case\": \"%s\", \"pass\": \"backward\", \"median_ms\": %.3f, \"gflops\": %.1f, \"of_gemm\": %.2f}\n",
              c.name.c_str(), bwd * 1e3, bwd_gf, bwd_gf / gemm_gflops);
}

Case training(const std::string& name, int64_t H, int64_t KV) {
  Case c;
  c.name = name;
  c.s.B = 4, c.s.T = 512, c.s.n_heads = H, c.s.n_kv_heads = KV, c.s.head_dim = 64;
  c.s.scale = 0.125f;
  c.doc.assign(static_cast<size_t>(c.s.B * c.s.T), 0);
  // Packed rows of several documents each (as the trainer's packing makes them), a padded tail on the last row.
  for (int64_t b = 0; b < c.s.B; ++b)
    for (int64_t i = 0; i < c.s.T; ++i) c.doc[b * c.s.T + i] = static_cast<int32_t>(i / 200);
  for (int64_t i = 480; i < c.s.T; ++i) c.doc[(c.s.B - 1) * c.s.T + i] = -1;
  c.backward = true;
  return c;
}

// Samples of these lengths as the trainer lays a micro-batch out: padded (one row each, right-padded to the longest),
// padding-free (one row of all of them, a document each) or, as the yardstick of what a row of that many tokens would
// cost if attention did not skip other documents, one document over the whole padding-free row. The printed GFLOP/s
// count visible pairs only, so padding-free at the padded layout's GFLOP/s means its time follows sum(len^2).
Case samples_layout(const std::string& name, int64_t H, int64_t KV, const std::vector<int64_t>& lengths, int layout) {
  Case c;
  c.name = name;
  int64_t total = 0, longest = 0;
  for (int64_t n : lengths) total += n, longest = std::max(longest, n);
  const bool padded = layout == 0;
  c.s.B = padded ? static_cast<int64_t>(lengths.size()) : 1, c.s.T = padded ? longest : total;
  c.s.n_heads = H, c.s.n_kv_heads = KV, c.s.head_dim = 64, c.s.scale = 0.125f;
  c.doc.assign(static_cast<size_t>(c.s.B * c.s.T), -1);
  int64_t at = 0;
  for (size_t r = 0; r < lengths.size(); ++r)
    for (int64_t i = 0; i < lengths[r]; ++i, ++at)
      c.doc[padded ? r * c.s.T + i : at] = layout == 2 ? 0 : static_cast<int32_t>(padded ? 0 : r);
  c.backward = true;
  return c;
}

// Gemma 2 (2B: 8 heads, 4 kv heads, head_dim 256, scale query_pre_attn_scalar^-0.5 = 1/16) in the training layout.
Case gemma2(const std::string& name, float softcap, int64_t window) {
  Case c = training(name, 8, 4);
  c.s.head_dim = 256, c.s.scale = 0.0625f, c.s.softcap = softcap, c.s.window = window;
  return c;
}

// append_branches' layout: nb rows of [prefix P | branch (its own length) | padding to Tb]; shared: the prefix's K/V
// only in row 0 (AttnShape::shared_keys, as append_branches runs it on a backend that supports it).
Case branches(const std::string& name, int64_t nb, int64_t P, int64_t Tb, int64_t H, int64_t KV, bool shared) {
  Case c;
  c.name = name;
  c.s.B = nb, c.s.T = P + Tb, c.s.Tq = Tb, c.s.n_heads = H, c.s.n_kv_heads = KV, c.s.head_dim = 64;
  c.s.shared_keys = shared ? P : 0;
  c.s.scale = 0.125f;
  c.doc.assign(static_cast<size_t>(nb * c.s.T), -1);
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t len = Tb - (b * 7) % 23;  // sorted-by-length batches still differ by a few tokens
    for (int64_t j = 0; j < P + len; ++j) c.doc[b * c.s.T + j] = 0;
  }
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 7;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--reps") reps = std::stoi(argv[i + 1]);
    else if (k == "--only") only = argv[i + 1];
    else if (k == "--threads") omp_set_num_threads(std::stoi(argv[i + 1]));
    else {
      std::fprintf(stderr, "attention_bench: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  auto be = backend::make_cpu_backend();
  const bool can_share = be->attention_shares_keys();
  // Yardstick: the projection gemm of a training step (2048 tokens x 576 -> 3 x 576), fp32, same backend.
  const int64_t M = 2048, K = 576, N = 1728;
  auto a = randn(static_cast<size_t>(M * K), 5), w = randn(static_cast<size_t>(N * K), 6);
  std::vector<float> cbuf(static_cast<size_t>(M * N));
  const double gt = time_median(reps, [&] {
    be->gemm(false, true, M, N, K, 1.0f, a.data(), K, w.data(), K, 0.0f, cbuf.data(), N, backend::DType::F32);
  });
  const double gemm_gflops = 2.0 * M * N * K / gt * 1e-9;
  std::printf("{\"backend\": \"%s\", \"cpu_kernels\": \"%s\", \"threads\": %d, \"gemm_shape\": [%ld, %ld, %ld], "
              "\"gemm_gflops\": %.1f}\n",
              be->name().c_str(), backend::cpu::cpu_kernel_variant().c_str(), omp_get_max_threads(), M, N, K,
              gemm_gflops);
  const std::vector<int64_t> kSamples = {120, 340, 80, 470};
  const std::vector<Case> cases = {training("train smollm2-135m", 9, 3), training("train qwen2.5-0.5b", 14, 2),
                                   branches("eval 5-shot branches smollm2-135m", 8, 600, 90, 9, 3, false),
                                   branches("eval 5-shot branches, shared prefix, smollm2-135m", 8, 600, 90, 9, 3, true),
                                   branches("eval 0-shot branches smollm2-135m", 8, 16, 60, 9, 3, false),
                                   gemma2("train gemma-2-2b heads, no soft-cap", 0.0f, 0),
                                   gemma2("train gemma-2-2b heads, soft-cap 50", 50.0f, 0),
                                   gemma2("train gemma-2-2b heads, soft-cap 50, window 128", 50.0f, 128),
                                   // 4 alpaca-like samples (1010 tokens): padded 4 x 470 vs padding-free 1 x 1010
                                   samples_layout("samples smollm2 padded 4 rows", 9, 3, kSamples, 0),
                                   samples_layout("samples smollm2 padding-free 1 row", 9, 3, kSamples, 1),
                                   samples_layout("samples smollm2 1 row as one document (T^2 yardstick)", 9, 3,
                                                  kSamples, 2)};
  for (const Case& c : cases)
    if (c.name.find(only) != std::string::npos && (c.s.shared_keys == 0 || can_share)) run_case(*be, c, reps, gemm_gflops);
  return 0;
}
