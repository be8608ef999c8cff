// config.json parsing for the Qwen2 / Llama family, following the defaults of transformers' Qwen2Config and
// LlamaConfig, and accepting both config generations: transformers 4.x ("rope_theta" + "rope_scaling" with "type" or
// "rope_type", "torch_dtype") and transformers 5.x ("rope_parameters": {"rope_type", "rope_theta", ...}, "dtype").
#include "io/hf_config.h"
#include "io/weight_check.h"

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file_util.h"

namespace sft::io {

namespace {

using json = nlohmann::json;

// Typed getters that name the file and key on a type error; a JSON null counts as absent (transformers does the same).
struct Reader {
  const json& j;
  std::string where;

  bool present(const char* key) const { return j.contains(key) && !j[key].is_null(); }
  int64_t get_int(const char* key, std::optional<int64_t> dflt) const {
    if (!present(key)) {
      SFT_CHECK(dflt.has_value(), where, ": required key \"", key, "\" is missing");
      return *dflt;
    }
    const json& v = j[key];
    SFT_CHECK(v.is_number_integer(), where, ": \"", key, "\" must be an integer, got ", v.dump());
    return v.get<int64_t>();
  }
  double get_double(const char* key, double dflt) const {
    if (!present(key)) return dflt;
    const json& v = j[key];
    SFT_CHECK(v.is_number(), where, ": \"", key, "\" must be a number, got ", v.dump());
    return v.get<double>();
  }
  bool get_bool(const char* key, bool dflt) const {
    if (!present(key)) return dflt;
    const json& v = j[key];
    SFT_CHECK(v.is_boolean(), where, ": \"", key, "\" must be true or false, got ", v.dump());
    return v.get<bool>();
  }
  std::string get_string(const char* key, const std::string& dflt) const {
    if (!present(key)) return dflt;
    const json& v = j[key];
    SFT_CHECK(v.is_string(), where, ": \"", key, "\" must be a string, got ", v.dump());
    return v.get<std::string>();
  }
  std::optional<int64_t> get_opt_int(const char* key, std::optional<int64_t> dflt) const {
    if (!j.contains(key)) return dflt;
    if (j[key].is_null()) return std::nullopt;
    return get_int(key, std::nullopt);
  }
};

// "rope_scaling" (4.x) or "rope_parameters" (5.x) object -> RopeScaling; "default" / missing = no scaling.
void parse_rope(const json& r, const std::string& where, RopeScaling& out) {
  Reader rd{r, where};
  std::string type = rd.get_string("rope_type", rd.get_string("type", "default"));
  if (type == "default") return;
  SFT_CHECK(type == "llama3", where, ": rope scaling type \"", type, "\" is not supported (supported: llama3)");
  out.type = type;
  out.factor = rd.get_double("factor", out.factor);
  out.low_freq_factor = rd.get_double("low_freq_factor", out.low_freq_factor);
  out.high_freq_factor = rd.get_double("high_freq_factor", out.high_freq_factor);
  out.original_max_position_embeddings =
      rd.get_int("original_max_position_embeddings", out.original_max_position_embeddings);
  SFT_CHECK(out.factor > 0 && out.low_freq_factor > 0 && out.high_freq_factor > out.low_freq_factor &&
                out.original_max_position_embeddings > 0,
            where, ": llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor and "
                   "original_max_position_embeddings > 0");
}

}  // namespace

int64_t ModelConfig::num_embedding_parameters() const { return vocab_size * hidden_size; }

int64_t ModelConfig::num_parameters() const {
  const int64_t H = hidden_size, q = q_dim(), kv = kv_dim();
  int64_t attn = H * q + 2 * H * kv + q * H;
  if (attention_bias) attn += q + 2 * kv;
  if (o_proj_bias()) attn += H;
  const int64_t mlp = 3 * H * intermediate_size;
  const int64_t norms = 2 * H;
  int64_t n = vocab_size * H + num_hidden_layers * (attn + mlp + norms) + H;
  if (!tie_word_embeddings) n += vocab_size * H;
  return n;
}

std::vector<WeightSpec> hf_weight_specs(const ModelConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size, q = c.q_dim(), kv = c.kv_dim();
  std::vector<WeightSpec> w;
  w.push_back({"model.embed_tokens.weight", {c.vocab_size, H}});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    w.push_back({p + "input_layernorm.weight", {H}});
    w.push_back({p + "self_attn.q_proj.weight", {q, H}});
    w.push_back({p + "self_attn.k_proj.weight", {kv, H}});
    w.push_back({p + "self_attn.v_proj.weight", {kv, H}});
    if (c.attention_bias) {
      w.push_back({p + "self_attn.q_proj.bias", {q}});
      w.push_back({p + "self_attn.k_proj.bias", {kv}});
      w.push_back({p + "self_attn.v_proj.bias", {kv}});
    }
    w.push_back({p + "self_attn.o_proj.weight", {H, q}});
    if (c.o_proj_bias()) w.push_back({p + "self_attn.o_proj.bias", {H}});
    w.push_back({p + "post_attention_layernorm.weight", {H}});
    w.push_back({p + "mlp.gate_proj.weight", {I, H}});
    w.push_back({p + "mlp.up_proj.weight", {I, H}});
    w.push_back({p + "mlp.down_proj.weight", {H, I}});
  }
  w.push_back({"model.norm.weight", {H}});
  if (!c.tie_word_embeddings) w.push_back({"lm_head.weight", {c.vocab_size, H}});
  return w;
}

