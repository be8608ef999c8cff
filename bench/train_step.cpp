// One training step (forward + backward + AdamW over every parameter) of a Qwen2/Llama-shaped decoder with random
// weights on the CPU backend — sft's side of bench/train_step.sh (the PyTorch peer is bench/peers/torch_step.py).
// Prints one JSON line with the same fields as the peer, plus the per-step breakdown (every kernel call timed by
// backend::TimingBackend, summed per category; "other" = step time not inside any kernel), the gemm FLOP/s, the
// oneDNN version/ISA/matmul implementations that ran and the CPU kernel variant chosen at run time.
// usage: train_step [--shape qwen2.5-0.5b|qwen2.5-1.5b|smollm2-135m] [--batch 4] [--seq 512] [--dtype bf16|fp32]
//                   [--steps 3] [--layers N (override, for quick runs)]
//                   [--lora_r R (LoRA: base frozen, adapters + their AdamW only)] [--lora_targets all-linear|q_proj,...]
//                   [--gradient_checkpointing 0|1 (re-run each layer's forward in the backward)]
//                   [--neftune_noise_alpha A (NEFTune noise on the embeddings of every step; the peer registers
//                    transformers' hook)]
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_dispatch.h"
#include "backend/cpu/dnnl_gemm.h"
#include "backend/timing_backend.h"
#include "model/family.h"
#include "model/model.h"
#include "model/neftune.h"

using namespace sft;

