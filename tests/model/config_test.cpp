// config.json parsing by the model family specs (model/family.h) against the published configs of the supported
// models (tests/fixtures/io/configs, written from the values on the Hugging Face hub). Parameter counts are the ones
// transformers' num_parameters() reports (cross-checked against transformers itself in tests/io/test_hf_config.py).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "source_dir.h"
#include "model/family.h"
#include "util/error.h"

using namespace sft::io;
using namespace sft::model;

namespace {

std::string fixture(const std::string& name) { return std::string(sft::test::source_dir()) + "/tests/fixtures/io/configs/" + name; }

// A minimal valid llama config with one key replaced (or removed when value is "<absent>").
std::string llama_with(const std::string& key, const std::string& value) {
  nlohmann::json j = nlohmann::json::parse(R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,
    "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100})");
  if (value == "<absent>") j.erase(key);
  else j[key] = nlohmann::json::parse(value);
  return j.dump();
}

void expect_error(const std::string& text, const std::string& needle) {
  try {
    parse_config(text, "cfg.json");
    FAIL() << "no error for " << text;
  } catch (const sft::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("cfg.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
  }
}

}  // namespace

TEST(HfConfig, Qwen25_05B) {
  ModelConfig c = load_config(fixture("qwen2.5-0.5b.json"));
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_EQ(c.architecture, "Qwen2ForCausalLM");
  EXPECT_EQ(c.hidden_size, 896);
  EXPECT_EQ(c.intermediate_size, 4864);
  EXPECT_EQ(c.num_hidden_layers, 24);
  EXPECT_EQ(c.num_attention_heads, 14);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 151936);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_TRUE(c.attention_bias);  // Qwen2 always has q/k/v biases
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.bos_token_id, 151643);
  EXPECT_EQ(c.eos_token_id, 151643);
  EXPECT_FALSE(c.pad_token_id.has_value());
  EXPECT_EQ(num_parameters(c), 494'032'768);
  EXPECT_EQ(num_embedding_parameters(c), 136'134'656);
}

TEST(HfConfig, Qwen25_15B) {
  ModelConfig c = load_config(fixture("qwen2.5-1.5b.json"));
  EXPECT_EQ(c.hidden_size, 1536);
  EXPECT_EQ(c.intermediate_size, 8960);
  EXPECT_EQ(c.num_hidden_layers, 28);
  EXPECT_EQ(c.num_attention_heads, 12);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(num_parameters(c), 1'543'714'304);
}

TEST(HfConfig, Llama32_1B_RopeScaling) {
  ModelConfig c = load_config(fixture("llama-3.2-1b.json"));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 32.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.low_freq_factor, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.eos_token_id, 128001);
  EXPECT_EQ(num_parameters(c), 1'235'814'400);
}

TEST(HfConfig, SmolLM2_135M) {
  ModelConfig c = load_config(fixture("smollm2-135m.json"));
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e5);  // written as the integer 100000 in the published file
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope_scaling.type, "");  // "rope_scaling": null
  EXPECT_EQ(num_parameters(c), 134'515'008);
}

TEST(HfConfig, Transformers5RopeParametersAndDtype) {
  // The folder scripts/convert_smollm2.py writes with transformers 5 ("rope_parameters", "dtype", explicit head_dim).
  ModelConfig c = load_config(fixture("smollm2-135m-instruct-tf5.json"));
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e5);
  EXPECT_EQ(c.rope_scaling.type, "");
  EXPECT_EQ(c.torch_dtype, "float32");
  EXPECT_EQ(c.bos_token_id, 1);
  EXPECT_EQ(c.eos_token_id, 2);
  EXPECT_EQ(c.pad_token_id, 2);
  EXPECT_EQ(num_parameters(c), 134'515'008);

  auto j = nlohmann::json::parse(llama_with("rope_parameters", R"({"rope_type":"llama3","rope_theta":500000.0,
      "factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192})"));
  ModelConfig l3 = parse_config(j.dump(), "cfg.json");
  EXPECT_DOUBLE_EQ(l3.rope_theta, 500000.0);
  EXPECT_EQ(l3.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(l3.rope_scaling.factor, 8.0);
}

