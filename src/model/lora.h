// LoRA (peft semantics): for a targeted linear layer y = x W^T (+ b) becomes
//     y = x W^T (+ b) + scaling * (dropout(x) A^T) B^T,   A [r, in], B [out, r], scaling = alpha/r (alpha/sqrt(r) rsLoRA)
// with W frozen. A starts kaiming-uniform (a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in))), B at zero, so training starts
// from the base model exactly. This file holds the adapter tensors and the two halves of the LoRA term (forward and
// backward) that the decoder's linear seam calls, the target / modules_to_save resolution, and merging.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/hf_config.h"
#include "io/peft_adapter.h"
#include "io/safetensors.h"
#include "backend/device_buffer.h"
#include "model/family.h"
#include "model/model.h"

namespace sft::model {

using backend::DeviceBuffer;

// A linear layer as LoRA sees it: transformers module name (e.g. model.layers.0.mlp.up_proj) and its shape.
struct LinearInfo {
  std::string module;
  int64_t in = 0, out = 0;
};

// Every linear layer of a model of this config, in HF order (per layer q,k,v,o,gate,up,down; lm_head last when untied).
std::vector<LinearInfo> linear_layers(const io::ModelConfig& cfg);

// The linear layers a config adapts (indices into `linears`), as peft selects them: "all-linear" = every linear except
// the output head; a list entry matches a module whose name equals it or ends with "." + entry; a string other than
// "all-linear" is a regex matched against the whole name. Stricter than peft: every list entry must match a layer,
// and the output head cannot be adapted. Errors name `flag` (e.g. "--lora_target_modules").
std::vector<size_t> resolve_lora_targets(const io::LoraAdapterConfig& cfg, const std::vector<LinearInfo>& linears,
                                         const std::string& flag);
// Base tensors (HF names) that modules_to_save makes trainable: every tensor of a module whose name equals an entry
// or ends with "." + entry. Each entry must match. Errors name `flag`.
std::vector<std::string> resolve_modules_to_save(const io::LoraAdapterConfig& cfg,
                                                 const std::vector<std::string>& tensor_names, const std::string& flag);

// peft's names for the adapter tensors of a module.
std::string lora_a_name(const std::string& module);  // base_model.model.<module>.lora_A.weight
std::string lora_b_name(const std::string& module);  // base_model.model.<module>.lora_B.weight

// The adapter tensors of the targeted layers (fp32 values and gradients in backend memory) and the LoRA term.
class LoraAdapters {
 public:
  LoraAdapters(backend::Backend& be, io::LoraAdapterConfig cfg, std::vector<LinearInfo> targets);
  const io::LoraAdapterConfig& config() const { return cfg_; }
  size_t size() const { return targets_.size(); }
  const LinearInfo& target(size_t t) const { return targets_[t]; }
  float scaling() const { return scaling_; }

  // peft's default init: A ~ U(-1/sqrt(in), 1/sqrt(in)) from a seeded generator, B = 0.
  void init_random(uint64_t seed);
  // Values from an adapter_model.safetensors: every target's lora_A / lora_B must be present with [r, in] / [out, r];
  // any LoRA tensor of a module that is not a target is an error (the adapter and this model disagree).
  void load(const io::SafetensorsFile& f);
  // Host copies of every A and B under peft's names (for saving).
  void download(std::map<std::string, std::vector<float>>& out);
  std::vector<ParamRef> parameters();  // lora_A then lora_B of each target, peft names, no weight-decay exemption
  void zero_grad();
  int64_t num_parameters() const;

  // Buffers for n token rows (the u = dropout(x) A^T of every target is kept for the backward). Reallocates only to
  // grow; call before the forward of a batch, never between a forward and its backward.
  void reserve(int64_t n);
  // y[n, out] += scaling * dropout(x) A^T B^T. dropout_p is 0 outside training; seed picks the mask.
  void forward(size_t t, const float* x, int64_t n, float* y, float dropout_p, uint64_t seed);
  // The backward in two halves, so that dx may overwrite x in between (same dropout_p / seed as the forward):
  // backward_weights: given dy = dL/dy [n, out] and the forward's x, dA and dB (+=); keeps du = s dy B.
  // backward_input: dx (+=) the LoRA term's input gradient, dropout(du A), from the du kept by backward_weights.
  void backward_weights(size_t t, const float* x, const float* dy, int64_t n, float dropout_p, uint64_t seed);
  void backward_input(size_t t, int64_t n, float* dx, float dropout_p, uint64_t seed);
  // The dropout masks' row keys of the next passes (model::Batch::dropout_keys: one per token row, so that a token
  // gets the same mask wherever batching puts it); empty = a row's index in the batch.
  void set_row_keys(std::vector<int64_t> keys) { row_keys_ = std::move(keys); }

