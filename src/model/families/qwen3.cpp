// Qwen3 dense (transformers Qwen3Config, Qwen3ForCausalLM): Qwen2 with RMSNorm of every q and k head over head_dim
// before RoPE (q_norm, k_norm), q/k/v AND o_proj bias from "attention_bias" (default false), and head_dim read from
// the config (default 128, not hidden_size / heads). Sliding-window attention is refused.
#include <nlohmann/json.hpp>

#include "io/json_reader.h"
#include "model/family.h"

namespace sft::model {

const FamilySpec& qwen3_family() {
  static const FamilySpec spec{
      .model_type = "qwen3",
      .architecture = "Qwen3ForCausalLM",
      .defaults = {.num_key_value_heads = 32, .max_position_embeddings = 32768, .head_dim = 128,
                   .bos_token_id = std::nullopt, .eos_token_id = std::nullopt},
      .read_features =
          [](const io::JsonReader& rd, io::ModelConfig& c) {
            c.attention_bias = rd.get_bool("attention_bias", false);
            c.o_proj_bias = c.attention_bias;
            c.qk_norm = true;
            SFT_CHECK(!rd.get_bool("use_sliding_window", false), rd.where,
                      ": use_sliding_window true is not supported (full causal attention only)");
          },
      .write_features =
          [](nlohmann::json& j, const io::ModelConfig& c) {
            j["attention_bias"] = c.attention_bias;
            j["head_dim"] = c.head_dim;  // Qwen3Config defaults it to 128, never to hidden_size / heads
            if (!j.contains("use_sliding_window")) j["use_sliding_window"] = false;
          },
  };
  return spec;
}

}  // namespace sft::model
