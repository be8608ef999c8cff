// `sft info --model DIR [--seq_len N --batch_size B] [--json]`: what a model folder holds and what full fine-tuning
// of it costs in memory. Validates the folder on the way (config.json parses, every safetensors file passes the
// reader's checks, every weight the config implies is present with its shape), so it doubles as a folder checker.
//
// Memory: model::plan_training_memory (the decoder's own allocation code run against a sizing backend), so this
// command never re-derives the decoder's workspace. Not included: backend scratch (oneDNN primitives, a few MB), the
// tokenized dataset, the page cache of the memory-mapped weight files while loading.
#include <cstdio>
#include <iostream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "backend/device.h"
#include "cli/commands.h"
#include "io/gguf.h"
#include "io/hf_folder.h"
#include "io/safetensors.h"
#include "model/family.h"
#include "model/gguf_mapping.h"
#include "model/lora.h"
#include "model/memory_plan.h"
#include "model/weight_check.h"
#include "tokenizer/tokenizer.h"
#include "util/checked_math.h"
#include "train/train_config.h"
#include "util/error.h"

namespace sft::cli {

namespace {

namespace fs = std::filesystem;

struct InfoArgs {
  std::string model;
  int64_t seq_len = 512;
  int64_t batch_size = 4;
  bool json = false;
  // LoRA plan (sft train's flags, or an existing adapter folder)
  bool use_peft = false;
  int64_t lora_r = 16;
  std::string lora_target_modules, lora_modules_to_save, adapter;
};

// The two compute precisions' plans for the CPU this runs on (whether bf16 gemms are native decides the size of
// the bf16 weight copies).
struct MemoryEstimate {
  model::MemoryPlan f32, bf16;
  model::MemoryPlan f32_ckpt, bf16_ckpt;  // with --gradient_checkpointing True
};

MemoryEstimate estimate_memory(const io::ModelConfig& c, int64_t seq_len, int64_t batch) {
  // --seq_len / --batch_size are not bounded: first an upper bound of every byte count the plan adds up (per token and
  // layer: at most 8 bytes for each of the saved and scratch buffers), in checked arithmetic, so that an absurd
  // request is an error naming the flags and never a wrapped (negative) figure inside the plan.
  const std::string what = "the memory estimate for --seq_len " + std::to_string(seq_len) + " x --batch_size " +
                           std::to_string(batch);
  const int64_t n = checked_mul(seq_len, batch, what);
  const int64_t width = 8 + 4 * c.hidden_size + 3 * c.q_dim() + 3 * c.kv_dim() + 3 * c.intermediate_size +
                        c.num_attention_heads;  // config widths are bounded by model::check_config_bounds
  (void)checked_mul(checked_mul(checked_mul(c.num_hidden_layers + 2, n, what), width, what), 8, what);
  const bool fast_bf16 = backend::make_backend(backend::DeviceSpec{})->fast_bf16_gemm();
  return {model::plan_training_memory(c, n, model::Precision::F32, fast_bf16),
          model::plan_training_memory(c, n, model::Precision::BF16, fast_bf16),
          model::plan_training_memory(c, n, model::Precision::F32, fast_bf16, true),
          model::plan_training_memory(c, n, model::Precision::BF16, fast_bf16, true)};
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v), out;
  int k = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (k && k % 3 == 0 && *it != '-') out += ',';
    out += *it;
    ++k;
  }
  return {out.rbegin(), out.rend()};
}

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// LoRA: frozen base (fp32 values, no gradient, no AdamW state), adapters + modules_to_save with fp32 value, gradient
// and AdamW m, v, the full-FT activations plus the LoRA ones (model/lora.h plan_lora).
void print_lora_plan(const InfoArgs& a, const io::ModelConfig& cfg, const MemoryEstimate& full) {
  io::LoraAdapterConfig lc;
  if (!a.adapter.empty()) {
    std::unique_ptr<io::SafetensorsFile> f;
    lc = model::check_adapter(a.adapter, cfg, f);
  } else {
    train::TrainConfig tc;
    tc.lora_r = a.lora_r;
    tc.lora_target_modules = a.lora_target_modules;
    tc.lora_modules_to_save = a.lora_modules_to_save;
    SFT_CHECK(a.lora_r > 0, "--lora_r must be a positive integer, got ", a.lora_r);
    lc = tc.lora_config();
  }
  const int64_t n = a.seq_len * a.batch_size;
  const model::LoraPlan p = model::plan_lora(cfg, lc, n);
  const int64_t base = 4 * model::num_parameters(cfg);
  const int64_t fp32 = base + p.trainable_state_bytes + full.f32.activations + p.activation_bytes;
  const int64_t bf16 = base + p.trainable_state_bytes + full.bf16.activations + p.activation_bytes;
  std::string targets;
  for (const auto& t : lc.target_modules) targets += (targets.empty() ? "" : ",") + t;
  std::printf("\nLoRA r %lld, target_modules %s (%lld linear layers)%s\n", static_cast<long long>(lc.r),
              targets.c_str(), static_cast<long long>(p.targets), a.adapter.empty() ? "" : (" from " + a.adapter).c_str());
  std::printf("trainable params: %s || all params: %s || trainable%%: %.4f\n", with_commas(p.trainable_parameters).c_str(),
              with_commas(p.all_parameters).c_str(),
              100.0 * static_cast<double>(p.trainable_parameters) / static_cast<double>(p.all_parameters));
  std::printf("memory for LoRA fine-tuning, same tokens per micro-batch:\n");
  std::printf("  trainable + AdamW     %12s   (adapter %s + modules_to_save %s params, fp32 value/grad/m/v)\n",
              gib(p.trainable_state_bytes).c_str(), with_commas(p.adapter_parameters).c_str(),
              with_commas(p.saved_parameters).c_str());
  std::printf("  activations           %12s   (bf16 compute: %s; LoRA part %s)\n",
              gib(full.f32.activations + p.activation_bytes).c_str(),
              gib(full.bf16.activations + p.activation_bytes).c_str(), gib(p.activation_bytes).c_str());
  // The three forms of the frozen base, each planned by the decoder's own allocations (model/memory_plan.h).
  const bool fast_bf16 = backend::make_backend(backend::DeviceSpec{})->fast_bf16_gemm();
  struct Form {
    const char* name;
    model::Precision p;
    bool four_bit;
  };
  for (const Form& f : {Form{"fp32 base, fp32 compute", model::Precision::F32, false},
                        Form{"bf16-only base (--bf16)", model::Precision::BF16, false},
                        Form{"4-bit nf4 + double quant (--load_in_4bit)", model::Precision::BF16, true}}) {
    model::LoraOptions o;
    o.config = lc;
    o.load_in_4bit = f.four_bit, o.bnb_4bit_use_double_quant = f.four_bit;
    const auto storage = model::frozen_storage_for(f.p, o);
    const model::LoraMemoryPlan plan = model::plan_lora_memory(cfg, lc, n, f.p, fast_bf16, false, storage.get());
    const model::LoraMemoryPlan ck = model::plan_lora_memory(cfg, lc, n, f.p, fast_bf16, true, storage.get());
    const int64_t frozen = storage ? plan.frozen : base;
    std::printf("  %-42s total %10s  (frozen base %s, activations %s; --gradient_checkpointing True: %s)\n", f.name,
                gib(plan.plan.total()).c_str(), gib(frozen).c_str(), gib(plan.plan.activations).c_str(),
                gib(ck.plan.total()).c_str());
  }
  std::printf("  (full fine-tuning: %s fp32 compute, %s bf16 compute)\n", gib(full.f32.total()).c_str(),
              gib(full.bf16.total()).c_str());
  (void)fp32, (void)bf16;
}

