// HF model families <-> GGUF (llama.cpp conventions). See gguf_mapping.h.
#include "model/gguf_mapping.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numbers>
#include <set>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace sft::model {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// One row per family with a GGUF mapping: config.json model_type, llama.cpp's architecture (LLM_ARCH name), and
// whether llama.cpp's converter permutes q/k rows into its interleaved rotary layout (LlamaModel.undo_permute;
// Qwen2/Qwen3 use NEOX-style rotation and are stored as transformers has them).
constexpr GgufArch kGgufArchs[] = {
    {"llama", "llama", true},
    {"qwen2", "qwen2", false},
    {"qwen3", "qwen3", false},
};

std::string supported(bool by_arch) {
  std::string s;
  for (const auto& a : kGgufArchs) s += (s.empty() ? "" : ", ") + std::string(by_arch ? a.arch : a.model_type);
  return s;
}

}  // namespace

const GgufArch& gguf_arch(const std::string& model_type) {
  for (const auto& a : kGgufArchs)
    if (model_type == a.model_type) return a;
  throw Error("model_type \"" + model_type + "\" has no GGUF mapping (GGUF export and import support: " +
              supported(false) + ")");
}

namespace {

// A FLOAT32 metadata value as the shortest decimal that reads back as the same float (1e-05, not 9.99999974738e-06),
// so that a config.json written from a GGUF states what its source config did; the float the model uses is the same.
double shortest_float_decimal(double v) {
  for (int digits = 6; digits <= 9; ++digits) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.*g", digits, v);
    const double d = std::strtod(buf, nullptr);
    if (static_cast<float>(d) == static_cast<float>(v)) return d;
  }
  return v;
}

const GgufArch* arch_by_name(const std::string& arch) {
  for (const auto& a : kGgufArchs)
    if (arch == a.arch) return &a;
  return nullptr;
}

}  // namespace

// llama.cpp's converter permute(w, n_head): within each head, rows [first half | second half] become interleaved
// pairs. GGUF row h*d + 2i + j holds HF row h*d + j*d/2 + i. `to_gguf` applies it, otherwise it is undone.
void gguf_permute_rows(std::vector<float>& v, int64_t n_head, int64_t cols, bool to_gguf) {
  const int64_t rows = static_cast<int64_t>(v.size()) / cols, d = rows / n_head;
  std::vector<float> out(v.size());
  for (int64_t h = 0; h < n_head; ++h)
    for (int64_t i = 0; i < d / 2; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t g = h * d + 2 * i + j, f = h * d + j * (d / 2) + i;
        const float* src = v.data() + (to_gguf ? f : g) * cols;
        std::copy(src, src + cols, out.data() + (to_gguf ? g : f) * cols);
      }
  v = std::move(out);
}

bool gguf_permuted(const GgufArch& a, const TensorSpec& t) {
  return a.permute_qk && (t.role == TensorRole::QProj || t.role == TensorRole::QBias || t.role == TensorRole::KProj ||
                          t.role == TensorRole::KBias);
}

int64_t gguf_permute_heads(const io::ModelConfig& c, const TensorSpec& t) {
  return t.role == TensorRole::QProj || t.role == TensorRole::QBias ? c.num_attention_heads : c.num_key_value_heads;
}

std::vector<float> llama3_rope_factors(const io::ModelConfig& c) {
  const io::RopeScaling& rs = c.rope_scaling;
  const int64_t d = c.head_dim;
  const double lo_wavelen = rs.original_max_position_embeddings / rs.low_freq_factor;
  const double hi_wavelen = rs.original_max_position_embeddings / rs.high_freq_factor;
  std::vector<float> out;
  for (int64_t k = 0; k < d; k += 2) {
    const float freq = 1.0f / std::pow(static_cast<float>(c.rope_theta), static_cast<float>(k) / static_cast<float>(d));
    const float wavelen = static_cast<float>(2 * std::numbers::pi) / freq;
    if (wavelen < hi_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > lo_wavelen) {
      out.push_back(static_cast<float>(rs.factor));
    } else {
      const float smooth = (static_cast<float>(rs.original_max_position_embeddings) / wavelen -
                            static_cast<float>(rs.low_freq_factor)) /
                           static_cast<float>(rs.high_freq_factor - rs.low_freq_factor);
      out.push_back(1.0f / ((1.0f - smooth) / static_cast<float>(rs.factor) + smooth));
    }
  }
  return out;
}

