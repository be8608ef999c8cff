// LoRA adapters: target resolution (peft's matching rules), the LoRA term's forward/backward on the backend, adapter
// checking against a model config, and merging (see lora.h).
#include "model/lora.h"

#include "io/gguf.h"
#include "model/gguf_mapping.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <regex>
#include <set>

#include "io/hf_folder.h"
#include "model/weight_check.h"
#include "util/bf16.h"
#include "util/error.h"

namespace sft::model {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// peft's module-name rule for list entries: the whole name, or a suffix starting after a dot.
bool module_matches(const std::string& module, const std::string& entry) {
  return module == entry || ends_with(module, "." + entry);
}

std::string short_names(const std::vector<LinearInfo>& linears) {
  std::set<std::string> kinds;
  for (const auto& l : linears) kinds.insert(l.module.substr(l.module.rfind('.') + 1));
  std::string out;
  for (const auto& k : kinds) out += (out.empty() ? "" : ", ") + k;
  return out;
}

std::string module_of(const std::string& tensor) { return tensor.substr(0, tensor.rfind('.')); }

}  // namespace

std::vector<LinearInfo> linear_layers(const io::ModelConfig& cfg) {
  std::vector<LinearInfo> out;
  for (const TensorSpec& w : tensor_table(cfg)) {
    // every 2-D weight is a linear layer's [out, in], except the input embedding table
    if (w.shape.size() != 2 || w.name == "model.embed_tokens.weight" || !ends_with(w.name, ".weight")) continue;
    out.push_back({module_of(w.name), w.shape[1], w.shape[0]});
  }
  return out;
}

std::vector<size_t> resolve_lora_targets(const io::LoraAdapterConfig& cfg, const std::vector<LinearInfo>& linears,
                                         const std::string& flag) {
  std::vector<size_t> out;
  const auto is_head = [](const std::string& m) { return m == "lm_head"; };
  if (cfg.all_linear()) {
    for (size_t i = 0; i < linears.size(); ++i)
      if (!is_head(linears[i].module)) out.push_back(i);  // peft excludes the output embeddings
    return out;
  }
  if (cfg.target_is_string) {
    std::regex re;
    try {
      re = std::regex(cfg.target_modules[0]);
    } catch (const std::regex_error& e) {
      throw Error(flag + ": '" + cfg.target_modules[0] + "' is not a valid regular expression (" + e.what() + ")");
    }
    for (size_t i = 0; i < linears.size(); ++i)
      if (std::regex_match(linears[i].module, re)) {
        SFT_CHECK(!is_head(linears[i].module), flag, ": LoRA on lm_head is not supported (use --lora_modules_to_save lm_head)");
        out.push_back(i);
      }
    SFT_CHECK(!out.empty(), flag, ": the pattern '", cfg.target_modules[0],
              "' matches no linear layer of this model (linear layers: ", short_names(linears), ")");
    return out;
  }
  std::set<size_t> chosen;
  for (const std::string& e : cfg.target_modules) {
    SFT_CHECK(!e.empty(), flag, ": empty module name");
    bool hit = false;
    for (size_t i = 0; i < linears.size(); ++i)
      if (module_matches(linears[i].module, e)) {
        SFT_CHECK(!is_head(linears[i].module), flag, ": LoRA on lm_head is not supported (use --lora_modules_to_save lm_head)");
        chosen.insert(i);
        hit = true;
      }
    SFT_CHECK(hit, flag, ": '", e, "' matches no linear layer of this model (linear layers: ", short_names(linears),
              "; or all-linear)");
  }
  return {chosen.begin(), chosen.end()};
}

std::vector<std::string> resolve_modules_to_save(const io::LoraAdapterConfig& cfg,
                                                 const std::vector<std::string>& tensor_names,
                                                 const std::string& flag) {
  std::set<std::string> chosen;
  for (const std::string& e : cfg.modules_to_save) {
    SFT_CHECK(!e.empty(), flag, ": empty module name");
    bool hit = false;
    for (const std::string& t : tensor_names)
      if (module_matches(module_of(t), e)) {
        chosen.insert(t);
        hit = true;
      }
    SFT_CHECK(hit, flag, ": '", e, "' matches no module of this model",
              e == "lm_head" ? " (the model ties lm_head to embed_tokens: save embed_tokens instead)" : "");
  }
  std::vector<std::string> out;
  for (const std::string& t : tensor_names)
    if (chosen.count(t)) out.push_back(t);  // model order
  return out;
}

