// The facts of a Hugging Face decoder config.json that sft uses, as plain data. Which keys exist, their defaults and
// which features a model_type has (biases, q/k norms, tied head) are stated by the model family specs
// (src/model/families/*.cpp via model/config.h), which fill this struct; io itself knows no model family.
#pragma once
#include <cstdint>
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
  std::string model_type;    // "qwen2", "llama", "qwen3", "gemma2" (model/families)
  std::string architecture;  // architectures[0], e.g. "Qwen2ForCausalLM"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;
  int64_t head_dim = 0;  // from config when present, else the family's rule (hidden_size / num_attention_heads)
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  double rope_theta = 10000.0;
  double rms_norm_eps = 1e-6;
  bool tie_word_embeddings = false;
  // Architecture features, set by the family spec from its config keys:
  bool attention_bias = false;  // q/k/v projections have a bias
  bool o_proj_bias = false;     // o_proj has a bias (Llama/Qwen3: = attention_bias; Qwen2: never)
  bool qk_norm = false;         // per-head RMSNorm of q and k over head_dim before RoPE (Qwen3)
  std::string hidden_act = "silu";  // MLP activation: "silu" (SwiGLU) or "gelu_pytorch_tanh" (GeGLU, Gemma)
  bool norm_unit_offset = false;    // every RMSNorm scales by (1 + w) instead of w (Gemma)
  bool sandwich_norms = false;      // attention and MLP outputs are RMS-normalised before the residual add (Gemma 2)
  bool scale_embeddings = false;    // embeddings multiplied by sqrt(hidden_size), cast to fp32 (Gemma)
  double query_pre_attn_scalar = 0;    // attention scale = query_pre_attn_scalar^-0.5; 0 = head_dim^-0.5
  double attn_logit_softcapping = 0;   // scores capped to c * tanh(s / c); 0 = none (Gemma 2)
  double final_logit_softcapping = 0;  // logits capped the same way; 0 = none (Gemma 2)
  int64_t sliding_window = 0;          // window of the sliding layers (below); 0 = none
  // Which layers slide: config "layer_types" ("full_attention" / "sliding_attention" per layer) when given, else
  // every other layer from layer 0 when alternate_sliding (Gemma 2's default, kept as that rule: a written config
  // stays as the source had it), else none.
  std::vector<std::string> layer_types;
  bool alternate_sliding = false;
  RopeScaling rope_scaling;
  std::string torch_dtype = "float32";
  std::optional<int64_t> bos_token_id, eos_token_id, pad_token_id;  // eos_token_id = first of eos_token_ids
  std::vector<int64_t> eos_token_ids;  // config "eos_token_id" may be an int or a list (Llama 3 Instruct)
  // The config.json text this was parsed from ("" when built in code). Serialising starts from it so that keys sft
  // does not interpret (transformers_version, use_mrope, sliding_window, ...) survive fine-tuning.
  std::string source_json;

  int64_t q_dim() const { return num_attention_heads * head_dim; }
  // The attention window of decoder layer l (0 = full attention).
  int64_t window_of(int64_t l) const {
    const bool slides = layer_types.empty() ? alternate_sliding && l % 2 == 0
                                            : static_cast<size_t>(l) < layer_types.size() &&
                                                  layer_types[static_cast<size_t>(l)] == "sliding_attention";
    return slides ? sliding_window : 0;
  }
  int64_t kv_dim() const { return num_key_value_heads * head_dim; }
};

}  // namespace sft::io