namespace {

bool factors_match(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k)
    if (!(std::fabs(a[k] - b[k]) <= 1e-5f * std::fabs(b[k]))) return false;
  return true;
}

}  // namespace

// Only the two wavelength bounds lw = original / low and hw = original / high enter the formula: in x = 1 / wavelength,
// a smoothed entry is 1 / ((1 - s) / factor + s) with s = (x - 1/lw) / (1/hw - 1/lw), linear in x. So the factors
// are tried with Llama 3's parameters first (original 8192, low 1, high 4), else the bounds are solved for: a line
// through the smoothed entries (two or more), or bounds placed between the neighbouring classes (fewer), with
// original = lw rounded and low / high from it. The result must reproduce every factor.
io::RopeScaling rope_scaling_from_factors(io::ModelConfig c, const std::vector<float>& f, const std::string& where) {
  const size_t n = f.size();
  SFT_CHECK(n > 0 && static_cast<int64_t>(n) == c.head_dim / 2, where, ": rope_freqs.weight has ", n,
            " entries, expected head_dim / 2 = ", c.head_dim / 2);
  const std::string bad = where + ": rope_freqs.weight holds factors that are not Llama 3 rope scaling (llama3), the "
                                  "only scaling sft implements";
  const double factor = f.back();
  SFT_CHECK(std::isfinite(factor) && factor >= 1, bad);
  io::RopeScaling rs;
  if (factor == 1) {  // all ones: no scaling at all
    for (float v : f) SFT_CHECK(v == 1.0f, bad);
    return rs;
  }
  rs.type = "llama3";
  rs.factor = factor;
  rs.original_max_position_embeddings = 8192;
  c.rope_scaling = rs;
  if (factors_match(llama3_rope_factors(c), f)) return rs;
  // x_k = 1 / wavelength_k = freq_k / 2 pi, decreasing in k; classes must run ones, smoothed, factor.
  std::vector<double> x(n);
  for (size_t k = 0; k < n; ++k)
    x[k] = 1.0 / (2 * std::numbers::pi * std::pow(c.rope_theta, 2.0 * static_cast<double>(k) / c.head_dim));
  auto near = [](double v, double t) { return std::fabs(v - t) <= 1e-6 * t; };
  size_t ones = 0, facs = 0;
  while (ones < n && near(f[ones], 1.0)) ++ones;
  while (facs < n - ones && near(f[n - 1 - facs], factor)) ++facs;
  const size_t mid_begin = ones, mid_end = n - facs;  // smoothed entries [mid_begin, mid_end)
  auto s_of = [&](size_t k) { return (1.0 / f[k] - 1.0 / factor) / (1.0 - 1.0 / factor); };
  double inv_lw = 0, inv_hw = 0;
  const double x_after = facs > 0 ? x[mid_end] : x[n - 1] / 4;       // first factor entry (or beyond the last)
  const double x_before = ones > 0 ? x[mid_begin - 1] : x[0] * 4;    // last unscaled entry (or before the first)
  if (mid_end - mid_begin >= 2) {
    const size_t p = mid_begin, q = mid_end - 1;
    const double A = (s_of(q) - s_of(p)) / (x[q] - x[p]), B = s_of(p) - A * x[p];
    SFT_CHECK(A > 0, bad);
    inv_lw = -B / A;
    inv_hw = inv_lw + 1.0 / A;
  } else if (mid_end - mid_begin == 1) {
    const size_t m = mid_begin;
    inv_lw = std::sqrt(x[m] * x_after);
    inv_hw = inv_lw + (x[m] - inv_lw) / s_of(m);
  } else {
    inv_lw = std::cbrt(x_after * x_after * x_before);
    inv_hw = std::cbrt(x_after * x_before * x_before);
  }
  SFT_CHECK(std::isfinite(inv_lw) && std::isfinite(inv_hw) && inv_lw > 0 && inv_hw > inv_lw, bad);
  const double lw = 1.0 / inv_lw;
  rs.original_max_position_embeddings = std::max<int64_t>(1, std::llround(lw));
  rs.low_freq_factor = static_cast<double>(rs.original_max_position_embeddings) * inv_lw;
  rs.high_freq_factor = static_cast<double>(rs.original_max_position_embeddings) * inv_hw;
  c.rope_scaling = rs;
  SFT_CHECK(factors_match(llama3_rope_factors(c), f), bad);
  return rs;
}