// What `sft info` reports of a model folder or GGUF file, gathered once for the JSON and the text output.
struct InfoFacts {
  io::ModelConfig cfg;
  std::map<std::string, std::pair<int64_t, int64_t>> by_dtype;  // dtype on disk -> (elements, bytes)
  std::vector<std::string> extra;      // tensors on disk the model does not use
  std::vector<std::string> tok_files;  // tokenizer files found
  size_t weight_files = 0;
  int64_t P = 0, E = 0;  // parameters, embedding parameters
  MemoryEstimate mem;
};

InfoFacts collect_info(const InfoArgs& a) {
  const fs::path dir = a.model;
  const bool gguf = io::is_gguf_file(dir);  // a GGUF file: config from its metadata, weights decoded from its blocks
  SFT_CHECK(gguf || fs::is_directory(dir), a.model, ": model folder (or .gguf file) not found");
  SFT_CHECK(gguf || fs::exists(dir / "config.json"), a.model, ": no config.json (not a Hugging Face model folder)");
  SFT_CHECK(a.seq_len > 0, "--seq_len must be positive, got ", a.seq_len);
  SFT_CHECK(a.batch_size > 0, "--batch_size must be positive, got ", a.batch_size);
  model::GgufModel gm;
  if (gguf) gm = model::open_gguf_model(dir);
  InfoFacts f;
  f.cfg = gguf ? gm.config : model::load_config(dir / "config.json");
  const io::ModelConfig& cfg = f.cfg;
  const io::WeightStore ws = gguf ? std::move(gm.weights) : io::WeightStore::open(dir);
  f.weight_files = ws.files().size();
  model::check_weights_match_config(cfg, ws, gguf ? dir : dir / "config.json");  // before anything is sized

  // Every weight the config implies must be on disk with its shape; anything else is reported, not fatal
  // (e.g. an lm_head.weight copy in a tied checkpoint, which transformers ignores too).
  auto& by_dtype = f.by_dtype;
  int64_t expected_numel = 0;
  std::map<std::string, bool> expected;
  for (const auto& w : model::tensor_table(cfg)) {
    const io::TensorInfo& t = ws.info(w.name);  // throws naming the tensor
    std::string shape_got, shape_want;
    for (auto d : t.shape) shape_got += (shape_got.empty() ? "" : ", ") + std::to_string(d);
    for (auto d : w.shape) shape_want += (shape_want.empty() ? "" : ", ") + std::to_string(d);
    SFT_CHECK(t.shape == w.shape, ws.path_of(w.name).string(), ": tensor \"", w.name, "\" has shape [",
              shape_got, "], config.json implies [", shape_want, "]");
    SFT_CHECK(t.dtype == io::DType::F32 || t.dtype == io::DType::BF16 || t.dtype == io::DType::F16,
              ws.path_of(w.name).string(), ": tensor \"", w.name, "\" has dtype ", io::dtype_name(t.dtype),
              ", expected F32, BF16 or F16");
    if (gguf) {  // the GGUF's own block types and bytes
      const io::GgufTensorInfo* g = gm.file->find_tensor(model::gguf_tensor_name(w));
      auto& e = by_dtype[io::ggml_type_name(g->type)];
      e.first += t.numel();
      e.second += static_cast<int64_t>(g->nbytes);
    } else {
      auto& e = by_dtype[io::dtype_name(t.dtype)];
      e.first += t.numel();
      e.second += static_cast<int64_t>(t.end - t.begin);
    }
    expected_numel += t.numel();
    expected[w.name] = true;
  }
  auto& extra = f.extra;
  for (const auto& name : ws.names())
    if (!expected.count(name)) extra.push_back(name);

  auto& tok_files = f.tok_files;
  if (gguf) tok_files.push_back("tokenizer.ggml.* (GGUF metadata)");
  else
    for (const auto& f : io::tokenizer_file_names())
      if (fs::exists(dir / f)) tok_files.push_back(f);
  // A folder train/generate/eval cannot use is not "fine": the tokenizer must be there and load.
  (void)tok::Tokenizer::load(dir);  // throws naming tokenizer.json / tokenizer_config.json

  f.P = model::num_parameters(cfg);
  f.E = model::num_embedding_parameters(cfg);
  f.mem = estimate_memory(cfg, a.seq_len, a.batch_size);
  return f;

}