std::string lora_a_name(const std::string& module) { return std::string(io::kPeftPrefix) + module + ".lora_A.weight"; }
std::string lora_b_name(const std::string& module) { return std::string(io::kPeftPrefix) + module + ".lora_B.weight"; }

// ---------------------------------------------------------------------------------------------------------------------

LoraAdapters::LoraAdapters(backend::Backend& be, io::LoraAdapterConfig cfg, std::vector<LinearInfo> targets)
    : be_(be), cfg_(std::move(cfg)), targets_(std::move(targets)) {
  SFT_CHECK(cfg_.r > 0, "--lora_r must be a positive integer, got ", cfg_.r);
  r_ = cfg_.r;
  scaling_ = static_cast<float>(cfg_.scaling());
  for (const LinearInfo& t : targets_) {
    off_a_.push_back(total_);
    total_ += (r_ * t.in + 15) / 16 * 16;
    off_b_.push_back(total_);
    total_ += (t.out * r_ + 15) / 16 * 16;
    max_in_ = std::max(max_in_, t.in);
  }
  values_ = DeviceBuffer<float>(be_, total_);
  grads_ = DeviceBuffer<float>(be_, total_);
}

void LoraAdapters::init_random(uint64_t seed) {
  std::vector<float> host(static_cast<size_t>(total_), 0.0f);
  std::mt19937_64 gen(seed);
  for (size_t t = 0; t < targets_.size(); ++t) {
    // kaiming_uniform_(a=sqrt(5)) on [r, in]: gain sqrt(2/(1+5)), bound = gain * sqrt(3 / fan_in) = 1/sqrt(in)
    const float bound = 1.0f / std::sqrt(static_cast<float>(targets_[t].in));
    std::uniform_real_distribution<float> u(-bound, bound);
    float* a = host.data() + off_a_[t];
    for (int64_t i = 0; i < r_ * targets_[t].in; ++i) a[i] = u(gen);
  }
  be_.upload(values_.get(), host.data(), host.size() * sizeof(float));
}

void LoraAdapters::load(const io::SafetensorsFile& f) {
  std::vector<float> host(static_cast<size_t>(total_), 0.0f);
  for (size_t t = 0; t < targets_.size(); ++t) {
    const LinearInfo& L = targets_[t];
    for (int ab = 0; ab < 2; ++ab) {
      const std::string name = ab == 0 ? lora_a_name(L.module) : lora_b_name(L.module);
      const std::vector<int64_t> want = ab == 0 ? std::vector<int64_t>{r_, L.in} : std::vector<int64_t>{L.out, r_};
      const io::TensorInfo* ti = f.find(name);
      SFT_CHECK(ti, f.path().string(), ": tensor ", name, " is missing (the adapter does not cover this layer)");
      SFT_CHECK(ti->shape == want, f.path().string(), ": tensor ", name, " has shape ", io::shape_str(ti->shape),
                " but this model needs ", io::shape_str(want));
      io::convert_to_f32(ti->dtype, f.data(*ti), ti->numel(), host.data() + (ab == 0 ? off_a_[t] : off_b_[t]),
                         f.path().string() + ": " + name);
    }
  }
  be_.upload(values_.get(), host.data(), host.size() * sizeof(float));
}

void LoraAdapters::download(std::map<std::string, std::vector<float>>& out) {
  for (const ParamRef& p : parameters()) {
    std::vector<float>& v = out[p.name];
    v.resize(static_cast<size_t>(p.numel));
    be_.download(v.data(), p.value, v.size() * sizeof(float));
  }
}

std::vector<ParamRef> LoraAdapters::parameters() {
  std::vector<ParamRef> out;
  for (size_t t = 0; t < targets_.size(); ++t) {
    const LinearInfo& L = targets_[t];
    out.push_back({lora_a_name(L.module), {r_, L.in}, values_.get() + off_a_[t], grads_.get() + off_a_[t], r_ * L.in, true});
    out.push_back({lora_b_name(L.module), {L.out, r_}, values_.get() + off_b_[t], grads_.get() + off_b_[t], L.out * r_, true});
  }
  return out;
}

void LoraAdapters::zero_grad() { be_.zero(grads_.get(), grads_.bytes()); }

