// Checks a model folder's weights against its config.json before any buffer is sized from the config: the layer
// count must be the one the tensors hold (a config with fewer layers would silently drop trained layers, an absurd one
// — 2^62 — would allocate until the kernel kills the process), and every tensor the config implies must be present
// with its shape and a float dtype (the tensor table of model/family.h).
#pragma once
#include <filesystem>
#include <string>

#include "io/hf_config.h"
#include "io/safetensors.h"

namespace sft::model {

// Upper bounds on every size field of a parsed config (far above any real model: hidden_size <= 2^20,
// intermediate_size <= 2^22, layers <= 2^16, heads <= 2^12, head_dim <= 2^12, vocab <= 2^24, positions <= 2^27,
// rope_theta and rms_norm_eps finite). Within them every size derived from the config (parameter counts, tensor
// sizes, bytes) fits in int64 without overflow. Throws naming `where` (the file) and the key.
void check_config_bounds(const io::ModelConfig& cfg, const std::string& where);

// Throws sft::Error naming config_path (or the weight file and tensor) on the first mismatch.
void check_weights_match_config(const io::ModelConfig& cfg, const io::WeightStore& ws, const std::filesystem::path& config_path);

// ---- Non-finite values (NaN, +-inf)
// A NaN or inf weight makes every output NaN, yet scores, generations and merged folders were produced from such
// models with exit 0. Loading for generate/chat/eval and merging check every float tensor first (the same functions
// will guard checkpoint saves and resume); the error names the file, the tensor and the element. The opt-out flag,
// one name everywhere, is for people debugging such a model.
inline constexpr const char* kAllowNonfiniteFlag = "--allow_nonfinite_weights";

// Index of the first NaN/inf among n elements stored as `dtype` at p (F32, F16, BF16, F64: the exponent bits all
// ones, read from the stored bits without conversion; integer dtypes hold none), or -1.
int64_t first_nonfinite(io::DType dtype, const uint8_t* p, int64_t n);
int64_t first_nonfinite(const float* p, int64_t n);
// "NaN", "inf" or "-inf": what element i holds (for messages).
std::string nonfinite_name(io::DType dtype, const uint8_t* p, int64_t i);

// Throws "<file>: tensor "<name>" holds NaN at element i of [shape] ..." for the first non-finite float tensor.
void check_finite_tensors(const io::SafetensorsFile& file);
void check_finite_weights(const io::WeightStore& ws);
// The same for values in memory (merged weights before they are written): `where` names the tensor.
void check_finite_values(const float* p, int64_t n, const std::string& where);

}  // namespace sft::model
