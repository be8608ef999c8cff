#include "model/weight_check.h"

#include "model/family.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace sft::model {

void check_config_bounds(const io::ModelConfig& c, const std::string& where) {
  auto bound = [&](const char* key, int64_t v, int log2_max) {
    SFT_CHECK(v <= (int64_t{1} << log2_max), where, ": \"", key, "\" is ", v, ", more than any model this program can ",
              "hold (at most 2^", log2_max, ")");
  };
  bound("hidden_size", c.hidden_size, 20);
  bound("intermediate_size", c.intermediate_size, 22);
  bound("num_hidden_layers", c.num_hidden_layers, 16);
  bound("num_attention_heads", c.num_attention_heads, 12);
  bound("num_key_value_heads", c.num_key_value_heads, 12);
  bound("head_dim", c.head_dim, 12);
  bound("vocab_size", c.vocab_size, 24);
  bound("max_position_embeddings", c.max_position_embeddings, 27);
  SFT_CHECK(c.num_key_value_heads <= c.num_attention_heads, where, ": num_key_value_heads ", c.num_key_value_heads,
            " is more than num_attention_heads ", c.num_attention_heads);
  SFT_CHECK(std::isfinite(c.rope_theta) && c.rope_theta > 0, where, ": rope_theta must be a finite positive number");
  SFT_CHECK(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0 && c.rms_norm_eps < 1, where,
            ": rms_norm_eps must be a finite number in (0, 1)");
}

void check_weights_match_config(const io::ModelConfig& cfg, const io::WeightStore& ws, const std::filesystem::path& config_path) {
  const std::string cfg_name = config_path.string();
  // Layers present in the files: model.layers.<N>.*
  static constexpr std::string_view kPrefix = "model.layers.";
  std::set<int64_t> layers;
  for (const auto& name : ws.names()) {
    if (name.compare(0, kPrefix.size(), kPrefix) != 0) continue;
    const char* b = name.data() + kPrefix.size();
    const char* e = name.data() + name.size();
    int64_t idx = -1;
    const auto [p, ec] = std::from_chars(b, e, idx);
    SFT_CHECK(ec == std::errc() && p != b && p < e && *p == '.' && idx >= 0 && idx < (int64_t{1} << 20),
              ws.path_of(name).string(), ": tensor \"", name, "\" has no valid layer number");
    layers.insert(idx);
  }
  const int64_t L = cfg.num_hidden_layers;
  const int64_t in_files = layers.empty() ? 0 : *layers.rbegin() + 1;
  SFT_CHECK(L <= in_files, cfg_name, ": num_hidden_layers is ", L, " but the weights hold ", in_files, " layer(s) (",
            in_files == 0 ? std::string("no model.layers.* tensors") : "model.layers." + std::to_string(in_files) + ".* is missing",
            ")");
  SFT_CHECK(L >= in_files, cfg_name, ": num_hidden_layers is ", L, " but the weights hold model.layers.",
            in_files - 1, ".* (", in_files, " layers); the extra layers would be silently dropped");
  for (int64_t l = 0; l < L; ++l)
    SFT_CHECK(layers.count(l), cfg_name, ": num_hidden_layers is ", L, " but no model.layers.", l, ".* tensor exists");

  // The layer count is now bounded by the files: the weight list the config implies is safe to build.
  for (const auto& w : tensor_table(cfg)) {
    const io::TensorInfo& t = ws.info(w.name);  // throws naming the tensor when absent
    const std::string file = ws.path_of(w.name).string();
    SFT_CHECK(t.shape == w.shape, file, ": tensor \"", w.name, "\" has shape ", io::shape_str(t.shape), ", ", cfg_name,
              " implies ", io::shape_str(w.shape));
    SFT_CHECK(t.dtype == io::DType::F32 || t.dtype == io::DType::BF16 || t.dtype == io::DType::F16, file, ": tensor \"", w.name,
              "\" has dtype ", io::dtype_name(t.dtype), ", expected F32, BF16 or F16");
  }
}

