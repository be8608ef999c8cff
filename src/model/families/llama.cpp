// Llama / Llama 3.x / SmolLM2 (transformers LlamaConfig, LlamaForCausalLM): the base decoder. attention_bias gives
// q/k/v AND o_proj a bias (LlamaAttention); no MLP bias; Llama 3 RoPE scaling is read by the shared part.
#include <nlohmann/json.hpp>

#include "io/json_reader.h"
#include "model/family.h"

namespace sft::model {

const FamilySpec& llama_family() {
  static const FamilySpec spec{
      .model_type = "llama",
      .architecture = "LlamaForCausalLM",
      .defaults = {.num_key_value_heads = std::nullopt, .max_position_embeddings = 2048, .head_dim = std::nullopt,
                   .bos_token_id = 1, .eos_token_id = 2},
      .read_features =
          [](const io::JsonReader& rd, io::ModelConfig& c) {
            c.attention_bias = rd.get_bool("attention_bias", false);
            c.o_proj_bias = c.attention_bias;
            SFT_CHECK(!rd.get_bool("mlp_bias", false), rd.where, ": mlp_bias true is not supported");
          },
      .write_features =
          [](nlohmann::json& j, const io::ModelConfig& c) {
            j["attention_bias"] = c.attention_bias;
            j["mlp_bias"] = false;
          },
  };
  return spec;
}

}  // namespace sft::model