TEST(HfConfig, RopeScalingOldTypeKeyAndDefault) {
  ModelConfig c = parse_config(llama_with("rope_scaling", R"({"type":"llama3","factor":8.0,
      "low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192})"), "cfg.json");
  EXPECT_EQ(c.rope_scaling.type, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_scaling.factor, 8.0);
  ModelConfig d = parse_config(llama_with("rope_scaling", R"({"rope_type":"default"})"), "cfg.json");
  EXPECT_EQ(d.rope_scaling.type, "");
  expect_error(llama_with("rope_scaling", R"({"rope_type":"yarn","factor":4.0})"), "yarn");
  expect_error(llama_with("rope_scaling", R"({"rope_type":"linear","factor":4.0})"), "not supported");
}

TEST(HfConfig, EosTokenIdList) {
  ModelConfig c = parse_config(llama_with("eos_token_id", "[128001, 128008, 128009]"), "cfg.json");
  EXPECT_EQ(c.eos_token_id, 128001);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  // The list survives serialisation.
  ModelConfig back = parse_config(config_to_json(c), "out.json");
  EXPECT_EQ(back.eos_token_ids, c.eos_token_ids);
  expect_error(llama_with("eos_token_id", R"([1, "2"])"), "eos_token_id");
}

TEST(HfConfig, DefaultsFollowTransformers) {
  ModelConfig c = parse_config(llama_with("num_key_value_heads", "<absent>"), "cfg.json");
  EXPECT_EQ(c.num_key_value_heads, 4);  // LlamaConfig: kv heads default to attention heads
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_FALSE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_EQ(c.bos_token_id, 1);  // LlamaConfig defaults bos 1, eos 2
  EXPECT_EQ(c.eos_token_id, 2);
  ModelConfig hd = parse_config(llama_with("head_dim", "32"), "cfg.json");
  EXPECT_EQ(hd.head_dim, 32);  // explicit head_dim wins over hidden/heads
  EXPECT_EQ(hd.q_dim(), 128);
  ModelConfig bias = parse_config(llama_with("attention_bias", "true"), "cfg.json");
  EXPECT_TRUE(bias.attention_bias);
  EXPECT_TRUE(bias.o_proj_bias);  // LlamaAttention: o_proj bias follows attention_bias (Qwen2: never)
  ModelConfig nobias = parse_config(llama_with("attention_bias", "false"), "cfg.json");
  // q (64) + k (32) + v (32) + o (64) biases per layer, 2 layers.
  EXPECT_EQ(num_parameters(bias) - num_parameters(nobias), 2 * (64 + 32 + 32 + 64));
  // Untied: lm_head counted.
  ModelConfig untied = parse_config(llama_with("tie_word_embeddings", "false"), "cfg.json");
  ModelConfig tied = parse_config(llama_with("tie_word_embeddings", "true"), "cfg.json");
  EXPECT_EQ(num_parameters(untied) - num_parameters(tied), 100 * 64);
}

TEST(HfConfig, ErrorsNameFileAndKey) {
  expect_error("{not json", "not valid JSON");
  expect_error("[1,2]", "JSON object");
  expect_error(llama_with("model_type", R"("gpt2")"), "gpt2");
  expect_error(llama_with("hidden_size", "<absent>"), "hidden_size");
  expect_error(llama_with("hidden_size", R"("64")"), "hidden_size");
  expect_error(llama_with("hidden_size", "64.5"), "hidden_size");
  expect_error(llama_with("num_hidden_layers", "0"), "positive");
  expect_error(llama_with("num_key_value_heads", "3"), "multiple of num_key_value_heads");
  expect_error(llama_with("num_attention_heads", "6"), "not a multiple of num_attention_heads");
  expect_error(llama_with("hidden_act", R"("gelu")"), "gelu");
  expect_error(llama_with("tie_word_embeddings", "1"), "tie_word_embeddings");
  expect_error(llama_with("architectures", R"(["Qwen2ForCausalLM"])"), "Qwen2ForCausalLM");
  expect_error(llama_with("mlp_bias", "true"), "mlp_bias");
  expect_error(llama_with("rope_scaling", "[1]"), "rope_scaling");
  auto j = nlohmann::json::parse(llama_with("model_type", R"("qwen2")"));
  j["use_sliding_window"] = true;
  expect_error(j.dump(), "use_sliding_window");
  EXPECT_THROW(load_config("/nonexistent/dir/config.json"), sft::Error);
}

