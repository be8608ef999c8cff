// `sft export` / `sft train --save_gguf`: a model (HF folder or GGUF, a peft adapter optionally merged in) written as
// llama.cpp's converter writes it (see gguf_mapping.h), streamed tensor by tensor into an atomically renamed file.
#include <cstdio>
#include <cmath>

#include <nlohmann/json.hpp>

#include "io/gguf_tokenizer.h"
#include "model/gguf_mapping.h"
#include "model/lora.h"
#include "model/weight_check.h"
#include "util/error.h"

namespace sft::model {

namespace {

namespace fs = std::filesystem;

std::string general_name(const fs::path& model) {
  fs::path p = fs::absolute(model).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.stem().string();
}

uint32_t file_type_of(io::GgmlType t) {  // llama.cpp's LlamaFileType
  switch (t) {
    case io::GgmlType::F32: return 0;
    case io::GgmlType::F16: return 1;
    case io::GgmlType::BF16: return 32;
    default: return 7;  // MOSTLY_Q8_0
  }
}

// general.* and <arch>.* keys (the ones llama.cpp's loader reads for these architectures), then the tokenizer.
std::vector<std::pair<std::string, io::GgufValue>> export_metadata(const io::ModelConfig& cfg, const GgufArch& arch,
                                                                   const std::string& name, io::GgmlType outtype) {
  using V = io::GgufValue;
  const std::string a = arch.arch;
  auto u32 = [](int64_t v) { return V::u32(static_cast<uint32_t>(v)); };
  std::vector<std::pair<std::string, V>> md;
  md.emplace_back("general.architecture", V::str(a));
  md.emplace_back("general.type", V::str("model"));
  md.emplace_back("general.name", V::str(name));
  md.emplace_back("general.file_type", V::u32(file_type_of(outtype)));
  md.emplace_back("general.quantization_version", V::u32(2));
  md.emplace_back(a + ".vocab_size", u32(cfg.vocab_size));
  md.emplace_back(a + ".context_length", u32(cfg.max_position_embeddings));
  md.emplace_back(a + ".embedding_length", u32(cfg.hidden_size));
  md.emplace_back(a + ".feed_forward_length", u32(cfg.intermediate_size));
  md.emplace_back(a + ".block_count", u32(cfg.num_hidden_layers));
  md.emplace_back(a + ".attention.head_count", u32(cfg.num_attention_heads));
  md.emplace_back(a + ".attention.head_count_kv", u32(cfg.num_key_value_heads));
  md.emplace_back(a + ".rope.freq_base", V::f32(static_cast<float>(cfg.rope_theta)));
  md.emplace_back(a + ".rope.dimension_count", u32(cfg.head_dim));
  md.emplace_back(a + ".attention.layer_norm_rms_epsilon", V::f32(static_cast<float>(cfg.rms_norm_eps)));
  // The converter writes key/value lengths whenever config.json states head_dim (Qwen3 always does, transformers 5
  // folders often do); llama.cpp otherwise assumes embedding_length / head_count.
  const nlohmann::json src = nlohmann::json::parse(cfg.source_json.empty() ? "{}" : cfg.source_json, nullptr, false);
  const bool stated = src.is_object() && src.contains("head_dim") && !src["head_dim"].is_null();
  if (stated || cfg.head_dim * cfg.num_attention_heads != cfg.hidden_size || cfg.qk_norm) {
    md.emplace_back(a + ".attention.key_length", u32(cfg.head_dim));
    md.emplace_back(a + ".attention.value_length", u32(cfg.head_dim));
  }
  return md;
}

}  // namespace

GgufExportResult export_gguf(const fs::path& model, const fs::path& adapter_dir, const fs::path& outfile,
                             io::GgmlType outtype, bool overwrite) {
  SFT_CHECK(overwrite || !fs::exists(outfile), outfile.string(), " exists; pass --overwrite to replace it");
  SFT_CHECK(!fs::is_directory(outfile), outfile.string(), " is a folder, expected a .gguf file path");
  const bool from_gguf = io::is_gguf_file(model);
  SFT_CHECK(from_gguf || fs::is_directory(model), model.string(), ": not a model folder or GGUF file");
  std::shared_ptr<const io::GgufFile> src;
  io::ModelConfig cfg;
  io::WeightStore store;
  if (from_gguf) {
    GgufModel g = open_gguf_model(model);
    src = g.file;
    cfg = std::move(g.config);
    store = std::move(g.weights);
  } else {
    cfg = load_config(model / "config.json");
    gguf_arch(cfg.model_type);  // no mapping: fail before opening anything else
    store = io::WeightStore::open(model);
    check_weights_match_config(cfg, store, model / "config.json");
  }
  const GgufArch& arch = gguf_arch(cfg.model_type);
  std::unique_ptr<AdapterMerge> merge;
  if (!adapter_dir.empty()) merge = std::make_unique<AdapterMerge>(cfg, adapter_dir);

  auto md = export_metadata(cfg, arch, src ? src->get_string("general.name", general_name(model)) : general_name(model),
                            outtype);
  if (src) {  // the source file's vocabulary as it is
    for (const auto& [key, value] : src->metadata())
      if (key.rfind("tokenizer.", 0) == 0) md.emplace_back(key, value);
  } else {
    for (auto& kv : io::gguf_tokenizer_metadata(model, cfg.vocab_size,
                                                {cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id}))
      md.push_back(std::move(kv));
  }

  GgufExportResult res;
  res.file = outfile;
  res.architecture = arch.arch;
  std::vector<io::GgufTensorToWrite> tensors;
  if (cfg.rope_scaling.type == "llama3") {
    SFT_CHECK(arch.permute_qk, "llama3 rope scaling has no GGUF form for ", arch.arch);
    const std::vector<float> f = llama3_rope_factors(cfg);
    tensors.push_back({"rope_freqs.weight", io::GgmlType::F32, {static_cast<int64_t>(f.size())},
                       [f](std::vector<float>& v) { v = f; }});
  }
  for (const TensorSpec& t : tensor_table(cfg)) {
    // The converter's rule: 1-D tensors, norms and anything but a .weight stay F32; q8_0 needs rows of 32s.
    const std::string gname = gguf_tensor_name(t);
    const bool is_weight = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0;
    io::GgmlType type = outtype;
    if (t.shape.size() <= 1 || !is_weight || gname.find("_norm.weight") != std::string::npos) type = io::GgmlType::F32;
    if (type == io::GgmlType::Q8_0 && t.shape.back() % 32 != 0) {
      type = io::GgmlType::F16;
      ++res.f16_fallbacks;
    }
    const bool perm = gguf_permuted(arch, t);
    const int64_t heads = gguf_permute_heads(cfg, t), cols = t.shape.size() == 2 ? t.shape[1] : 1;
    tensors.push_back({gname, type, t.shape, [&, t, perm, heads, cols](std::vector<float>& v) {
                         if (merge) {
                           merge->read(t, store, v);
                         } else {
                           v.resize(static_cast<size_t>(t.numel()));
                           store.read_f32(t.name, v.data(), t.shape);
                         }
                         for (float x : v)
                           SFT_CHECK(std::isfinite(x), model.string(), ": tensor ", t.name,
                                     " holds a non-finite value (NaN or inf); refusing to export it");
                         if (perm) gguf_permute_rows(v, heads, cols, /*to_gguf=*/true);
                       }});
  }
  io::write_gguf(outfile, md, tensors);
  res.tensors = static_cast<int64_t>(tensors.size());
  res.bytes = fs::file_size(outfile);
  return res;
}

std::string describe_gguf_export(const GgufExportResult& r, const std::string& outtype) {
  char line[512];
  std::snprintf(line, sizeof line, "wrote %s (%s, %s, %lld tensors, %.1f MB)", r.file.string().c_str(),
                r.architecture.c_str(), outtype.c_str(), static_cast<long long>(r.tensors),
                static_cast<double>(r.bytes) / 1e6);
  std::string out = line;
  if (r.f16_fallbacks > 0)
    out += "\nnote: " + std::to_string(r.f16_fallbacks) +
           " matrices have rows that are not a multiple of 32 and were written as f16 (as llama.cpp's converter does)";
  return out;
}

}  // namespace sft::model
