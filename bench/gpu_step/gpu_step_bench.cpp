// One optimizer step of Qwen2.5-0.5B-shaped random weights on the CUDA backend: forward+backward of B x T tokens
// (bf16 GEMMs, fp32 everything else), global grad-norm, clip, AdamW over fp32 masters, bf16 weight refresh.
// Prints one JSON line: tokens/s, step time, MFU (6N + attention FLOPs over the H100/H200 dense bf16 peak 989 TFLOP/s),
// peak backend memory. Exit 3 when the batch does not fit (the caller tries a smaller one).
// Usage: gpu_step_bench [--batch B] [--seq T] [--steps N] [--warmup W] [--f32]
// Built by tests/gpu/CMakeLists.txt (needs SFT_CUDA); run by scripts/gpu-check.sh.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "io/hf_config.h"
#include "model/model.h"
#include "util/error.h"

using namespace sft;

static io::ModelConfig qwen25_05b() {
  io::ModelConfig c;
  c.model_type = "qwen2";
  c.architecture = "Qwen2ForCausalLM";
  c.hidden_size = 896;
  c.intermediate_size = 4864;
  c.num_hidden_layers = 24;
  c.num_attention_heads = 14;
  c.num_key_value_heads = 2;
  c.head_dim = 64;
  c.vocab_size = 151936;
  c.max_position_embeddings = 32768;
  c.rope_theta = 1e6;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  c.torch_dtype = "bfloat16";
  c.eos_token_id = 151643;
  c.pad_token_id = 151643;
  return c;
}

int main(int argc, char** argv) {
  int64_t B = 8, T = 1024, steps = 5, warmup = 2;
  bool f32 = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> int64_t { return i + 1 < argc ? std::atoll(argv[++i]) : 0; };
    if (a == "--batch") B = next();
    else if (a == "--seq") T = next();
    else if (a == "--steps") steps = next();
    else if (a == "--warmup") warmup = next();
    else if (a == "--f32") f32 = true;
    else {
      std::fprintf(stderr, "usage: gpu_step_bench [--batch B] [--seq T] [--steps N] [--warmup W] [--f32]\n");
      return 2;
    }
  }
  try {
    auto be = backend::make_cuda_backend(0);
    auto* cb = dynamic_cast<backend::cuda::CudaBackend*>(be.get());
    const auto cfg = qwen25_05b();
    auto model = model::Model::random(cfg, 1, *be, f32 ? model::Precision::F32 : model::Precision::BF16);
    auto params = model->parameters();
    std::vector<float*> m(params.size()), v(params.size());
    int64_t n_params = 0, n_matmul = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      m[i] = static_cast<float*>(be->alloc(size_t(params[i].numel) * 4));
      v[i] = static_cast<float*>(be->alloc(size_t(params[i].numel) * 4));
      n_params += params[i].numel;
      if (params[i].shape.size() == 2) n_matmul += params[i].numel;
    }
    model::Batch batch;
    batch.B = B;
    batch.T = T;
    std::mt19937 rng(5);
    std::uniform_int_distribution<int32_t> tok(0, int32_t(cfg.vocab_size) - 1);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t t = 0; t < T; ++t) {
        const int32_t id = tok(rng);
        batch.input_ids.push_back(id);
        batch.labels.push_back(id);
        batch.position_ids.push_back(int32_t(t));
        batch.doc_ids.push_back(int32_t(b));
      }
    const int64_t targets = batch.count_targets();
    backend::AdamWArgs args;
    args.lr = 5e-5f;
    args.weight_decay = 0.0f;
    double loss = 0, gnorm = 0;
    auto one_step = [&](int64_t step) {
      model->zero_grad();
      auto ls = model->forward_backward(batch, 1.0f / float(targets));
      loss = ls.sum / double(targets);
      double ss = 0;
      for (auto& p : params) ss += be->sum_squares(p.grad, p.numel);
      gnorm = std::sqrt(ss);
      if (gnorm > 1.0)
        for (auto& p : params) be->scale(p.grad, float(1.0 / gnorm), p.numel);
      args.step = step;
      for (size_t i = 0; i < params.size(); ++i) be->adamw_step(params[i].value, params[i].grad, m[i], v[i], params[i].numel, args);
      model->on_weights_updated();
      be->synchronize();
    };
    for (int64_t s = 1; s <= warmup; ++s) one_step(s);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 1; s <= steps; ++s) one_step(warmup + s);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / double(steps);
    const double tokens = double(B * T);
    const double attn_flops_per_token =
        12.0 * double(cfg.num_hidden_layers * cfg.num_attention_heads * cfg.head_dim) * double(T);
    const double flops_per_token = 6.0 * double(n_matmul) + attn_flops_per_token;
    const double tps = tokens / secs;
    const double mfu = tps * flops_per_token / 989e12;
    const auto mem = cb ? cb->memory_stats() : backend::cuda::MemoryStats{};
    std::printf(
        "{\"impl\":\"sft-cuda\",\"precision\":\"%s\",\"batch\":%lld,\"seq\":%lld,\"step_s\":%.4f,\"tokens_per_s\":%.1f,"
        "\"mfu\":%.4f,\"flops_per_token\":%.4g,\"params\":%lld,\"matmul_params\":%lld,\"peak_mem_gib\":%.2f,"
        "\"loss\":%.4f,\"grad_norm\":%.4f}\n",
        f32 ? "f32" : "bf16", (long long)B, (long long)T, secs, tps, mfu, flops_per_token, (long long)n_params,
        (long long)n_matmul, double(mem.peak_bytes) / double(1ull << 30), loss, gnorm);
    for (size_t i = 0; i < params.size(); ++i) {
      be->free(m[i]);
      be->free(v[i]);
    }
    return 0;
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.find("out of device memory") != std::string::npos || msg.find("out of memory") != std::string::npos) {
      std::printf("{\"impl\":\"sft-cuda\",\"batch\":%lld,\"seq\":%lld,\"oom\":true}\n", (long long)B, (long long)T);
      std::fprintf(stderr, "gpu_step_bench: %s\n", msg.c_str());
      return 3;
    }
    std::fprintf(stderr, "gpu_step_bench: error: %s\n", msg.c_str());
    return 1;
  }
}
