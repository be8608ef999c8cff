// config.json of a Hugging Face decoder model folder (Qwen2/Qwen2.5, Llama/Llama 3.x, SmolLM2).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sft::io {

struct RopeScaling {  // Llama 3 "rope_scaling": {"rope_type"/"type": "llama3", ...}
  std::string type;   // "" = none, "llama3"
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string model_type;    // "qwen2" or "llama"
  std::string architecture;  // architectures[0], e.g. "Qwen2ForCausalLM"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // from config when present, else hidden_size / num_attention_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  bool attention_bias = false;  // q/k/v bias: always true for qwen2, config "attention_bias" for llama
  RopeScaling rope_scaling;
  std::string torch_dtype = "float32";
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id;  // eos_token_id = first of eos_token_ids
  std::vector<int64_t> eos_token_ids;  // config "eos_token_id" may be an int or a list (Llama 3 Instruct)
  // The config.json text this was parsed from ("" when built in code). model_config_to_json starts from it so that
  // keys sft does not interpret (transformers_version, use_mrope, sliding_window, ...) survive fine-tuning.
  std::string source_json;

  int64_t num_parameters() const;  // exact count as transformers reports (tied head counted once)
  int64_t num_embedding_parameters() const;  // vocab_size * hidden_size (embed_tokens; lm_head too when untied)
  // Llama's attention_bias also gives o_proj a bias (transformers LlamaAttention); Qwen2's o_proj never has one.
  bool o_proj_bias() const { return attention_bias && model_type != "qwen2"; }
  int64_t q_dim() const { return num_attention_heads * head_dim; }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
};

// The weights an HF checkpoint of this config holds, in transformers' names and shapes ([out, in] for projections):
// embed_tokens, per layer norms / q,k,v(+bias),o / gate,up,down, final norm, lm_head when untied. The sum of their
// element counts equals num_parameters().
struct WeightSpec {
  std::string name;
  std::vector<int64_t> shape;
};
std::vector<WeightSpec> hf_weight_specs(const ModelConfig& cfg);

// Parses and validates config.json (throws sft::Error naming the file and key).
ModelConfig load_model_config(const std::filesystem::path& config_json);  // a model folder works too
ModelConfig parse_model_config(const std::string& json_text, const std::string& path_for_errors);
// Serialises a config.json transformers loads (keeps model_type specific keys).
std::string model_config_to_json(const ModelConfig& cfg);

}  // namespace sft::io