 private:
  // y = dropout(x) over n rows of `in` values (y may equal x): Backend::dropout, or with row keys row j's mask drawn
  // from (seed, row_keys_[j]) on the host.
  void dropout_rows(float* y, const float* x, int64_t n, int64_t in, float p, uint64_t seed);
  backend::Backend& be_;
  io::LoraAdapterConfig cfg_;
  std::vector<LinearInfo> targets_;
  float scaling_ = 1.0f;
  int64_t r_ = 0, max_in_ = 0;
  std::vector<int64_t> off_a_, off_b_;  // offsets into values_ / grads_
  int64_t total_ = 0;
  DeviceBuffer<float> values_, grads_;
  int64_t rows_ = 0;                   // capacity of u_ / xd_ / du_ in token rows
  DeviceBuffer<float> u_, xd_, du_;    // u_: [targets, rows, r]; xd_: [rows, max_in] scratch; du_: [rows, r]
  std::vector<int64_t> row_keys_;
};

// W [out, in] += scaling * B [out, r] @ A [r, in], in fp32 (products summed in double, rounded once) — peft's
// get_delta_weight + merge.
void merge_lora_delta(float* W, const float* A, const float* B, int64_t out, int64_t in, int64_t r, float scaling);

// A peft adapter merged into base weights one tensor at a time (`sft merge`, `sft export --adapter`): the adapter is
// checked against the model first (check_adapter); read() gives a tensor's merged values (W + scaling B A for an
// adapted projection, the adapter's own copy for a modules_to_save tensor, the base value otherwise).
class AdapterMerge {
 public:
  AdapterMerge(const io::ModelConfig& cfg, const std::filesystem::path& adapter_dir);
  ~AdapterMerge();
  void read(const TensorSpec& w, const io::WeightStore& base, std::vector<float>& values) const;
  // Throws naming the tensor when the adapter file holds a NaN/inf (model/weight_check.h).
  void check_finite() const;

 private:
  std::unique_ptr<io::SafetensorsFile> file_;
  io::LoraAdapterConfig acfg_;
};

// `sft merge`: base HF folder + peft adapter folder -> a merged HF folder (dtype "float32" or "bfloat16"), written
// into a temp folder and renamed, so a failed merge leaves nothing. Checks every adapter tensor against the base
// model's shapes first (an error names the tensor).
// Non-finite values in the base, the adapter or the merged result are refused (model/weight_check.h) unless
// allow_nonfinite_weights.
void merge_adapter_folder(const std::filesystem::path& base_dir, const std::filesystem::path& adapter_dir,
                          const std::filesystem::path& out_dir, const std::string& dtype,
                          bool allow_nonfinite_weights = false);

// What LoRA training of a model costs, for `sft info` (the decoder allocates exactly these adapter-side buffers).
struct LoraPlan {
  int64_t adapter_parameters = 0;   // sum of r*(in+out) over the targets
  int64_t saved_parameters = 0;     // elements of the modules_to_save tensors (trained in full)
  int64_t trainable_parameters = 0; // adapter + saved
  int64_t all_parameters = 0;       // peft's "all params": base + adapter + a copy of every saved tensor
  int64_t targets = 0;              // adapted linear layers
  // bytes: adapters and saved tensors need fp32 value + grad + AdamW m, v (16 B each); the LoRA activations are
  // u = x A^T [n, r] per target, plus scratch [n, max_in] (input dropout) and du [n, r]
  int64_t trainable_state_bytes = 0, activation_bytes = 0;
};
LoraPlan plan_lora(const io::ModelConfig& cfg, const io::LoraAdapterConfig& lora, int64_t n_tokens);

// The model of `sft eval/generate/chat --model DIR [--adapter ADAPTER]`: the base alone, or with the peft adapter
// attached (not merged; the adapter is checked against the base first). A NaN/inf in the base's or the adapter's
// weights is an error naming the tensor unless allow_nonfinite_weights (model/weight_check.h).
// storage (optional, with an adapter): how the frozen base is kept (LoraOptions' load_in_4bit / bnb_* fields).
std::unique_ptr<Model> load_model(const std::filesystem::path& dir, const std::filesystem::path& adapter_dir,
                                  backend::Backend& be, Precision p, bool allow_nonfinite_weights = false,
                                  const LoraOptions* storage = nullptr);

// Reads an adapter folder, checks it against the model config (names, shapes, r) and returns its config; shared by
// merge and Model::load_adapter. `file` receives the opened adapter_model.safetensors.
io::LoraAdapterConfig check_adapter(const std::filesystem::path& adapter_dir, const io::ModelConfig& model_cfg,
                                    std::unique_ptr<io::SafetensorsFile>& file);

}  // namespace sft::model