int64_t LoraAdapters::num_parameters() const {
  int64_t n = 0;
  for (const LinearInfo& L : targets_) n += r_ * (L.in + L.out);
  return n;
}

void LoraAdapters::reserve(int64_t n) {
  if (n <= rows_) return;
  rows_ = n;
  u_ = DeviceBuffer<float>(be_, static_cast<int64_t>(targets_.size()) * n * r_);
  xd_ = DeviceBuffer<float>(be_, n * max_in_);
  du_ = DeviceBuffer<float>(be_, n * r_);
}

void LoraAdapters::dropout_rows(float* y, const float* x, int64_t n, int64_t in, float p, uint64_t seed) {
  if (row_keys_.empty()) return be_.dropout(y, x, n * in, p, seed);
  SFT_CHECK(static_cast<int64_t>(row_keys_.size()) >= n, "internal: ", row_keys_.size(), " dropout keys for ", n,
            " rows");
  std::vector<float> h(static_cast<size_t>(n * in));
  be_.download(h.data(), x, h.size() * sizeof(float));
  const float inv = 1.0f / (1.0f - p);
  for (int64_t j = 0; j < n; ++j) {
    // A full splitmix64 finaliser of (seed, key): rows' streams must not be shifted copies of one another.
    uint64_t row_seed = seed ^ ((static_cast<uint64_t>(row_keys_[static_cast<size_t>(j)]) + 1) * 0xD1B54A32D192ED03ull);
    row_seed = (row_seed ^ (row_seed >> 30)) * 0xBF58476D1CE4E5B9ull;
    row_seed = (row_seed ^ (row_seed >> 27)) * 0x94D049BB133111EBull;
    row_seed ^= row_seed >> 31;
    float* row = h.data() + j * in;
    for (int64_t c = 0; c < in; ++c)
      row[c] = backend::dropout_keep(row_seed, static_cast<uint64_t>(c), p) ? row[c] * inv : 0.0f;
  }
  be_.upload(y, h.data(), h.size() * sizeof(float));
}

void LoraAdapters::forward(size_t t, const float* x, int64_t n, float* y, float p, uint64_t seed) {
  SFT_CHECK(n <= rows_, "internal: LoRA buffers hold ", rows_, " rows, forward of ", n);
  const LinearInfo& L = targets_[t];
  const float* xd = x;
  if (p > 0.0f) {
    dropout_rows(xd_.get(), x, n, L.in, p, seed);
    xd = xd_.get();
  }
  float* u = u_.get() + static_cast<int64_t>(t) * rows_ * r_;
  const float* A = values_.get() + off_a_[t];
  const float* B = values_.get() + off_b_[t];
  be_.gemm(false, true, n, r_, L.in, 1.0f, xd, L.in, A, L.in, 0.0f, u, r_, backend::DType::F32);      // u = xd A^T
  be_.gemm(false, true, n, L.out, r_, scaling_, u, r_, B, r_, 1.0f, y, L.out, backend::DType::F32);  // y += s u B^T
}

void LoraAdapters::backward_weights(size_t t, const float* x, const float* dy, int64_t n, float p, uint64_t seed) {
  SFT_CHECK(n <= rows_, "internal: LoRA buffers hold ", rows_, " rows, backward of ", n);
  const LinearInfo& L = targets_[t];
  const float* u = u_.get() + static_cast<int64_t>(t) * rows_ * r_;
  const float* B = values_.get() + off_b_[t];
  float* dA = grads_.get() + off_a_[t];
  float* dB = grads_.get() + off_b_[t];
  using backend::DType;
  be_.gemm(true, false, L.out, r_, n, scaling_, dy, L.out, u, r_, 1.0f, dB, r_, DType::F32);          // dB += s dy^T u
  be_.gemm(false, false, n, r_, L.out, scaling_, dy, L.out, B, r_, 0.0f, du_.get(), r_, DType::F32);  // du = s dy B
  const float* xd = x;
  if (p > 0.0f) {
    dropout_rows(xd_.get(), x, n, L.in, p, seed);  // the forward's mask, regenerated from its seed
    xd = xd_.get();
  }
  be_.gemm(true, false, r_, L.in, n, 1.0f, du_.get(), r_, xd, L.in, 1.0f, dA, L.in, DType::F32);  // dA += du^T xd
}

