// Shared part of every family: the config keys all decoder configs have (sizes, RoPE, eps, token ids, dtype), the
// registry of families, and the tensor table derived from the architecture features a family sets.
#include "model/family.h"

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/json_reader.h"
#include "model/gguf_mapping.h"
#include "model/weight_check.h"
#include "util/checked_math.h"
#include "util/error.h"
#include "util/file_util.h"
#include "util/input_file.h"

namespace sft::model {

// One line per family (defined in families/<family>.cpp).
const FamilySpec& llama_family();
const FamilySpec& qwen2_family();
const FamilySpec& qwen3_family();
const FamilySpec& gemma2_family();

const std::vector<const FamilySpec*>& families() {
  static const std::vector<const FamilySpec*> all = {&llama_family(), &qwen2_family(), &qwen3_family(),
                                                     &gemma2_family()};
  return all;
}

const FamilySpec& family_of(const std::string& model_type, const std::string& where) {
  std::string names;
  for (const FamilySpec* f : families()) {
    if (f->model_type == model_type) return *f;
    names += (names.empty() ? "" : ", ") + f->model_type;
  }
  throw Error(where + ": model_type \"" + model_type + "\" is not supported (supported: " + names + ")");
}

namespace {

using json = nlohmann::json;

// "rope_scaling" (4.x) or "rope_parameters" (5.x) object -> RopeScaling; "default" / missing = no scaling.
void parse_rope(const json& r, const std::string& where, io::RopeScaling& out) {
  io::JsonReader rd{r, where};
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

io::ModelConfig parse_config(const std::string& text, const std::string& where) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  SFT_CHECK(!j.is_discarded(), where, ": not valid JSON");
  SFT_CHECK(j.is_object(), where, ": config must be a JSON object");
  io::JsonReader rd{j, where};
  io::ModelConfig c;
  c.source_json = text;
  c.model_type = rd.get_string("model_type", "");
  const FamilySpec& fam = family_of(c.model_type, where);
  const ConfigDefaults& dflt = fam.defaults;
  c.architecture = fam.architecture;
  if (rd.present("architectures")) {
    SFT_CHECK(j["architectures"].is_array() && !j["architectures"].empty() && j["architectures"][0].is_string(),
              where, ": \"architectures\" must be a non-empty list of strings");
    c.architecture = j["architectures"][0].get<std::string>();
    SFT_CHECK(c.architecture == fam.architecture, where, ": architecture \"", c.architecture,
              "\" is not supported for model_type ", c.model_type, " (expected ", fam.architecture, ")");
  }
  c.hidden_size = rd.get_int("hidden_size", std::nullopt);
  c.intermediate_size = rd.get_int("intermediate_size", std::nullopt);
  c.num_hidden_layers = rd.get_int("num_hidden_layers", std::nullopt);
  c.num_attention_heads = rd.get_int("num_attention_heads", std::nullopt);
  c.num_key_value_heads = rd.get_int("num_key_value_heads", dflt.num_key_value_heads.value_or(c.num_attention_heads));
  c.vocab_size = rd.get_int("vocab_size", std::nullopt);
  c.max_position_embeddings = rd.get_int("max_position_embeddings", dflt.max_position_embeddings);
  SFT_CHECK(c.hidden_size > 0 && c.intermediate_size > 0 && c.num_hidden_layers > 0 && c.num_attention_heads > 0 &&
                c.num_key_value_heads > 0 && c.vocab_size > 0 && c.max_position_embeddings > 0,
            where, ": hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, num_key_value_heads, "
                   "vocab_size and max_position_embeddings must all be positive");
  SFT_CHECK(c.num_attention_heads % c.num_key_value_heads == 0, where, ": num_attention_heads ",
            c.num_attention_heads, " is not a multiple of num_key_value_heads ", c.num_key_value_heads);
  if (rd.present("head_dim") || dflt.head_dim) {
    c.head_dim = rd.get_int("head_dim", dflt.head_dim);
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
  c.hidden_act = rd.get_string("hidden_act", "silu");
  fam.read_features(rd, c);  // may replace hidden_act (Gemma 2 reads hidden_activation)
  SFT_CHECK(c.hidden_act == "silu" || c.hidden_act == "gelu_pytorch_tanh", where, ": MLP activation \"",
            c.hidden_act, "\" is not supported (expected silu or gelu_pytorch_tanh)");

  // RoPE: rope_theta at top level (4.x) or inside rope_parameters (5.x); scaling in rope_scaling or rope_parameters.
  c.rope_theta = rd.get_double("rope_theta", 10000.0);
  if (rd.present("rope_parameters")) {
    SFT_CHECK(j["rope_parameters"].is_object(), where, ": \"rope_parameters\" must be an object");
    io::JsonReader rp{j["rope_parameters"], where + " rope_parameters"};
    c.rope_theta = rp.get_double("rope_theta", c.rope_theta);
    parse_rope(j["rope_parameters"], where + " rope_parameters", c.rope_scaling);
  } else if (rd.present("rope_scaling")) {
    SFT_CHECK(j["rope_scaling"].is_object(), where, ": \"rope_scaling\" must be an object or null");
    parse_rope(j["rope_scaling"], where + " rope_scaling", c.rope_scaling);
  }
  SFT_CHECK(c.rope_theta > 0, where, ": rope_theta must be positive");

  c.torch_dtype = rd.get_string("dtype", rd.get_string("torch_dtype", "float32"));
  c.bos_token_id = rd.get_opt_int("bos_token_id", dflt.bos_token_id);
  c.pad_token_id = rd.get_opt_int("pad_token_id", std::nullopt);
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array()) {
    for (const auto& v : j["eos_token_id"]) {
      SFT_CHECK(v.is_number_integer(), where, ": \"eos_token_id\" list must hold integers, got ", v.dump());
      c.eos_token_ids.push_back(v.get<int64_t>());
    }
  } else {
    auto eos = rd.get_opt_int("eos_token_id", dflt.eos_token_id);
    if (eos) c.eos_token_ids.push_back(*eos);
  }
  if (!c.eos_token_ids.empty()) c.eos_token_id = c.eos_token_ids.front();
  check_config_bounds(c, where);  // every size derived from c now fits in int64
  return c;
}

io::ModelConfig load_config(const std::filesystem::path& p) {
  // A GGUF file states its config in its metadata; "<file.gguf>/config.json" (what callers given a model path
  // build) names the same.
  if (io::is_gguf_file(p)) return gguf_config(io::GgufFile(p));
  if (p.filename() == "config.json" && io::is_gguf_file(p.parent_path())) return gguf_config(io::GgufFile(p.parent_path()));
  std::filesystem::path file = std::filesystem::is_directory(p) ? p / "config.json" : p;
  SFT_CHECK(std::filesystem::exists(file), file.string(), ": config.json not found");
  return parse_config(read_input_file(file, input::json_file), file.string());
}

std::string config_to_json(const io::ModelConfig& c) {
  json j = json::object();
  if (!c.source_json.empty()) {
    j = json::parse(c.source_json, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) j = json::object();
  }
  const FamilySpec& fam = family_of(c.model_type, "config_to_json");
  j["architectures"] = {c.architecture.empty() ? fam.architecture : c.architecture};
  j["model_type"] = c.model_type;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  // head_dim when given or when it differs from the derived value (a family whose config class defaults it
  // otherwise writes it in write_features).
  if (j.contains("head_dim") || c.head_dim * c.num_attention_heads != c.hidden_size) j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["hidden_act"] = c.hidden_act;
  fam.write_features(j, c);
  if (!j.contains("use_cache")) j["use_cache"] = true;
  if (!j.contains("initializer_range")) j["initializer_range"] = 0.02;
  if (!j.contains("attention_dropout")) j["attention_dropout"] = 0.0;

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

int64_t TensorSpec::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n = checked_mul(n, s, name + " element count");
  return n;
}

std::vector<TensorSpec> tensor_table(const io::ModelConfig& c) {
  using R = TensorRole;
  const int64_t H = c.hidden_size, I = c.intermediate_size, q = c.q_dim(), kv = c.kv_dim(), d = c.head_dim;
  std::vector<TensorSpec> w;
  w.push_back({"model.embed_tokens.weight", {c.vocab_size, H}, true, R::Embedding, -1});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto add = [&](const std::string& name, std::vector<int64_t> shape, bool decay, R role) {
      w.push_back({p + name, std::move(shape), decay, role, l});
    };
    add("input_layernorm.weight", {H}, false, R::InputNorm);
    add("self_attn.q_proj.weight", {q, H}, true, R::QProj);
    if (c.attention_bias) add("self_attn.q_proj.bias", {q}, false, R::QBias);
    add("self_attn.k_proj.weight", {kv, H}, true, R::KProj);
    if (c.attention_bias) add("self_attn.k_proj.bias", {kv}, false, R::KBias);
    add("self_attn.v_proj.weight", {kv, H}, true, R::VProj);
    if (c.attention_bias) add("self_attn.v_proj.bias", {kv}, false, R::VBias);
    add("self_attn.o_proj.weight", {H, q}, true, R::OProj);
    if (c.o_proj_bias) add("self_attn.o_proj.bias", {H}, false, R::OBias);
    if (c.qk_norm) {
      add("self_attn.q_norm.weight", {d}, false, R::QNorm);
      add("self_attn.k_norm.weight", {d}, false, R::KNorm);
    }
    if (c.sandwich_norms) {  // Gemma 2: the attention output's norm has Llama's MLP-norm name
      add("post_attention_layernorm.weight", {H}, false, R::AttnOutNorm);
      add("pre_feedforward_layernorm.weight", {H}, false, R::PostNorm);
    } else {
      add("post_attention_layernorm.weight", {H}, false, R::PostNorm);
    }
    add("mlp.gate_proj.weight", {I, H}, true, R::GateProj);
    add("mlp.up_proj.weight", {I, H}, true, R::UpProj);
    add("mlp.down_proj.weight", {H, I}, true, R::DownProj);
    if (c.sandwich_norms) add("post_feedforward_layernorm.weight", {H}, false, R::MlpOutNorm);
  }
  w.push_back({"model.norm.weight", {H}, false, R::FinalNorm, -1});
  if (!c.tie_word_embeddings) w.push_back({"lm_head.weight", {c.vocab_size, H}, true, R::LmHead, -1});
  return w;
}

int64_t num_parameters(const io::ModelConfig& c) {
  // Every decoder layer has the same tensors: count one and multiply, so a config claiming 10^9 layers costs nothing
  // here (the load checks the layer count against the tensors present).
  io::ModelConfig one = c;
  one.num_hidden_layers = 1;
  int64_t per_layer = 0, rest = 0;
  for (const TensorSpec& t : tensor_table(one)) {
    int64_t& sum = t.layer >= 0 ? per_layer : rest;
    sum = checked_add(sum, t.numel(), "parameter count");
  }
  return checked_add(rest, checked_mul(per_layer, c.num_hidden_layers, "parameter count"), "parameter count");
}

int64_t num_embedding_parameters(const io::ModelConfig& c) {
  return checked_mul(c.vocab_size, c.hidden_size, "embedding parameter count");
}

}  // namespace sft::model
