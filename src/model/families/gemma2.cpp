// Gemma 2 (transformers Gemma2Config, Gemma2ForCausalLM, modeling_gemma2.py): Llama's layout with every block
// feature of the Gemma line switched on in the decoder's block choices (model/decoder.h LayerBlocks):
//  - MLP: GeGLU with the tanh GELU ("hidden_activation", default gelu_pytorch_tanh; "hidden_act" is not what
//    Gemma2MLP reads);
//  - RMSNorm scaling by (1 + w) in fp32 (Gemma2RMSNorm), also the final norm;
//  - sandwich norms: post_attention_layernorm normalises the attention output before the residual add,
//    pre_feedforward_layernorm is the MLP's input norm, post_feedforward_layernorm normalises the MLP output;
//  - embeddings multiplied by sqrt(hidden_size) (cast to fp32, the activations' dtype here);
//  - attention scale query_pre_attn_scalar^-0.5 (default 256), scores soft-capped by attn_logit_softcapping (50),
//    logits by final_logit_softcapping (30); null turns either off;
//  - sliding-window attention (sliding_window, default 4096) on the layers "layer_types" marks sliding_attention;
//    without layer_types transformers makes the even layers (0, 2, ...) sliding (kept as that rule);
//  - head_dim from the config (default 256), tied embeddings by default, q/k/v/o biased only with attention_bias.
// Bidirectional attention (use_bidirectional_attention, an embedding-model option) is refused.
#include <nlohmann/json.hpp>

#include "io/json_reader.h"
#include "model/family.h"

namespace sft::model {

const FamilySpec& gemma2_family() {
  static const FamilySpec spec{
      .model_type = "gemma2",
      .architecture = "Gemma2ForCausalLM",
      .defaults = {.num_key_value_heads = 4, .max_position_embeddings = 8192, .head_dim = 256, .bos_token_id = 2,
                   .eos_token_id = 1},
      .read_features =
          [](const io::JsonReader& rd, io::ModelConfig& c) {
            c.attention_bias = rd.get_bool("attention_bias", false);
            c.o_proj_bias = c.attention_bias;
            c.tie_word_embeddings = rd.get_bool("tie_word_embeddings", true);
            c.hidden_act = rd.get_string("hidden_activation", "gelu_pytorch_tanh");
            c.norm_unit_offset = true;
            c.sandwich_norms = true;
            c.scale_embeddings = true;
            c.query_pre_attn_scalar = rd.get_double("query_pre_attn_scalar", 256);
            SFT_CHECK(c.query_pre_attn_scalar > 0, rd.where, ": query_pre_attn_scalar must be positive");
            // An explicit null turns a cap off (transformers: `if softcap is not None`).
            auto cap = [&](const char* key, double dflt) {
              const double v = rd.j.contains(key) && rd.j[key].is_null() ? 0.0 : rd.get_double(key, dflt);
              SFT_CHECK(v >= 0, rd.where, ": ", key, " must be positive or null, got ", v);
              return v;
            };
            c.attn_logit_softcapping = cap("attn_logit_softcapping", 50.0);
            c.final_logit_softcapping = cap("final_logit_softcapping", 30.0);
            const bool null_window = rd.j.contains("sliding_window") && rd.j["sliding_window"].is_null();
            c.sliding_window = null_window ? 0 : rd.get_int("sliding_window", 4096);
            SFT_CHECK(c.sliding_window >= 0, rd.where, ": sliding_window must be positive or null");
            c.layer_types.clear();
            c.alternate_sliding = !rd.present("layer_types");  // transformers' default: layers 0, 2, 4, ... slide
            if (rd.present("layer_types")) {
              const nlohmann::json& lt = rd.j["layer_types"];
              SFT_CHECK(lt.is_array() && static_cast<int64_t>(lt.size()) == c.num_hidden_layers, rd.where,
                        ": \"layer_types\" must be a list of num_hidden_layers (", c.num_hidden_layers, ") strings");
              for (const nlohmann::json& t : lt) {
                SFT_CHECK(t.is_string() && (t == "full_attention" || t == "sliding_attention"), rd.where,
                          ": \"layer_types\" entries must be \"full_attention\" or \"sliding_attention\", got ",
                          t.dump());
                c.layer_types.push_back(t.get<std::string>());
              }
            }
            SFT_CHECK(!rd.get_bool("use_bidirectional_attention", false), rd.where,
                      ": use_bidirectional_attention true is not supported (causal language models only)");
          },
      .write_features =
          [](nlohmann::json& j, const io::ModelConfig& c) {
            auto or_null = [](double v) { return v > 0 ? nlohmann::json(v) : nlohmann::json(nullptr); };
            j["attention_bias"] = c.attention_bias;
            j["head_dim"] = c.head_dim;  // Gemma2Config defaults it to 256, never to hidden_size / heads
            j["hidden_activation"] = c.hidden_act;
            // an int in Gemma2Config (a strict dataclass): written as one when it is integral
            const double q = c.query_pre_attn_scalar;
            j["query_pre_attn_scalar"] = q == static_cast<double>(static_cast<int64_t>(q))
                                             ? nlohmann::json(static_cast<int64_t>(q))
                                             : nlohmann::json(q);
            j["attn_logit_softcapping"] = or_null(c.attn_logit_softcapping);
            j["final_logit_softcapping"] = or_null(c.final_logit_softcapping);
            j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json(nullptr);
            if (!c.layer_types.empty()) j["layer_types"] = c.layer_types;  // else transformers' default again
          },
  };
  return spec;
}

}  // namespace sft::model