void LoraAdapters::backward_input(size_t t, int64_t n, float* dx, float p, uint64_t seed) {
  const LinearInfo& L = targets_[t];
  const float* A = values_.get() + off_a_[t];
  using backend::DType;
  if (p > 0.0f) {  // dx += mask/(1-p) * (du A)
    be_.gemm(false, false, n, L.in, r_, 1.0f, du_.get(), r_, A, L.in, 0.0f, xd_.get(), L.in, DType::F32);
    dropout_rows(xd_.get(), xd_.get(), n, L.in, p, seed);
    be_.add(dx, xd_.get(), n * L.in);
  } else {
    be_.gemm(false, false, n, L.in, r_, 1.0f, du_.get(), r_, A, L.in, 1.0f, dx, L.in, DType::F32);
  }
}

// ---------------------------------------------------------------------------------------------------------------------

void merge_lora_delta(float* W, const float* A, const float* B, int64_t out, int64_t in, int64_t r, float scaling) {
  for (int64_t o = 0; o < out; ++o) {
    std::vector<double> row(static_cast<size_t>(in), 0.0);
    for (int64_t k = 0; k < r; ++k) {
      const double b = B[o * r + k];
      const float* a = A + k * in;
      for (int64_t i = 0; i < in; ++i) row[i] += b * a[i];
    }
    // peft: delta = (B @ A) * scaling (fp32), W += delta
    for (int64_t i = 0; i < in; ++i) W[o * in + i] += static_cast<float>(row[i]) * scaling;
  }
}

io::LoraAdapterConfig check_adapter(const fs::path& adapter_dir, const io::ModelConfig& model_cfg,
                                    std::unique_ptr<io::SafetensorsFile>& file) {
  SFT_CHECK(fs::is_directory(adapter_dir), "--adapter ", adapter_dir.string(), ": not a folder");
  const io::LoraAdapterConfig acfg = io::load_adapter_config(adapter_dir);
  const fs::path wfile = adapter_dir / "adapter_model.safetensors";
  if (!fs::exists(wfile)) {
    SFT_CHECK(!fs::exists(adapter_dir / "adapter_model.bin"), adapter_dir.string(),
              ": only adapter_model.bin (pickle) found; re-save the adapter with safe_serialization=True "
              "(PeftModel.save_pretrained writes adapter_model.safetensors by default)");
    throw Error(adapter_dir.string() + ": no adapter_model.safetensors");
  }
  file = std::make_unique<io::SafetensorsFile>(wfile);
  const std::string where = (adapter_dir / "adapter_config.json").string();
  const std::vector<LinearInfo> linears = linear_layers(model_cfg);
  std::map<std::string, const LinearInfo*> targets;
  for (size_t i : resolve_lora_targets(acfg, linears, where + ": target_modules")) targets[linears[i].module] = &linears[i];
  std::map<std::string, std::vector<int64_t>> base_shapes;
  std::vector<std::string> base_names;
  for (const TensorSpec& w : tensor_table(model_cfg)) {
    base_shapes[w.name] = w.shape;
    base_names.push_back(w.name);
  }
  std::set<std::string> saved;
  for (const std::string& t : resolve_modules_to_save(acfg, base_names, where + ": modules_to_save")) saved.insert(t);
  const std::string prefix = io::kPeftPrefix;
  std::set<std::string> seen;
  for (const io::TensorInfo& t : file->tensors()) {
    const std::string& name = t.name;
    SFT_CHECK(name.rfind(prefix, 0) == 0, wfile.string(), ": tensor ", name, " does not start with ", prefix,
              " (not a peft LoRA adapter)");
    const std::string rest = name.substr(prefix.size());
    const bool is_a = ends_with(rest, ".lora_A.weight"), is_b = ends_with(rest, ".lora_B.weight");
    if (is_a || is_b) {
      const std::string module = rest.substr(0, rest.size() - std::string(".lora_A.weight").size());
      auto it = targets.find(module);
      SFT_CHECK(it != targets.end(), wfile.string(), ": tensor ", name, " adapts ", module,
                ", which is not a targeted linear layer of this base model (",
                model_cfg.model_type, ", ", model_cfg.num_hidden_layers, " layers)");
      const LinearInfo& L = *it->second;
      const std::vector<int64_t> want = is_a ? std::vector<int64_t>{acfg.r, L.in} : std::vector<int64_t>{L.out, acfg.r};
      SFT_CHECK(t.shape == want, wfile.string(), ": tensor ", name, " has shape ", io::shape_str(t.shape),
                " but the base model's ", module, " is [", L.out, ", ", L.in, "] with r ", acfg.r, ", so it must be ",
                io::shape_str(want));
    } else {
      auto it = base_shapes.find(rest);
      SFT_CHECK(it != base_shapes.end() && saved.count(rest), wfile.string(), ": tensor ", name,
                " is neither a LoRA tensor nor a tensor of a module in modules_to_save");
      SFT_CHECK(t.shape == it->second, wfile.string(), ": tensor ", name, " has shape ", io::shape_str(t.shape),
                " but the base model's ", rest, " is ", io::shape_str(it->second));
    }
    seen.insert(name);
  }
  for (const auto& [module, L] : targets)
    for (const std::string& n : {lora_a_name(module), lora_b_name(module)})
      SFT_CHECK(seen.count(n), wfile.string(), ": tensor ", n, " is missing (target_modules selects ", module, ")");
  for (const std::string& s : saved)
    SFT_CHECK(seen.count(prefix + s), wfile.string(), ": tensor ", prefix + s, " is missing (modules_to_save)");
  return acfg;
}