void print_info_json(const InfoArgs& a, const InfoFacts& f) {
  const io::ModelConfig& cfg = f.cfg;
  const auto& by_dtype = f.by_dtype;
  const MemoryEstimate& mem = f.mem;
  const int64_t P = f.P, E = f.E;
  nlohmann::json j;
  j["model"] = a.model;
  j["architecture"] = cfg.architecture;
  j["model_type"] = cfg.model_type;
  j["num_hidden_layers"] = cfg.num_hidden_layers;
  j["hidden_size"] = cfg.hidden_size;
  j["intermediate_size"] = cfg.intermediate_size;
  j["num_attention_heads"] = cfg.num_attention_heads;
  j["num_key_value_heads"] = cfg.num_key_value_heads;
  j["head_dim"] = cfg.head_dim;
  j["vocab_size"] = cfg.vocab_size;
  j["tie_word_embeddings"] = cfg.tie_word_embeddings;
  j["rope_theta"] = cfg.rope_theta;
  j["rope_scaling"] = cfg.rope_scaling.type;
  j["num_parameters"] = P;
  j["embedding_parameters"] = E;
  nlohmann::json d = nlohmann::json::object();
  for (const auto& [k, v] : by_dtype) d[k] = {{"elements", v.first}, {"bytes", v.second}};
  j["dtype_on_disk"] = d;
  j["weight_files"] = f.weight_files;
  j["extra_tensors"] = f.extra;
  j["tokenizer_files"] = f.tok_files;
  j["seq_len"] = a.seq_len;
  j["batch_size"] = a.batch_size;
  j["memory_bytes"] = {{"fp32_master_weights", mem.f32.weights},    {"fp32_gradients", mem.f32.gradients},
                       {"adamw_m_v", mem.f32.optimizer},            {"bf16_weight_copies", mem.bf16.compute_copies},
                       {"activations_fp32", mem.f32.activations},   {"activations_bf16", mem.bf16.activations},
                       {"total_fp32", mem.f32.total()},             {"total_bf16", mem.bf16.total()},
                       {"activations_fp32_gradient_checkpointing", mem.f32_ckpt.activations},
                       {"activations_bf16_gradient_checkpointing", mem.bf16_ckpt.activations}};
  j["devices"] = backend::describe_devices();
  std::cout << j.dump(2) << "\n";
}