std::string gguf_tensor_name(const TensorSpec& t) {
  const std::string b = "blk." + std::to_string(t.layer) + ".";
  switch (t.role) {
    case TensorRole::Embedding: return "token_embd.weight";
    case TensorRole::FinalNorm: return "output_norm.weight";
    case TensorRole::LmHead: return "output.weight";
    case TensorRole::InputNorm: return b + "attn_norm.weight";
    case TensorRole::QProj: return b + "attn_q.weight";
    case TensorRole::QBias: return b + "attn_q.bias";
    case TensorRole::KProj: return b + "attn_k.weight";
    case TensorRole::KBias: return b + "attn_k.bias";
    case TensorRole::VProj: return b + "attn_v.weight";
    case TensorRole::VBias: return b + "attn_v.bias";
    case TensorRole::QNorm: return b + "attn_q_norm.weight";
    case TensorRole::KNorm: return b + "attn_k_norm.weight";
    case TensorRole::OProj: return b + "attn_output.weight";
    case TensorRole::OBias: return b + "attn_output.bias";
    case TensorRole::PostNorm: return b + "ffn_norm.weight";
    case TensorRole::GateProj: return b + "ffn_gate.weight";
    case TensorRole::UpProj: return b + "ffn_up.weight";
    case TensorRole::DownProj: return b + "ffn_down.weight";
  }
  throw Error("tensor " + t.name + " has no GGUF name");
}

void check_gguf_mapping(const io::ModelConfig& cfg) { gguf_arch(cfg.model_type); }

io::GgmlType parse_gguf_outtype(const std::string& s, const std::string& flag) {
  if (s == "f32") return io::GgmlType::F32;
  if (s == "f16") return io::GgmlType::F16;
  if (s == "bf16") return io::GgmlType::BF16;
  if (s == "q8_0") return io::GgmlType::Q8_0;
  throw Error(flag + " must be f32, f16, bf16 or q8_0, got '" + s + "'");
}

// ---- import ----

io::ModelConfig gguf_config(const io::GgufFile& f) {
  const std::string where = f.name();
  const std::string a = f.get_string("general.architecture");
  const GgufArch* arch = arch_by_name(a);
  SFT_CHECK(arch, where, ": general.architecture \"", a, "\" is not supported (supported: ", supported(true), ")");
  const FamilySpec& fam = family_of(arch->model_type, where);
  json c;
  c["architectures"] = {fam.architecture};
  c["model_type"] = arch->model_type;
  c["hidden_size"] = f.get_int(a + ".embedding_length");
  c["intermediate_size"] = f.get_int(a + ".feed_forward_length");
  c["num_hidden_layers"] = f.get_int(a + ".block_count");
  const int64_t heads = f.get_int(a + ".attention.head_count");
  c["num_attention_heads"] = heads;
  c["num_key_value_heads"] = f.get_int(a + ".attention.head_count_kv", heads);
  c["max_position_embeddings"] = f.get_int(a + ".context_length");
  const double eps = f.get_float(a + ".attention.layer_norm_rms_epsilon"), theta = f.get_float(a + ".rope.freq_base", 1e4);
  SFT_CHECK(std::isfinite(eps) && eps > 0 && std::isfinite(theta) && theta > 0, where, ": ", a,
            ".attention.layer_norm_rms_epsilon and ", a, ".rope.freq_base must be finite and positive");
  c["rms_norm_eps"] = shortest_float_decimal(eps);
  c["rope_theta"] = shortest_float_decimal(theta);
  const io::GgufTensorInfo* embd = f.find_tensor("token_embd.weight");
  SFT_CHECK(embd && embd->dims.size() == 2, where, ": tensor token_embd.weight is missing or not 2-D");
  int64_t vocab = embd->dims[1];
  if (const io::GgufValue* toks = f.find("tokenizer.ggml.tokens")) vocab = static_cast<int64_t>(toks->count);
  c["vocab_size"] = f.get_int(a + ".vocab_size", vocab);
  SFT_CHECK(c["vocab_size"].get<int64_t>() == vocab, where, ": ", a, ".vocab_size ", c["vocab_size"].dump(),
            " contradicts the ", vocab, " tokens of the vocabulary");
  int64_t head_dim = heads > 0 ? c["hidden_size"].get<int64_t>() / heads : 0;
  if (f.find(a + ".attention.key_length")) {
    head_dim = f.get_int(a + ".attention.key_length");
    SFT_CHECK(f.get_int(a + ".attention.value_length", head_dim) == head_dim, where, ": ", a,
              ".attention.value_length differs from key_length (not supported)");
    c["head_dim"] = head_dim;
  }
  SFT_CHECK(f.get_int(a + ".rope.dimension_count", head_dim) == head_dim, where, ": ", a,
            ".rope.dimension_count differs from the head size ", head_dim, " (partial rotary is not supported)");
  c["tie_word_embeddings"] = f.find_tensor("output.weight") == nullptr;
  if (std::string(arch->model_type) != "qwen2") c["attention_bias"] = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  const uint32_t ft = static_cast<uint32_t>(f.get_int("general.file_type", 0));
  c["torch_dtype"] = ft == 32 ? "bfloat16" : "float32";
  const std::pair<const char*, const char*> ids[] = {{"bos_token_id", "tokenizer.ggml.bos_token_id"},
                                                      {"eos_token_id", "tokenizer.ggml.eos_token_id"},
                                                      {"pad_token_id", "tokenizer.ggml.padding_token_id"}};
  for (const auto& [key, name] : ids) c[key] = f.find(name) ? json(f.get_int(name)) : json(nullptr);
  io::ModelConfig cfg = parse_config(c.dump(), where + " (metadata)");
  if (const io::GgufTensorInfo* rf = f.find_tensor("rope_freqs.weight")) {
    SFT_CHECK(arch->permute_qk, where, ": rope_freqs.weight is only read for the llama architecture");
    SFT_CHECK(io::ggml_type_readable(rf->type) && rf->dims.size() == 1, where,
              ": tensor rope_freqs.weight must be a 1-D float tensor");
    std::vector<float> factors(static_cast<size_t>(rf->numel));
    f.read_f32(*rf, factors.data());
    cfg.rope_scaling = rope_scaling_from_factors(cfg, factors, where);
    cfg.source_json = config_to_json(cfg);  // saved folders carry the scaling
  }
  return cfg;
}

