// Model factories (load from an HF folder, random init), parameter I/O (load/save), Batch helpers, RoPE frequencies.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>

#include "io/gguf.h"
#include "io/hf_folder.h"
#include "io/safetensors.h"
#include "model/decoder.h"
#include "model/gguf_mapping.h"
#include "model/memory_plan.h"
#include "model/weight_check.h"
#include "util/bf16.h"
#include "util/error.h"
#include "util/file_util.h"

namespace sft::model {

using backend::DType;

Precision parse_precision(const std::string& d, const std::string& flag) {
  if (d == "float32" || d == "fp32") return Precision::F32;
  if (d == "bfloat16" || d == "bf16") return Precision::BF16;
  throw Error(flag + " must be float32 or bfloat16, got '" + d + "'");
}

Batch Batch::from_sequences(const std::vector<std::vector<int32_t>>& seqs,
                            const std::vector<std::vector<int32_t>>& labels, int32_t pad_id) {
  SFT_CHECK(labels.empty() || labels.size() == seqs.size(), "Batch::from_sequences: ", labels.size(),
            " label rows for ", seqs.size(), " sequences");
  Batch b;
  b.B = static_cast<int64_t>(seqs.size());
  for (const auto& s : seqs) b.T = std::max<int64_t>(b.T, static_cast<int64_t>(s.size()));
  const size_t n = static_cast<size_t>(b.B * b.T);
  b.input_ids.assign(n, pad_id);
  b.position_ids.assign(n, 0);
  b.doc_ids.assign(n, -1);
  b.labels.assign(n, -100);
  for (int64_t r = 0; r < b.B; ++r) {
    const auto& s = seqs[r];
    if (!labels.empty())
      SFT_CHECK(labels[r].size() == s.size(), "Batch::from_sequences: row ", r, " has ", s.size(), " tokens but ",
                labels[r].size(), " labels");
    for (size_t i = 0; i < s.size(); ++i) {
      const size_t t = static_cast<size_t>(r * b.T) + i;
      b.input_ids[t] = s[i];
      b.position_ids[t] = static_cast<int32_t>(i);
      b.doc_ids[t] = static_cast<int32_t>(r);
      b.labels[t] = labels.empty() ? s[i] : labels[r][i];
    }
  }
  return b;
}

int64_t Batch::count_targets() const {
  int64_t n = 0;
  if (labels.empty()) return 0;
  for (int64_t r = 0; r < B; ++r)
    for (int64_t i = 1; i < T; ++i) n += labels[r * T + i] != -100;
  return n;
}

std::vector<float> rope_inv_freq(const io::ModelConfig& cfg) {
  const int64_t d = cfg.head_dim > 0 ? cfg.head_dim : cfg.hidden_size / cfg.num_attention_heads;
  std::vector<float> inv(static_cast<size_t>(d / 2));
  // transformers: 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)), all fp32
  const float base = static_cast<float>(cfg.rope_theta);
  for (int64_t f = 0; f < d / 2; ++f) {
    const float e = static_cast<float>(2 * f) / static_cast<float>(d);
    inv[f] = 1.0f / std::pow(base, e);
  }
  const io::RopeScaling& rs = cfg.rope_scaling;
  if (rs.type.empty() || rs.type == "default") return inv;
  SFT_CHECK(rs.type == "llama3", "config.json: rope_scaling type '", rs.type,
            "' is not supported (supported: none, llama3)");
  // transformers _compute_llama3_parameters (fp32 tensors)
  const float factor = static_cast<float>(rs.factor), lo = static_cast<float>(rs.low_freq_factor),
              hi = static_cast<float>(rs.high_freq_factor);
  const float old_ctx = static_cast<float>(rs.original_max_position_embeddings);
  const float low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
  for (float& f : inv) {
    const float wavelen = 2.0f * std::numbers::pi_v<float> / f;
    float v = wavelen > low_wavelen ? f / factor : f;
    const float smooth = (old_ctx / wavelen - lo) / (hi - lo);
    const float smoothed = (1.0f - smooth) * v / factor + smooth * v;
    const bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
    f = medium ? smoothed : v;
  }
  return inv;
}

// Host staging goes tensor by tensor through one buffer the size of the largest tensor (not a copy of the whole
// model): a whole-model copy was the peak of a LoRA run's memory (2 GiB for Qwen2.5-0.5B on top of the 2 GiB of
// weights). Same values in the same order as before (one generator walked across the tensors); the alignment gaps
// between tensors stay zero (Backend::alloc zero-initialises).
int64_t Decoder::largest_tensor() const {
  int64_t m = 0;
  for (const TensorSlot& t : tensors_) m = std::max(m, t.numel);
  return m;
}

void Decoder::init_random(uint64_t seed) {
  std::vector<float> host(static_cast<size_t>(largest_tensor()));
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  for (const TensorSlot& t : tensors_) {
    const bool is_norm = t.name.find("norm") != std::string::npos;
    const bool is_bias = t.name.size() > 5 && t.name.compare(t.name.size() - 5, 5, ".bias") == 0;
    // norms start at gain 1: w = 1, or w = 0 where the gain is (1 + w) (Gemma, as transformers initialises them)
    const float norm_init = cfg_.norm_unit_offset ? 0.0f : 1.0f;
    for (int64_t i = 0; i < t.numel; ++i) host[i] = is_norm ? norm_init : (is_bias ? 0.0f : normal(gen));
    if (t.frozen >= 0) {  // stored form: in the model dtype first, as a checkpoint of that dtype would hold them
      if (storage_->dtype == DType::BF16)
        for (int64_t i = 0; i < t.numel; ++i) host[i] = bf16_to_float(float_to_bf16(host[i]));
      frozen_.push_back(FrozenTensor::from_values(be_, t.name, t.shape, host.data(), t.format, storage_->double_quant));
      continue;
    }
    be_.upload(value(t.offset), host.data(), static_cast<size_t>(t.numel) * sizeof(float));
  }
  refresh_all_bf16();
}

void Decoder::copy_frozen_dequantised_into(Decoder& other) const {
  for (const TensorSlot& t : tensors_) {
    if (t.frozen < 0) continue;
    auto it = std::find_if(other.tensors_.begin(), other.tensors_.end(),
                           [&](const TensorSlot& o) { return o.name == t.name; });
    SFT_CHECK(it != other.tensors_.end() && it->frozen < 0 && it->numel == t.numel,
              "internal: copy_frozen_dequantised_into: no fp32 tensor ", t.name);
    const std::vector<float> v = frozen_[static_cast<size_t>(t.frozen)].to_host(0, t.numel,
                                                                              frozen_value_dtype() == DType::BF16);
    other.be_.upload(other.value(it->offset), v.data(), v.size() * sizeof(float));
  }
  other.refresh_all_bf16();
}

void Decoder::load_frozen_tensors(const io::WeightStore& store) {
  std::vector<FrozenSpec> specs;
  for (const TensorSlot& t : tensors_)
    if (t.frozen >= 0) specs.push_back({t.name, t.shape, t.format});
  frozen_ = load_frozen(store, specs, be_, storage_->dtype, storage_->double_quant);
}

void Decoder::load_weights(const io::WeightStore& store) {
  if (storage_) load_frozen_tensors(store);  // streamed into their stored form, no fp32 staging
  std::vector<float> host(static_cast<size_t>(storage_ ? 0 : largest_tensor()));
  for (const TensorSlot& t : tensors_) {
    if (t.frozen >= 0) continue;
    host.resize(std::max(host.size(), static_cast<size_t>(t.numel)));
    store.read_f32(t.name, host.data(), t.shape);
    store.release(t.name, 0, t.numel);  // the file's pages behind it are not kept resident (io WeightStore::release)
    be_.upload(value(t.offset), host.data(), static_cast<size_t>(t.numel) * sizeof(float));
  }
  refresh_all_bf16();
}

void Decoder::save(const std::filesystem::path& dir, const std::string& dtype) {
  SFT_CHECK(dtype == "float32" || dtype == "bfloat16", "save: dtype must be float32 or bfloat16, got '", dtype, "'");
  // The masters in place where device memory is the host's (no 4 bytes/parameter copy at every checkpoint).
  be_.synchronize();
  std::vector<float> copy;
  const float* host = static_cast<const float*>(be_.host_view(params_.get()));
  if (!host) {
    copy.resize(static_cast<size_t>(total_));
    be_.download(copy.data(), params_.get(), copy.size() * sizeof(float));
    host = copy.data();
  }
  std::vector<uint16_t> half;
  if (dtype == "bfloat16") {
    half.resize(static_cast<size_t>(total_));
    for (size_t i = 0; i < half.size(); ++i) half[i] = float_to_bf16(host[i]);
  }
  std::vector<io::TensorToWrite> out;
  std::vector<std::vector<float>> stored;  // frozen tensors in their stored form, widened (bf16 / fp32 only)
  std::vector<std::vector<uint16_t>> stored_half;
  for (const TensorSlot& t : tensors_) {
    if (t.frozen >= 0) {
      const FrozenTensor& f = frozen_[static_cast<size_t>(t.frozen)];
      SFT_CHECK(!f.view().quantized(), "save: tensor ", t.name, " is stored in 4 bits (--load_in_4bit): a 4-bit base "
                "is not saved as a full model (save the adapter, or merge it into the unquantised base: sft merge)");
      stored.push_back(f.to_host(0, t.numel, false));
      if (dtype == "bfloat16") {
        stored_half.emplace_back(stored.back().size());
        for (size_t i = 0; i < stored.back().size(); ++i) stored_half.back()[i] = float_to_bf16(stored.back()[i]);
        out.push_back({t.name, io::DType::BF16, t.shape, stored_half.back().data()});
      } else {
        out.push_back({t.name, io::DType::F32, t.shape, stored.back().data()});
      }
      continue;
    }
    if (dtype == "bfloat16") out.push_back({t.name, io::DType::BF16, t.shape, half.data() + t.offset});
    else out.push_back({t.name, io::DType::F32, t.shape, host + t.offset});
  }
  io::ModelConfig cfg = cfg_;
  cfg.torch_dtype = dtype;
  io::save_hf_folder(dir, config_to_json(cfg), std::move(out), {});
}

void Decoder::init_lora_random(uint64_t seed) {
  SFT_CHECK(lora_, "internal: init_lora_random without LoRA");
  lora_->init_random(seed);
}

void Decoder::load_lora(const io::SafetensorsFile& f) {
  SFT_CHECK(lora_, "internal: load_lora without LoRA");
  lora_->load(f);
  for (const TensorSlot& t : tensors_) {  // modules_to_save: the adapter holds the trained copy of the whole tensor
    if (t.grad_offset < 0) continue;
    const std::string name = io::kPeftPrefix + t.name;
    const io::TensorInfo* ti = f.find(name);
    SFT_CHECK(ti && ti->shape == t.shape, f.path().string(), ": tensor ", name, " is missing or has the wrong shape");
    std::vector<float> host(static_cast<size_t>(t.numel));
    io::convert_to_f32(ti->dtype, f.data(*ti), t.numel, host.data(), f.path().string() + ": " + name);
    be_.upload(value(t.offset), host.data(), host.size() * sizeof(float));
  }
  refresh_all_bf16();
}

void Decoder::save_adapter(const std::filesystem::path& dir, const std::string& base_model) {
  SFT_CHECK(lora_, "internal: save_adapter on a model without LoRA");
  io::LoraAdapterConfig c = lora_->config();
  c.base_model_name_or_path = base_model;
  if (c.all_linear()) {  // peft stores the resolved module names
    c.target_is_string = false;
    c.target_modules.clear();
    for (size_t t = 0; t < lora_->size(); ++t) c.target_modules.push_back(lora_->target(t).module);
  }
  std::vector<std::vector<float>> host;
  std::vector<io::TensorToWrite> out;
  for (const ParamRef& p : parameters()) {
    host.emplace_back(static_cast<size_t>(p.numel));
    be_.download(host.back().data(), p.value, host.back().size() * sizeof(float));
    out.push_back({p.name, io::DType::F32, p.shape, host.back().data()});
  }
  std::filesystem::create_directories(dir);
  io::write_safetensors(dir / "adapter_model.safetensors", std::move(out));
  write_file_atomic(dir / "adapter_config.json", io::adapter_config_to_json(c));
}

namespace {

// Builds the decoder (LoRA attached when asked), fills the base weights with `fill`, then the adapter.
template <class Fill>
std::unique_ptr<Model> build(const io::ModelConfig& cfg, backend::Backend& be, Precision p, const LoraOptions* lora,
                             Fill fill) {
  if (!lora) {
    auto m = std::make_unique<Decoder>(cfg, be, p);
    fill(*m);
    return m;
  }
  io::LoraAdapterConfig acfg = lora->config;
  std::unique_ptr<io::SafetensorsFile> file;
  if (!lora->adapter_dir.empty()) acfg = check_adapter(lora->adapter_dir, cfg, file);
  // The frozen base in its stored form with bf16 compute or 4 bits (fp32 compute keeps today's fp32 masters).
  const std::unique_ptr<FrozenStorage> storage = frozen_storage_for(p, *lora);
  auto m = std::make_unique<Decoder>(cfg, be, p, &acfg, storage.get());
  fill(*m);
  if (file) m->load_lora(*file);
  else m->init_lora_random(lora->seed);
  return m;
}

}  // namespace

std::unique_ptr<Model> Model::random(const io::ModelConfig& cfg, uint64_t seed, backend::Backend& be, Precision p,
                                     const LoraOptions* lora) {
  return build(cfg, be, p, lora, [&](Decoder& m) { m.init_random(seed); });
}

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir, backend::Backend& be, Precision p,
                                   const LoraOptions* lora) {
  if (io::is_gguf_file(dir)) {  // a GGUF: config from its metadata, weights decoded and mapped to HF names
    const GgufModel g = open_gguf_model(dir);
    check_weights_match_config(g.config, g.weights, dir);
    return build(g.config, be, p, lora, [&](Decoder& m) { m.load_weights(g.weights); });
  }
  const io::ModelConfig cfg = load_config(dir / "config.json");
  const io::WeightStore store = io::WeightStore::open(dir);
  check_weights_match_config(cfg, store, dir / "config.json");  // before any buffer is sized from cfg
  return build(cfg, be, p, lora, [&](Decoder& m) { m.load_weights(store); });
}

}  // namespace sft::model