TEST(HfConfig, JsonRoundTripKeepsEveryField) {
  for (const char* name : {"qwen2.5-0.5b.json", "qwen2.5-1.5b.json", "llama-3.2-1b.json", "smollm2-135m.json",
                           "smollm2-135m-instruct-tf5.json", "qwen3-0.6b.json", "gemma-2-2b.json"}) {
    SCOPED_TRACE(name);
    ModelConfig a = load_config(fixture(name));
    ModelConfig b = parse_config(config_to_json(a), "roundtrip.json");
    EXPECT_EQ(a.model_type, b.model_type);
    EXPECT_EQ(a.architecture, b.architecture);
    EXPECT_EQ(a.hidden_size, b.hidden_size);
    EXPECT_EQ(a.intermediate_size, b.intermediate_size);
    EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
    EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
    EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
    EXPECT_EQ(a.head_dim, b.head_dim);
    EXPECT_EQ(a.vocab_size, b.vocab_size);
    EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
    EXPECT_DOUBLE_EQ(a.rope_theta, b.rope_theta);
    EXPECT_DOUBLE_EQ(a.rms_norm_eps, b.rms_norm_eps);
    EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
    EXPECT_EQ(a.attention_bias, b.attention_bias);
    EXPECT_EQ(a.o_proj_bias, b.o_proj_bias);
    EXPECT_EQ(a.qk_norm, b.qk_norm);
    EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
    EXPECT_DOUBLE_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
    EXPECT_EQ(a.torch_dtype, b.torch_dtype);
    EXPECT_EQ(a.bos_token_id, b.bos_token_id);
    EXPECT_EQ(a.eos_token_ids, b.eos_token_ids);
    EXPECT_EQ(a.pad_token_id, b.pad_token_id);
    EXPECT_EQ(a.hidden_act, b.hidden_act);
    EXPECT_EQ(a.norm_unit_offset, b.norm_unit_offset);
    EXPECT_EQ(a.sandwich_norms, b.sandwich_norms);
    EXPECT_EQ(a.scale_embeddings, b.scale_embeddings);
    EXPECT_DOUBLE_EQ(a.query_pre_attn_scalar, b.query_pre_attn_scalar);
    EXPECT_DOUBLE_EQ(a.attn_logit_softcapping, b.attn_logit_softcapping);
    EXPECT_DOUBLE_EQ(a.final_logit_softcapping, b.final_logit_softcapping);
    EXPECT_EQ(a.sliding_window, b.sliding_window);
    EXPECT_EQ(a.layer_types, b.layer_types);
    EXPECT_EQ(a.alternate_sliding, b.alternate_sliding);
    EXPECT_EQ(num_parameters(a), num_parameters(b));
  }
  // Keys sft does not interpret survive (they matter to transformers).
  ModelConfig q = load_config(fixture("qwen2.5-0.5b.json"));
  auto out = nlohmann::json::parse(config_to_json(q));
  EXPECT_EQ(out["max_window_layers"], 24);
  EXPECT_EQ(out["use_mrope"], false);
  EXPECT_FALSE(out.contains("head_dim"));  // Qwen2Config has none and it equals hidden/heads
  // A config built in code (no source) serialises to something parseable too.
  ModelConfig fresh;
  fresh.model_type = "qwen2";
  fresh.hidden_size = 32;
  fresh.intermediate_size = 64;
  fresh.num_hidden_layers = 1;
  fresh.num_attention_heads = 4;
  fresh.num_key_value_heads = 2;
  fresh.head_dim = 8;
  fresh.vocab_size = 50;
  fresh.max_position_embeddings = 128;
  fresh.attention_bias = true;
  ModelConfig fb = parse_config(config_to_json(fresh), "fresh.json");
  EXPECT_EQ(num_parameters(fb), num_parameters(fresh));
  EXPECT_EQ(fb.architecture, "Qwen2ForCausalLM");
}