GgufModel open_gguf_model(const fs::path& path) {
  GgufModel m;
  auto file = std::make_shared<const io::GgufFile>(path);
  m.file = file;
  m.config = gguf_config(*file);
  const GgufArch& arch = gguf_arch(m.config.model_type);
  const std::string& where = file->name();
  std::set<std::string> used = {"rope_freqs.weight"};
  std::vector<io::WeightStore::DecodedTensor> tensors;
  for (const TensorSpec& t : tensor_table(m.config)) {
    const std::string gname = gguf_tensor_name(t);
    const io::GgufTensorInfo* g = file->find_tensor(gname);
    SFT_CHECK(g, where, ": tensor ", gname, " is missing (", m.config.model_type, " with ",
              m.config.num_hidden_layers, " blocks needs it for ", t.name, ")");
    SFT_CHECK(g->shape() == t.shape, where, ": tensor ", gname, " has shape ", io::shape_str(g->shape()),
              ", the metadata implies ", io::shape_str(t.shape));
    SFT_CHECK(io::ggml_type_readable(g->type), where, ": tensor ", gname, " has type ", io::ggml_type_name(g->type),
              ", which sft cannot read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)");
    used.insert(gname);
    const bool perm = gguf_permuted(arch, t);
    const int64_t heads = gguf_permute_heads(m.config, t), cols = t.shape.size() == 2 ? t.shape[1] : 1;
    tensors.push_back({t.name, t.shape, path, [file, g, perm, heads, cols](float* dst) {
                         file->read_f32(*g, dst);
                         if (!perm) return;
                         std::vector<float> v(dst, dst + g->numel);
                         gguf_permute_rows(v, heads, cols, /*to_gguf=*/false);
                         std::copy(v.begin(), v.end(), dst);
                       }});
  }
  for (const io::GgufTensorInfo& g : file->tensors())
    SFT_CHECK(used.count(g.name), where, ": tensor ", g.name, " is not part of a ", arch.arch, " model with ",
              m.config.num_hidden_layers, " blocks as the metadata describes it");
  m.weights = io::WeightStore::from_decoded(std::move(tensors));
  return m;
}

}  // namespace sft::model