std::optional<ConfigDifference> config_difference(const io::ModelConfig& ours, const io::ModelConfig& theirs) {
  // Serialised from the parsed fields alone (no source text), so keys sft does not interpret cannot differ, and every
  // key a family writes back is compared.
  const auto comparable = [](io::ModelConfig c) {
    c.source_json.clear();
    c.torch_dtype = "float32";
    c.bos_token_id = c.eos_token_id = c.pad_token_id = std::nullopt;
    c.eos_token_ids.clear();
    return nlohmann::json::parse(config_to_json(c));
  };
  const nlohmann::json a = comparable(ours), b = comparable(theirs);
  std::set<std::string> keys;
  for (const auto& [k, v] : a.items()) keys.insert(k);
  for (const auto& [k, v] : b.items()) keys.insert(k);
  for (const std::string& k : keys) {
    const std::string x = a.contains(k) ? a[k].dump() : "absent", y = b.contains(k) ? b[k].dump() : "absent";
    if (x != y) return ConfigDifference{k, x, y};
  }
  return std::nullopt;
}

namespace {

template <class Bits>
Bits load_bits(const uint8_t* p, int64_t i) {
  Bits b;
  std::memcpy(&b, p + static_cast<size_t>(i) * sizeof(Bits), sizeof(Bits));  // any alignment (safetensors: any)
  return b;
}

template <class Bits>
int64_t first_all_ones_exponent(const uint8_t* p, int64_t n, Bits exponent_mask) {
  for (int64_t i = 0; i < n; ++i)
    if ((load_bits<Bits>(p, i) & exponent_mask) == exponent_mask) return i;
  return -1;
}

std::string nonfinite_message(const std::string& file, const std::string& tensor, const std::string& value,
                              int64_t index, const std::vector<int64_t>& shape) {
  return file + ": tensor \"" + tensor + "\" holds " + value + " at element " + std::to_string(index) + " of " +
         io::shape_str(shape) + "; a model with non-finite weights computes NaN (pass " + kAllowNonfiniteFlag +
         " to load it anyway, for debugging)";
}

}  // namespace

int64_t first_nonfinite(io::DType dtype, const uint8_t* p, int64_t n) {
  switch (dtype) {
    case io::DType::F32: return first_all_ones_exponent<uint32_t>(p, n, 0x7F800000u);
    case io::DType::BF16: return first_all_ones_exponent<uint16_t>(p, n, uint16_t{0x7F80});
    case io::DType::F16: return first_all_ones_exponent<uint16_t>(p, n, uint16_t{0x7C00});
    case io::DType::F64: return first_all_ones_exponent<uint64_t>(p, n, 0x7FF0000000000000ull);
    default: return -1;
  }
}

int64_t first_nonfinite(const float* p, int64_t n) {
  return first_nonfinite(io::DType::F32, reinterpret_cast<const uint8_t*>(p), n);
}

std::string nonfinite_name(io::DType dtype, const uint8_t* p, int64_t i) {
  uint64_t mantissa = 0;
  bool negative = false;
  switch (dtype) {
    case io::DType::F32: mantissa = load_bits<uint32_t>(p, i) & 0x7FFFFFu; negative = load_bits<uint32_t>(p, i) >> 31; break;
    case io::DType::BF16: mantissa = load_bits<uint16_t>(p, i) & 0x7Fu; negative = load_bits<uint16_t>(p, i) >> 15; break;
    case io::DType::F16: mantissa = load_bits<uint16_t>(p, i) & 0x3FFu; negative = load_bits<uint16_t>(p, i) >> 15; break;
    case io::DType::F64:
      mantissa = load_bits<uint64_t>(p, i) & 0xFFFFFFFFFFFFFull;
      negative = load_bits<uint64_t>(p, i) >> 63;
      break;
    default: return "a finite value";
  }
  return mantissa ? "NaN" : negative ? "-inf" : "inf";
}