ModelConfig parse_model_config(const std::string& text, const std::string& where) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  SFT_CHECK(!j.is_discarded(), where, ": not valid JSON");
  SFT_CHECK(j.is_object(), where, ": config must be a JSON object");
  Reader rd{j, where};
  ModelConfig c;
  c.source_json = text;
  c.model_type = rd.get_string("model_type", "");
  SFT_CHECK(c.model_type == "qwen2" || c.model_type == "llama", where, ": model_type \"", c.model_type,
            "\" is not supported (supported: qwen2, llama)");
  const bool qwen = c.model_type == "qwen2";
  c.architecture = qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM";
  if (rd.present("architectures")) {
    SFT_CHECK(j["architectures"].is_array() && !j["architectures"].empty() && j["architectures"][0].is_string(),
              where, ": \"architectures\" must be a non-empty list of strings");
    c.architecture = j["architectures"][0].get<std::string>();
    SFT_CHECK(c.architecture == (qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM"), where, ": architecture \"",
              c.architecture, "\" is not supported for model_type ", c.model_type, " (expected ",
              qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM", ")");
  }
  c.hidden_size = rd.get_int("hidden_size", std::nullopt);
  c.intermediate_size = rd.get_int("intermediate_size", std::nullopt);
  c.num_hidden_layers = rd.get_int("num_hidden_layers", std::nullopt);
  c.num_attention_heads = rd.get_int("num_attention_heads", std::nullopt);
  // transformers defaults: Llama kv heads = attention heads, Qwen2 kv heads = 32.
  c.num_key_value_heads = rd.get_int("num_key_value_heads", qwen ? 32 : c.num_attention_heads);
  c.vocab_size = rd.get_int("vocab_size", std::nullopt);
  c.max_position_embeddings = rd.get_int("max_position_embeddings", qwen ? 32768 : 2048);
  SFT_CHECK(c.hidden_size > 0 && c.intermediate_size > 0 && c.num_hidden_layers > 0 && c.num_attention_heads > 0 &&
                c.num_key_value_heads > 0 && c.vocab_size > 0 && c.max_position_embeddings > 0,
            where, ": hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, "
                   "vocab_size and max_position_embeddings must all be positive");
  SFT_CHECK(c.num_attention_heads % c.num_key_value_heads == 0, where, ": num_attention_heads ",
            c.num_attention_heads, " is not a multiple of num_key_value_heads ", c.num_key_value_heads);
  if (rd.present("head_dim")) {
    c.head_dim = rd.get_int("head_dim", std::nullopt);
    SFT_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0, where, ": head_dim must be positive and even, got ", c.head_dim);
  } else {
    SFT_CHECK(c.hidden_size % c.num_attention_heads == 0, where, ": hidden_size ", c.hidden_size,
              " is not a multiple of num_attention_heads ", c.num_attention_heads, " and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_attention_heads;
    SFT_CHECK(c.head_dim % 2 == 0, where, ": head_dim ", c.head_dim, " must be even for RoPE");
  }
  c.rms_norm_eps = rd.get_double("rms_norm_eps", 1e-6);
  SFT_CHECK(c.rms_norm_eps > 0, where, ": rms_norm_eps must be positive");
  c.tie_word_embeddings = rd.get_bool("tie_word_embeddings", false);
  c.attention_bias = qwen ? true : rd.get_bool("attention_bias", false);
  std::string act = rd.get_string("hidden_act", "silu");
  SFT_CHECK(act == "silu", where, ": hidden_act \"", act, "\" is not supported (expected silu)");
  if (!qwen) SFT_CHECK(!rd.get_bool("mlp_bias", false), where, ": mlp_bias true is not supported");
  if (qwen) {
    SFT_CHECK(!rd.get_bool("use_sliding_window", false), where,
              ": use_sliding_window true is not supported (full causal attention only)");
  }

  // RoPE: rope_theta at top level (4.x) or inside rope_parameters (5.x); scaling in rope_scaling or rope_parameters.
  c.rope_theta = rd.get_double("rope_theta", 10000.0);
  if (rd.present("rope_parameters")) {
    SFT_CHECK(j["rope_parameters"].is_object(), where, ": \"rope_parameters\" must be an object");
    Reader rp{j["rope_parameters"], where + " rope_parameters"};
    c.rope_theta = rp.get_double("rope_theta", c.rope_theta);
    parse_rope(j["rope_parameters"], where + " rope_parameters", c.rope_scaling);
  } else if (rd.present("rope_scaling")) {
    SFT_CHECK(j["rope_scaling"].is_object(), where, ": \"rope_scaling\" must be an object or null");
    parse_rope(j["rope_scaling"], where + " rope_scaling", c.rope_scaling);
  }
  SFT_CHECK(c.rope_theta > 0, where, ": rope_theta must be positive");

  c.torch_dtype = rd.get_string("dtype", rd.get_string("torch_dtype", "float32"));
  c.bos_token_id = rd.get_opt_int("bos_token_id", qwen ? std::nullopt : std::optional<int64_t>(1));
  c.pad_token_id = rd.get_opt_int("pad_token_id", std::nullopt);
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array()) {
    for (const auto& v : j["eos_token_id"]) {
      SFT_CHECK(v.is_number_integer(), where, ": \"eos_token_id\" list must hold integers, got ", v.dump());
      c.eos_token_ids.push_back(v.get<int64_t>());
    }
  } else {
    auto eos = rd.get_opt_int("eos_token_id", qwen ? std::nullopt : std::optional<int64_t>(2));
    if (eos) c.eos_token_ids.push_back(*eos);
  }
  if (!c.eos_token_ids.empty()) c.eos_token_id = c.eos_token_ids.front();
  check_config_bounds(c, where);  // every size derived from c now fits in int64
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& p) {
  std::filesystem::path file = std::filesystem::is_directory(p) ? p / "config.json" : p;
  SFT_CHECK(std::filesystem::exists(file), file.string(), ": config.json not found");
  return parse_model_config(read_file(file), file.string());
}

