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

}  // namespace sft::model
