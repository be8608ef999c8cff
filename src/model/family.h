// Model families: everything that differs between Llama, Qwen2, Qwen3, Gemma 2, ... is stated in ONE place per family,
// src/model/families/<family>.cpp, as a FamilySpec: the config.json keys and their defaults (transformers'
// <Family>Config), the architecture features (q/k/v bias, o_proj bias, q/k norms, the MLP activation, (1 + w)
// norms, sandwich norms, soft-caps, sliding windows, embedding scaling) and which keys are written back. The decoder
// turns the features into its block choices (model/decoder.h LayerBlocks).
// From the parsed config, tensor_table() derives the one list of weights (HF name, shape, weight decay, role) that
// the decoder allocates, HF load/save read and write, the parameter count sums and `sft info` checks on disk.
//
// io::ModelConfig stays plain data in io (io knows no family); this layer fills it. Adding a family: see
// docs/ARCHITECTURE.md "How to add a model family".
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "io/hf_config.h"

namespace sft::io {
struct JsonReader;
}

namespace sft::model {

// What a tensor is for, independent of its HF name (the decoder maps roles to buffers; LoRA targets roles).
// PostNorm is the MLP's input norm (Llama's post_attention_layernorm, Gemma 2's pre_feedforward_layernorm);
// AttnOutNorm / MlpOutNorm normalise the attention / MLP output before the residual add (Gemma 2's sandwich norms:
// post_attention_layernorm, post_feedforward_layernorm). New roles go last: LoRA's dropout seed hashes the role.
enum class TensorRole : uint8_t {
  Embedding, InputNorm, QProj, QBias, KProj, KBias, VProj, VBias, QNorm, KNorm, OProj, OBias, PostNorm,
  GateProj, UpProj, DownProj, FinalNorm, LmHead, AttnOutNorm, MlpOutNorm
};

struct TensorSpec {
  std::string name;             // HF name, e.g. "model.layers.0.self_attn.q_proj.weight"
  std::vector<int64_t> shape;   // as transformers stores it ([out, in] for projections)
  bool decay = true;            // weight decay applies (false for norms and biases, as HF Trainer)
  TensorRole role = TensorRole::Embedding;
  int64_t layer = -1;           // decoder layer, -1 for embedding / final norm / head
  int64_t numel() const;
};

// Defaults of the shared config keys where transformers' config classes differ.
struct ConfigDefaults {
  std::optional<int64_t> num_key_value_heads;  // nullopt: = num_attention_heads
  int64_t max_position_embeddings = 2048;
  std::optional<int64_t> head_dim;             // nullopt: hidden_size / num_attention_heads
  std::optional<int64_t> bos_token_id, eos_token_id;
};

struct FamilySpec {
  std::string model_type;    // config.json "model_type"
  std::string architecture;  // architectures[0] transformers expects, e.g. "Qwen3ForCausalLM"
  ConfigDefaults defaults;
  // Reads the family's own keys into the feature fields of cfg (attention_bias, o_proj_bias, qk_norm, hidden_act, ...)
  // and rejects options the decoder does not implement (mlp bias, ...). Shared keys are already parsed.
  std::function<void(const io::JsonReader&, io::ModelConfig&)> read_features;
  // Writes the family's own keys into config.json (only keys its transformers config class has).
  std::function<void(nlohmann::json&, const io::ModelConfig&)> write_features;
};

// Every supported family (families/*.cpp), and the one for a model_type (throws naming the supported ones).
const std::vector<const FamilySpec*>& families();
const FamilySpec& family_of(const std::string& model_type, const std::string& where = "config.json");

// config.json <-> ModelConfig (transformers 4.x and 5.x generations: rope_theta/rope_scaling or rope_parameters,
// torch_dtype or dtype). Errors name the file and key.
io::ModelConfig load_config(const std::filesystem::path& config_json);  // a model folder works too
io::ModelConfig parse_config(const std::string& json_text, const std::string& path_for_errors);
std::string config_to_json(const io::ModelConfig& cfg);

// The weights of a model of this config in HF order (embedding; per layer: input norm, q/k/v (+bias), q/k norms,
// o (+bias), post norm, gate/up/down; final norm; lm_head when untied).
std::vector<TensorSpec> tensor_table(const io::ModelConfig& cfg);
int64_t num_parameters(const io::ModelConfig& cfg);            // as transformers reports (tied head once)
int64_t num_embedding_parameters(const io::ModelConfig& cfg);  // embed_tokens (vocab_size * hidden_size)

}  // namespace sft::model