void print_model_facts(const InfoArgs& a, const InfoFacts& f) {
  const io::ModelConfig& cfg = f.cfg;
  const int64_t P = f.P, E = f.E;
  std::string dtypes;
  for (const auto& [k, v] : f.by_dtype) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "%s%s (%.1f MB)", dtypes.empty() ? "" : ", ", k.c_str(), v.second / 1e6);
    dtypes += buf;
  }
  std::string rope = cfg.rope_scaling.type.empty() ? "none" : cfg.rope_scaling.type;
  if (cfg.rope_scaling.type == "llama3") {
    char buf[128];
    std::snprintf(buf, sizeof buf, " (factor %g, low %g, high %g, original %lld)", cfg.rope_scaling.factor,
                  cfg.rope_scaling.low_freq_factor, cfg.rope_scaling.high_freq_factor,
                  static_cast<long long>(cfg.rope_scaling.original_max_position_embeddings));
    rope += buf;
  }
  std::printf("model          %s\n", a.model.c_str());
  std::printf("architecture   %s (model_type %s)\n", cfg.architecture.c_str(), cfg.model_type.c_str());
  std::printf("layers         %lld\n", static_cast<long long>(cfg.num_hidden_layers));
  std::printf("hidden         %lld, intermediate %lld\n", static_cast<long long>(cfg.hidden_size),
              static_cast<long long>(cfg.intermediate_size));
  std::printf("heads          %lld query / %lld key-value, head_dim %lld, q/k/v bias %s, o bias %s, q/k norm %s\n",
              static_cast<long long>(cfg.num_attention_heads), static_cast<long long>(cfg.num_key_value_heads),
              static_cast<long long>(cfg.head_dim), cfg.attention_bias ? "yes" : "no", cfg.o_proj_bias ? "yes" : "no",
              cfg.qk_norm ? "yes" : "no");
  std::printf("vocab          %lld, tied embeddings %s\n", static_cast<long long>(cfg.vocab_size),
              cfg.tie_word_embeddings ? "yes" : "no");
  std::printf("rope           theta %g, scaling %s, max positions %lld\n", cfg.rope_theta, rope.c_str(),
              static_cast<long long>(cfg.max_position_embeddings));
  std::printf("parameters     %s (embedding %s = %.1f%%)\n", with_commas(P).c_str(), with_commas(E).c_str(),
              100.0 * static_cast<double>(E) / static_cast<double>(P));
  std::printf("weights        %zu file(s), dtype on disk %s\n", f.weight_files, dtypes.c_str());
  if (!f.extra.empty())
    std::printf("note           %zu tensor(s) not used by the model, e.g. %s\n", f.extra.size(), f.extra.front().c_str());
  std::string toks;
  for (const auto& t : f.tok_files) toks += (toks.empty() ? "" : ", ") + t;
  std::printf("tokenizer      %s\n", toks.empty() ? "(no tokenizer files)" : toks.c_str());
}