LoraPlan plan_lora(const io::ModelConfig& cfg, const io::LoraAdapterConfig& lora, int64_t n) {
  LoraPlan p;
  const std::vector<LinearInfo> linears = linear_layers(cfg);
  int64_t max_in = 0;
  for (size_t i : resolve_lora_targets(lora, linears, "--lora_target_modules")) {
    p.adapter_parameters += lora.r * (linears[i].in + linears[i].out);
    max_in = std::max(max_in, linears[i].in);
    ++p.targets;
  }
  std::vector<std::string> names;
  std::map<std::string, int64_t> numel;
  for (const TensorSpec& w : tensor_table(cfg)) {
    names.push_back(w.name);
    int64_t k = 1;
    for (int64_t d : w.shape) k *= d;
    numel[w.name] = k;
  }
  for (const std::string& t : resolve_modules_to_save(lora, names, "--lora_modules_to_save")) p.saved_parameters += numel[t];
  p.trainable_parameters = p.adapter_parameters + p.saved_parameters;
  p.all_parameters = num_parameters(cfg) + p.trainable_parameters;
  p.trainable_state_bytes = 16 * p.trainable_parameters;
  p.activation_bytes = 4 * (p.targets * n * lora.r + n * max_in + n * lora.r);
  return p;
}

std::unique_ptr<Model> load_model(const fs::path& dir, const fs::path& adapter_dir, backend::Backend& be, Precision p,
                                  bool allow_nonfinite_weights, const LoraOptions* storage) {
  LoraOptions o;
  if (storage) o = *storage;
  o.adapter_dir = adapter_dir;
  auto m = Model::load(dir, be, p, adapter_dir.empty() ? nullptr : &o);
  // After the load, so that a structural error (missing tensor, wrong shape, broken adapter) is reported first; the
  // files are mapped again, their pages still cached from the load.
  if (!allow_nonfinite_weights) {
    // A GGUF's blocks are decoded again (their f16 scales can hold inf/NaN); a folder's files are mapped again.
    check_finite_weights(io::is_gguf_file(dir) ? open_gguf_model(dir).weights : io::WeightStore::open(dir));
    if (!adapter_dir.empty()) check_finite_tensors(io::SafetensorsFile(adapter_dir / "adapter_model.safetensors"));
  }
  return m;
}

AdapterMerge::AdapterMerge(const io::ModelConfig& cfg, const fs::path& adapter_dir)
    : acfg_(check_adapter(adapter_dir, cfg, file_)) {}

AdapterMerge::~AdapterMerge() = default;

void AdapterMerge::check_finite() const { check_finite_tensors(*file_); }