TEST(HfConfig, TensorTableSumsToParameterCount) {
  for (const char* name : {"qwen2.5-0.5b.json", "llama-3.2-1b.json", "smollm2-135m.json", "qwen3-0.6b.json",
                           "gemma-2-2b.json"}) {
    ModelConfig c = load_config(fixture(name));
    int64_t n = 0;
    for (const auto& w : tensor_table(c)) n += w.numel();
    EXPECT_EQ(n, num_parameters(c)) << name;
  }
  ModelConfig q = load_config(fixture("qwen2.5-0.5b.json"));
  auto specs = tensor_table(q);
  EXPECT_EQ(specs.size(), 1 + 24 * 12 + 1u);  // embed, 12 per layer (with 3 biases), final norm; tied: no lm_head
  EXPECT_EQ(specs[2].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(specs[3].name, "model.layers.0.self_attn.q_proj.bias");  // HF order: each bias follows its weight
  EXPECT_EQ(specs[4].shape, (std::vector<int64_t>{128, 896}));  // k_proj: kv heads 2 * head_dim 64
  EXPECT_EQ(specs[4].role, TensorRole::KProj);
  EXPECT_FALSE(specs[3].decay);  // biases and norms: no weight decay
}

TEST(HfConfig, Qwen3_06B) {
  ModelConfig c = load_config(fixture("qwen3-0.6b.json"));
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_EQ(c.architecture, "Qwen3ForCausalLM");
  EXPECT_EQ(c.head_dim, 128);  // from the config, not hidden 1024 / 16 heads = 64
  EXPECT_EQ(c.q_dim(), 2048);
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_FALSE(c.o_proj_bias);
  EXPECT_EQ(c.eos_token_id, 151645);
  // embed 151936*1024 + 28 * (q 2048*1024 + k,v 2*1024*1024 + o 1024*2048 + q/k norms 2*128 + norms 2*1024
  // + mlp 3*1024*3072) + final norm 1024 (tied head)
  EXPECT_EQ(num_parameters(c), 596'049'920);  // transformers: tests/io/test_hf_config.py
  auto t = tensor_table(c);
  EXPECT_EQ(t[6].name, "model.layers.0.self_attn.q_norm.weight");
  EXPECT_EQ(t[6].shape, (std::vector<int64_t>{128}));
  EXPECT_EQ(t[6].role, TensorRole::QNorm);
  // Qwen3Config defaults: head_dim 128 even when hidden/heads differs; attention_bias gives o_proj a bias too.
  nlohmann::json j = nlohmann::json::parse(R"({"model_type":"qwen3","hidden_size":64,"intermediate_size":128,
    "num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,"attention_bias":true})");
  ModelConfig d = parse_config(j.dump(), "cfg.json");
  EXPECT_EQ(d.head_dim, 128);
  EXPECT_TRUE(d.attention_bias && d.o_proj_bias);
  auto back = nlohmann::json::parse(config_to_json(d));
  EXPECT_EQ(back["head_dim"], 128);
  EXPECT_EQ(back["attention_bias"], true);
}

TEST(HfConfig, Gemma2_2B) {
  ModelConfig c = load_config(fixture("gemma-2-2b.json"));
  EXPECT_EQ(c.model_type, "gemma2");
  EXPECT_EQ(c.architecture, "Gemma2ForCausalLM");
  EXPECT_EQ(c.head_dim, 256);
  EXPECT_EQ(c.q_dim(), 2048);  // 8 heads * 256: not hidden_size 2304
  EXPECT_EQ(c.hidden_act, "gelu_pytorch_tanh");
  EXPECT_TRUE(c.norm_unit_offset && c.sandwich_norms && c.scale_embeddings && c.tie_word_embeddings);
  EXPECT_FALSE(c.attention_bias || c.o_proj_bias || c.qk_norm);
  EXPECT_DOUBLE_EQ(c.query_pre_attn_scalar, 256);
  EXPECT_DOUBLE_EQ(c.attn_logit_softcapping, 50.0);
  EXPECT_DOUBLE_EQ(c.final_logit_softcapping, 30.0);
  EXPECT_EQ(c.sliding_window, 4096);
  // no layer_types in the published file: transformers makes the even layers sliding
  EXPECT_TRUE(c.layer_types.empty() && c.alternate_sliding);
  EXPECT_EQ(c.window_of(0), 4096);
  EXPECT_EQ(c.window_of(1), 0);
  EXPECT_EQ(c.window_of(24), 4096);
  EXPECT_EQ(c.window_of(25), 0);
  EXPECT_EQ(c.bos_token_id, 2);
  EXPECT_EQ(c.eos_token_id, 1);
  EXPECT_EQ(c.pad_token_id, 0);
  // embed 256000*2304 + 26 * (q 2048*2304 + k,v 2*1024*2304 + o 2304*2048 + mlp 3*2304*9216 + 4 norms 4*2304)
  // + final norm 2304 (tied head)
  EXPECT_EQ(num_parameters(c), 2'614'341'888);  // transformers: tests/io/test_hf_config.py
  auto t = tensor_table(c);
  EXPECT_EQ(t[6].name, "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(t[6].role, TensorRole::AttnOutNorm);
  EXPECT_EQ(t[7].name, "model.layers.0.pre_feedforward_layernorm.weight");
  EXPECT_EQ(t[7].role, TensorRole::PostNorm);
  EXPECT_EQ(t[11].name, "model.layers.0.post_feedforward_layernorm.weight");
  EXPECT_EQ(t[11].role, TensorRole::MlpOutNorm);
  EXPECT_FALSE(t[11].decay);

  // Explicit layer_types, null caps and window, the written keys; Gemma2Config's defaults when keys are absent.
  nlohmann::json j = nlohmann::json::parse(R"({"model_type":"gemma2","hidden_size":64,"intermediate_size":128,
    "num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,
    "layer_types":["full_attention","sliding_attention","sliding_attention"],"sliding_window":16,
    "attn_logit_softcapping":null,"final_logit_softcapping":null})");
  ModelConfig d = parse_config(j.dump(), "cfg.json");
  EXPECT_EQ(d.head_dim, 256);
  EXPECT_EQ(d.num_key_value_heads, 2);
  EXPECT_EQ(d.window_of(0), 0);
  EXPECT_EQ(d.window_of(2), 16);
  EXPECT_DOUBLE_EQ(d.attn_logit_softcapping, 0);
  EXPECT_DOUBLE_EQ(d.final_logit_softcapping, 0);
  EXPECT_DOUBLE_EQ(d.query_pre_attn_scalar, 256);
  auto back = nlohmann::json::parse(config_to_json(d));
  EXPECT_TRUE(back["attn_logit_softcapping"].is_null());
  EXPECT_EQ(back["query_pre_attn_scalar"], 256);  // an integer, as Gemma2Config declares it
  EXPECT_EQ(back["hidden_activation"], "gelu_pytorch_tanh");
  EXPECT_EQ(back["hidden_act"], "gelu_pytorch_tanh");
  EXPECT_EQ(back["layer_types"], j["layer_types"]);
  EXPECT_FALSE(nlohmann::json::parse(config_to_json(c)).contains("layer_types"));  // the default stays implicit
  // The default pattern for the most layers a config may claim (2^16, io's bound): even layers slide.
  auto many = j;
  many.erase("layer_types");
  many["num_hidden_layers"] = int64_t{1} << 16;
  const ModelConfig m = parse_config(many.dump(), "cfg.json");
  EXPECT_EQ(m.window_of((int64_t{1} << 16) - 2), 16);
  EXPECT_EQ(m.window_of((int64_t{1} << 16) - 1), 0);
  j.erase("sliding_window");
  j.erase("attn_logit_softcapping");
  EXPECT_EQ(parse_config(j.dump(), "cfg.json").sliding_window, 4096);
  EXPECT_DOUBLE_EQ(parse_config(j.dump(), "cfg.json").attn_logit_softcapping, 50.0);

  auto bad = j;
  bad["layer_types"] = {"full_attention"};
  expect_error(bad.dump(), "layer_types");
  bad = j;
  bad["layer_types"] = {"full_attention", "chunked_attention", "full_attention"};
  expect_error(bad.dump(), "chunked_attention");
  bad = j;
  bad["use_bidirectional_attention"] = true;
  expect_error(bad.dump(), "use_bidirectional_attention");
  bad = j;
  bad["hidden_activation"] = "gelu";
  expect_error(bad.dump(), "gelu");
  bad = j;
  bad["final_logit_softcapping"] = -1.0;
  expect_error(bad.dump(), "final_logit_softcapping");
}
