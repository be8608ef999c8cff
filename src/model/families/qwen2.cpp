// Qwen2 / Qwen2.5 (transformers Qwen2Config, Qwen2ForCausalLM): Llama with q/k/v bias always on, o_proj never
// biased, 32 kv heads and 32768 positions by default, no default bos/eos. Sliding-window attention is refused.
#include <nlohmann/json.hpp>

#include "io/json_reader.h"
#include "model/family.h"

namespace sft::model {

const FamilySpec& qwen2_family() {
  static const FamilySpec spec{
      .model_type = "qwen2",
      .architecture = "Qwen2ForCausalLM",
      .defaults = {.num_key_value_heads = 32, .max_position_embeddings = 32768, .head_dim = std::nullopt,
                   .bos_token_id = std::nullopt, .eos_token_id = std::nullopt},
      .read_features =
          [](const io::JsonReader& rd, io::ModelConfig& c) {
            c.attention_bias = true;
            c.o_proj_bias = false;
            SFT_CHECK(!rd.get_bool("use_sliding_window", false), rd.where,
                      ": use_sliding_window true is not supported (full causal attention only)");
          },
      .write_features =
          [](nlohmann::json& j, const io::ModelConfig&) {
            if (!j.contains("use_sliding_window")) j["use_sliding_window"] = false;
          },
  };
  return spec;
}

}  // namespace sft::model