int main(int argc, char** argv) {
  std::string shape = "qwen2.5-0.5b", dtype = "bf16";
  int64_t batch = 4, seq = 512, steps = 3, layers = 0, lora_r = 0, checkpointing = 0;
  std::string lora_targets = "all-linear";
  double neftune_alpha = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--shape") shape = v;
    else if (k == "--dtype") dtype = v;
    else if (k == "--batch") batch = std::stoll(v);
    else if (k == "--seq") seq = std::stoll(v);
    else if (k == "--steps") steps = std::stoll(v);
    else if (k == "--layers") layers = std::stoll(v);
    else if (k == "--lora_r") lora_r = std::stoll(v);
    else if (k == "--lora_targets") lora_targets = v;
    else if (k == "--gradient_checkpointing") checkpointing = std::stoll(v);
    else if (k == "--neftune_noise_alpha") neftune_alpha = std::stod(v);
    else {
      std::fprintf(stderr, "train_step: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  io::ModelConfig c;
  if (shape == "qwen2.5-0.5b") {
    c.model_type = "qwen2", c.hidden_size = 896, c.intermediate_size = 4864, c.num_hidden_layers = 24;
    c.num_attention_heads = 14, c.num_key_value_heads = 2, c.head_dim = 64, c.vocab_size = 151936;
    c.rope_theta = 1e6, c.attention_bias = true, c.tie_word_embeddings = true;
  } else if (shape == "qwen2.5-1.5b") {
    c.model_type = "qwen2", c.hidden_size = 1536, c.intermediate_size = 8960, c.num_hidden_layers = 28;
    c.num_attention_heads = 12, c.num_key_value_heads = 2, c.head_dim = 128, c.vocab_size = 151936;
    c.rope_theta = 1e6, c.attention_bias = true, c.tie_word_embeddings = true;
  } else if (shape == "smollm2-135m") {
    c.model_type = "llama", c.hidden_size = 576, c.intermediate_size = 1536, c.num_hidden_layers = 30;
    c.num_attention_heads = 9, c.num_key_value_heads = 3, c.head_dim = 64, c.vocab_size = 49152;
    c.rope_theta = 1e5, c.attention_bias = false, c.tie_word_embeddings = true;
  } else {
    std::fprintf(stderr, "train_step: unknown shape %s\n", shape.c_str());
    return 2;
  }
  if (layers > 0) c.num_hidden_layers = layers;
  c.rms_norm_eps = 1e-6, c.max_position_embeddings = 32768;

  auto inner = backend::make_cpu_backend();
  auto timing = std::make_unique<backend::TimingBackend>(*inner, c.vocab_size);
  backend::Backend* be = timing.get();
  model::LoraOptions lora;
  lora.config.r = lora_r;
  lora.config.lora_alpha = 2.0 * static_cast<double>(lora_r);
  lora.config.lora_dropout = 0.0;
  if (lora_targets == "all-linear") {
    lora.config.target_modules = {"all-linear"};
    lora.config.target_is_string = true;
  } else {
    lora.config.target_modules.clear();
    for (size_t b = 0; b <= lora_targets.size();) {
      const size_t e = std::min(lora_targets.find(',', b), lora_targets.size());
      lora.config.target_modules.push_back(lora_targets.substr(b, e - b));
      b = e + 1;
    }
  }
  auto m = model::Model::random(c, 0, *be, dtype == "bf16" ? model::Precision::BF16 : model::Precision::F32,
                                lora_r > 0 ? &lora : nullptr);

  m->set_gradient_checkpointing(checkpointing != 0);
  std::vector<model::ParamRef> params = m->parameters();
  int64_t n_params = 0;
  std::vector<float*> mom, var;
  for (const auto& p : params) {
    n_params += p.numel;
    mom.push_back(static_cast<float*>(be->alloc(p.numel * sizeof(float))));
    var.push_back(static_cast<float*>(be->alloc(p.numel * sizeof(float))));
  }
  // random tokens, every position a target (as the peer: cross-entropy over ids[:, 1:])
  std::mt19937 g(0);
  std::vector<std::vector<int32_t>> seqs(batch, std::vector<int32_t>(seq));
  for (auto& s : seqs)
    for (auto& t : s) t = static_cast<int32_t>(g() % c.vocab_size);
  const model::Batch b = model::Batch::from_sequences(seqs, {}, 0);
  const float scale = 1.0f / static_cast<float>(b.count_targets());
  int64_t step_no = 0;
  auto step = [&] {
    m->zero_grad();
    if (neftune_alpha > 0) m->set_embedding_noise({neftune_alpha, static_cast<uint64_t>(step_no + 1), seq});
    m->forward_backward(b, scale);
    backend::AdamWArgs a;
    a.lr = 1e-5f, a.weight_decay = 0.01f, a.step = ++step_no;  // torch AdamW defaults: wd 0.01
    for (size_t i = 0; i < params.size(); ++i)
      be->adamw_step(params[i].value, params[i].grad, mom[i], var[i], params[i].numel, a);
    m->on_weights_updated();
    be->synchronize();
  };
  step();  // warm-up (primitive creation, first-touch of activation memory)
  timing->reset();
  std::vector<double> times;
  for (int64_t i = 0; i < steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  const double dt = times[times.size() / 2];
  const double T = static_cast<double>(seq), B = static_cast<double>(batch);
  // model FLOP/s counts the full-FT work (6 N per token) in both modes, so LoRA's figure shows the step-time gain
  const double flops = 6.0 * static_cast<double>(model::num_parameters(c)) * B * T +
                       6.0 * c.num_hidden_layers * B * T * T * c.num_attention_heads * c.head_dim;  // as the peer
  // breakdown: mean seconds per step of each category over the timed steps, as a share of the mean step
  double mean = 0;
  for (double t : times) mean += t / static_cast<double>(times.size());
  using Cat = backend::TimingBackend::Cat;
  std::string breakdown;
  double inside = 0;
  for (int ci = 0; ci < static_cast<int>(Cat::kCount); ++ci) {
    const double sec = timing->seconds(static_cast<Cat>(ci)) / static_cast<double>(steps);
    inside += sec;
    char buf[128];
    std::snprintf(buf, sizeof buf, "\"%s\": %.4f, ", backend::TimingBackend::cat_name(static_cast<Cat>(ci)), sec);
    breakdown += buf;
  }
  char buf[128];
  std::snprintf(buf, sizeof buf, "\"other\": %.4f", std::max(0.0, mean - inside));
  breakdown += buf;
  const double gemm_s = (timing->seconds(Cat::Gemm) + timing->seconds(Cat::HeadGemm)) / static_cast<double>(steps);
  const double gemm_gflops = timing->gemm_flop() / static_cast<double>(steps) / std::max(gemm_s, 1e-12) / 1e9;
  std::string kernels;
  for (const auto& [name, e] : timing->per_kernel()) {
    char kb[160];
    std::snprintf(kb, sizeof kb, "%s\"%s\": [%lld, %.4f]", kernels.empty() ? "" : ", ", name.c_str(),
                  static_cast<long long>(e.calls / steps), e.seconds / static_cast<double>(steps));
    kernels += kb;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "{\"peer\": \"sft\", \"shape\": \"%s\", \"layers\": %lld, \"params\": %lld, \"batch\": %lld, \"seq\": %lld, "
      "\"lora_r\": %lld, \"gradient_checkpointing\": %s, \"neftune_noise_alpha\": %g, \"trainable\": %lld, \"dtype\": \"%s\", \"bf16_gemm\": \"%s\", \"step_s_median\": %.3f, \"tokens_per_s\": %.1f, "
      "\"model_gflops\": %.1f, \"peak_rss_mib\": %ld, \"step_s_mean\": %.3f, \"gemm_share\": %.3f, "
      "\"gemm_gflops\": %.1f, \"breakdown_s\": {%s}, \"kernels_calls_s\": {%s}, \"gemm_lib\": \"%s\", "
      "\"cpu_kernels\": \"%s\"}\n",
      shape.c_str(), static_cast<long long>(c.num_hidden_layers), static_cast<long long>(model::num_parameters(c)),
      static_cast<long long>(batch), static_cast<long long>(seq), static_cast<long long>(lora_r),
      checkpointing ? "true" : "false", neftune_alpha, static_cast<long long>(n_params), dtype.c_str(),
      dtype == "bf16" ? (be->fast_bf16_gemm() ? "native" : "emulated-fp32") : "n/a", dt, B * T / dt,
      flops / dt / 1e9, ru.ru_maxrss / 1024, mean, gemm_s / mean, gemm_gflops, breakdown.c_str(), kernels.c_str(),
      backend::cpu::dnnl_gemm_report().c_str(), backend::cpu::cpu_kernel_variant().c_str());
  for (size_t i = 0; i < params.size(); ++i) be->free(mom[i]), be->free(var[i]);
  return 0;
}