void run_info(const InfoArgs& a) {
  const InfoFacts f = collect_info(a);
  if (a.json) return print_info_json(a, f);
  print_model_facts(a, f);
  const io::ModelConfig& cfg = f.cfg;
  const MemoryEstimate& mem = f.mem;
  std::printf("\nmemory for full fine-tuning, seq_len %lld x batch_size %lld = %lld tokens per micro-batch:\n",
              static_cast<long long>(a.seq_len), static_cast<long long>(a.batch_size),
              static_cast<long long>(a.seq_len * a.batch_size));
  // Padding-free training computes a micro-batch's real tokens only, and batch_size samples hold at most
  // seq_len x batch_size of them: the plan is its worst case too; sft train sizes for the run's actual largest.
  std::printf("  (padding-free training, sft train's default on CPU, computes only the real tokens of a micro-batch:\n"
              "   at most this many; sft train prints and reserves the largest micro-batch of its run)\n");
  std::printf("  fp32 master weights   %12s\n", gib(mem.f32.weights).c_str());
  std::printf("  fp32 gradients        %12s\n", gib(mem.f32.gradients).c_str());
  std::printf("  AdamW m + v (fp32)    %12s\n", gib(mem.f32.optimizer).c_str());
  std::printf("  bf16 weight copies    %12s   (bf16 compute only)\n", gib(mem.bf16.compute_copies).c_str());
  std::printf("  activations           %12s   (bf16 compute: %s)\n", gib(mem.f32.activations).c_str(),
              gib(mem.bf16.activations).c_str());
  std::printf("  total, fp32 compute   %12s\n", gib(mem.f32.total()).c_str());
  std::printf("  total, bf16 compute   %12s\n", gib(mem.bf16.total()).c_str());
  std::printf("  --gradient_checkpointing True: activations %s (bf16 compute: %s), total %s (bf16 compute: %s)\n",
              gib(mem.f32_ckpt.activations).c_str(), gib(mem.bf16_ckpt.activations).c_str(),
              gib(mem.f32_ckpt.total()).c_str(), gib(mem.bf16_ckpt.total()).c_str());
  if (a.use_peft || !a.adapter.empty()) print_lora_plan(a, cfg, mem);
  std::printf("\ndevices\n");
  for (const auto& d : backend::describe_devices()) std::printf("  %s\n", d.c_str());
}

}  // namespace

void register_info(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  auto* sub = app.add_subcommand("info", "Show a model folder's architecture, parameters and fine-tuning memory");
  sub->add_option("--model,--model_name_or_path", a->model, "HF model folder or .gguf file")->required();
  sub->add_option("--seq_len,--max_length", a->seq_len, "Tokens per sequence for the activation estimate")
      ->capture_default_str();
  sub->add_option("--batch_size,--per_device_train_batch_size", a->batch_size,
                  "Sequences per micro-batch for the activation estimate")
      ->capture_default_str();
  sub->add_flag("--json", a->json, "Print the same facts as one JSON object");
  sub->add_flag("--use_peft", a->use_peft, "Also show the LoRA plan (trainable parameters, memory)");
  sub->add_option("--lora_r", a->lora_r, "LoRA rank for the plan")->capture_default_str();
  sub->add_option("--lora_target_modules", a->lora_target_modules, "q_proj,v_proj (default) ... or all-linear");
  sub->add_option("--lora_modules_to_save", a->lora_modules_to_save, "modules trained in full (e.g. lm_head)");
  sub->add_option("--adapter", a->adapter, "Show the plan of this peft adapter folder");
  sub->callback([a] { run_info(*a); });
}

}  // namespace sft::cli