void AdapterMerge::read(const TensorSpec& w, const io::WeightStore& store, std::vector<float>& v) const {
  const std::string prefix = io::kPeftPrefix;
  auto adapter_f32 = [&](const std::string& name, std::vector<float>& out) {
    const io::TensorInfo* t = file_->find(name);
    out.resize(static_cast<size_t>(t->numel()));
    io::convert_to_f32(t->dtype, file_->data(*t), t->numel(), out.data(), file_->path().string() + ": " + name);
  };
  if (file_->find(prefix + w.name)) {  // modules_to_save: the adapter holds the whole trained tensor
    adapter_f32(prefix + w.name, v);
    return;
  }
  v.resize(static_cast<size_t>(w.numel()));
  store.read_f32(w.name, v.data(), w.shape);
  if (!ends_with(w.name, ".weight")) return;
  const std::string module = module_of(w.name);
  if (!file_->find(lora_a_name(module))) return;
  std::vector<float> A, B;
  adapter_f32(lora_a_name(module), A);
  adapter_f32(lora_b_name(module), B);
  merge_lora_delta(v.data(), A.data(), B.data(), w.shape[0], w.shape[1], acfg_.r, static_cast<float>(acfg_.scaling()));
}

void merge_adapter_folder(const fs::path& base_dir, const fs::path& adapter_dir, const fs::path& out_dir,
                          const std::string& dtype, bool allow_nonfinite_weights) {
  SFT_CHECK(dtype == "float32" || dtype == "bfloat16", "--torch_dtype must be float32 or bfloat16, got '", dtype, "'");
  const io::ModelConfig cfg = load_config(base_dir / "config.json");
  const AdapterMerge merge(cfg, adapter_dir);
  SFT_CHECK(fs::absolute(out_dir) != fs::absolute(base_dir) && fs::absolute(out_dir) != fs::absolute(adapter_dir),
            "--output_dir must differ from --model and --adapter");
  if (fs::exists(out_dir))
    SFT_CHECK(fs::is_directory(out_dir) && fs::directory_iterator(out_dir) == fs::directory_iterator(),
              "--output_dir ", out_dir.string(), " exists and is not an empty folder");
  // A GGUF base: its tensors decoded under HF names (the merged folder gets the tokenizer files it stands for).
  const bool gguf_base = io::is_gguf_file(base_dir);
  const io::WeightStore store = gguf_base ? open_gguf_model(base_dir).weights : io::WeightStore::open(base_dir);
  if (!allow_nonfinite_weights) {
    merge.check_finite();
    if (!gguf_base) check_finite_weights(store);  // a GGUF base is checked tensor by tensor below, as merged
  }
  const std::vector<TensorSpec> specs = tensor_table(cfg);
  std::map<std::string, std::vector<float>> values;
  for (const TensorSpec& w : specs) {
    std::vector<float>& v = values[w.name];
    merge.read(w, store, v);
    // Finite inputs can still overflow (W + scaling B A past float's range): nothing non-finite is written.
    if (!allow_nonfinite_weights)
      check_finite_values(v.data(), static_cast<int64_t>(v.size()), "the merged tensor \"" + w.name + "\"");
  }
  std::vector<std::vector<uint16_t>> half;
  std::vector<io::TensorToWrite> out;
  for (const TensorSpec& w : specs) {
    const std::vector<float>& v = values[w.name];
    if (dtype == "bfloat16") {
      half.emplace_back(v.size());
      for (size_t i = 0; i < v.size(); ++i) half.back()[i] = float_to_bf16(v[i]);
      const auto* bits = reinterpret_cast<const uint8_t*>(half.back().data());
      const int64_t bad = first_nonfinite(io::DType::BF16, bits, static_cast<int64_t>(v.size()));
      // A finite float beyond bf16's largest value (3.39e38) rounds to inf.
      SFT_CHECK(allow_nonfinite_weights || bad < 0, "the merged tensor \"", w.name, "\" rounds to ",
                bad < 0 ? "" : nonfinite_name(io::DType::BF16, bits, bad), " in bfloat16 at element ", bad,
                "; refusing to write non-finite weights (pass ", kAllowNonfiniteFlag, " to write them anyway)");
      out.push_back({w.name, io::DType::BF16, w.shape, half.back().data()});
    } else {
      out.push_back({w.name, io::DType::F32, w.shape, v.data()});
    }
  }
  io::ModelConfig out_cfg = cfg;
  out_cfg.torch_dtype = dtype;
  fs::path od = fs::absolute(out_dir).lexically_normal();
  if (od.filename().empty()) od = od.parent_path();  // "out/" names the folder "out"
  const fs::path tmp = od.parent_path() / (".tmp-" + od.filename().string());
  fs::remove_all(tmp);
  try {
    io::save_hf_folder(tmp, config_to_json(out_cfg), std::move(out), base_dir);
    if (fs::exists(od)) fs::remove(od);  // empty (checked above)
    fs::rename(tmp, od);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace sft::model