namespace {

// The bytes scanned per chunk before their pages are handed back (64 MiB: a few hundred chunks for a 7B folder).
constexpr int64_t kScanChunkBytes = int64_t{64} << 20;

// The first non-finite element of a mapped tensor, scanned in chunks whose file pages are released behind the scan
// (SafetensorsFile::release). The check runs after the model is loaded: touching the whole mapping at once kept the
// file resident beside the model until the kernel evicted it (Qwen2.5-7B shape, bf16-only base: VmHWM 19.2 GiB for a
// 14.2 GiB model); chunked, it holds at most one chunk.
int64_t first_nonfinite_streamed(const io::SafetensorsFile& file, const io::TensorInfo& t) {
  const int64_t n = t.numel(), es = static_cast<int64_t>(io::dtype_size(t.dtype));
  const int64_t chunk = std::max<int64_t>(1, kScanChunkBytes / es);
  for (int64_t e0 = 0; e0 < n; e0 += chunk) {
    const int64_t m = std::min(chunk, n - e0);
    const int64_t bad = first_nonfinite(t.dtype, file.data(t) + e0 * es, m);
    file.release(t, static_cast<size_t>(e0 * es), static_cast<size_t>((e0 + m) * es));
    if (bad >= 0) return e0 + bad;
  }
  return -1;
}

// The same for a GGUF tensor's decoded values, read in ranges (the store caches one decoded tensor, dropped with its
// last range) instead of a whole fp32 copy of, e.g., the embedding.
int64_t first_nonfinite_decoded(const io::WeightStore& ws, const std::string& name, std::vector<float>& buf) {
  const int64_t n = ws.info(name).numel();
  const int64_t chunk = kScanChunkBytes / static_cast<int64_t>(sizeof(float));
  for (int64_t e0 = 0; e0 < n; e0 += chunk) {
    const int64_t m = std::min(chunk, n - e0);
    buf.resize(static_cast<size_t>(m));
    ws.read_f32_range(name, e0, m, buf.data());
    ws.release(name, e0, m);
    const int64_t bad = first_nonfinite(buf.data(), m);
    if (bad >= 0) return e0 + bad;
  }
  return -1;
}

}  // namespace

void check_finite_tensors(const io::SafetensorsFile& file) {
  for (const io::TensorInfo& t : file.tensors()) {
    const int64_t bad = first_nonfinite_streamed(file, t);
    if (bad >= 0)
      throw Error(nonfinite_message(file.path().string(), t.name, nonfinite_name(t.dtype, file.data(t), bad), bad,
                                    t.shape));
  }
}

void check_finite_weights(const io::WeightStore& ws) {
  std::vector<float> buf;
  for (const std::string& name : ws.names()) {
    const io::TensorInfo& t = ws.info(name);
    if (ws.is_decoded(name)) {  // a GGUF tensor: its decoded values (a block's f16 scale can be inf/NaN)
      const int64_t bad = first_nonfinite_decoded(ws, name, buf);
      if (bad >= 0) {
        float v = 0;
        ws.read_f32_range(name, bad, 1, &v);
        throw Error(nonfinite_message(ws.path_of(name).string(), name,
                                      nonfinite_name(io::DType::F32, reinterpret_cast<const uint8_t*>(&v), 0), bad,
                                      t.shape));
      }
      continue;
    }
    const io::SafetensorsFile& file = ws.file_of(name);
    const int64_t bad = first_nonfinite_streamed(file, t);
    if (bad >= 0)
      throw Error(nonfinite_message(file.path().string(), name, nonfinite_name(t.dtype, file.data(t), bad), bad,
                                    t.shape));
  }
}

void check_finite_values(const float* p, int64_t n, const std::string& where) {
  const int64_t bad = first_nonfinite(p, n);
  if (bad < 0) return;
  const auto* bytes = reinterpret_cast<const uint8_t*>(p);
  throw Error(where + " holds " + nonfinite_name(io::DType::F32, bytes, bad) + " at element " + std::to_string(bad) +
              "; refusing to write non-finite weights (pass " + kAllowNonfiniteFlag + " to write them anyway, for "
              "debugging)");
}

}  // namespace sft::model