std::string model_config_to_json(const ModelConfig& c) {
  json j = json::object();
  if (!c.source_json.empty()) {
    j = json::parse(c.source_json, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) j = json::object();
  }
  const bool qwen = c.model_type == "qwen2";
  j["architectures"] = {c.architecture.empty() ? (qwen ? "Qwen2ForCausalLM" : "LlamaForCausalLM") : c.architecture};
  j["model_type"] = c.model_type;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  // head_dim only when it differs from the derived value or was given: Qwen2Config has no such field.
  if (j.contains("head_dim") || c.head_dim * c.num_attention_heads != c.hidden_size) j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = "silu";
  if (!qwen) {
    j["attention_bias"] = c.attention_bias;
    j["mlp_bias"] = false;
  }
  if (!j.contains("use_cache")) j["use_cache"] = true;
  if (!j.contains("initializer_range")) j["initializer_range"] = 0.02;
  if (!j.contains("attention_dropout")) j["attention_dropout"] = 0.0;
  if (qwen && !j.contains("use_sliding_window")) j["use_sliding_window"] = false;

  // RoPE, in the generation of the source (5.x rope_parameters) or the 4.x keys that both generations load.
  json rope = json::object();
  if (c.rope_scaling.type == "llama3") {
    rope = {{"rope_type", "llama3"},
            {"factor", c.rope_scaling.factor},
            {"low_freq_factor", c.rope_scaling.low_freq_factor},
            {"high_freq_factor", c.rope_scaling.high_freq_factor},
            {"original_max_position_embeddings", c.rope_scaling.original_max_position_embeddings}};
  }
  if (j.contains("rope_parameters")) {
    json rp = rope.empty() ? json{{"rope_type", "default"}} : rope;
    rp["rope_theta"] = c.rope_theta;
    j["rope_parameters"] = rp;
    j.erase("rope_scaling");
    j.erase("rope_theta");
  } else {
    j["rope_theta"] = c.rope_theta;
    j["rope_scaling"] = rope.empty() ? json(nullptr) : rope;
  }

  if (j.contains("dtype")) j["dtype"] = c.torch_dtype;
  else j["torch_dtype"] = c.torch_dtype;
  auto opt = [](const std::optional<int64_t>& v) { return v ? json(*v) : json(nullptr); };
  j["bos_token_id"] = opt(c.bos_token_id);
  j["pad_token_id"] = opt(c.pad_token_id);
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  else j["eos_token_id"] = opt(c.eos_token_id);
  return j.dump(2) + "\n";
}

}  // namespace sft::io
