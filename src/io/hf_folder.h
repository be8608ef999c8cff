// Writing a whole Hugging Face model folder: the output of `sft train` (final model and checkpoints) is the same kind
// of folder as its input, loadable by transformers: config.json + weights (model.safetensors, or shards +
// model.safetensors.index.json) + the base model's tokenizer / generation files copied verbatim.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace sft::io {

// Files copied verbatim from the base model folder when present (tokenizer, chat template, generation defaults).
const std::vector<std::string>& tokenizer_file_names();

// Copies every tokenizer_file_names() entry present in src_dir into dst_dir (created if needed), each atomically.
// Returns the names copied. Copying a folder onto itself is a no-op. A GGUF file as src_dir writes the
// tokenizer.json and tokenizer_config.json its metadata stands for (io/gguf_tokenizer.h).
std::vector<std::string> copy_tokenizer_files(const std::filesystem::path& src_dir,
                                              const std::filesystem::path& dst_dir);

// Writes dir/config.json atomically (the text comes from model::config_to_json: io knows no model family).
void write_config(const std::filesystem::path& dir, const std::string& config_json);

// Writes the weights into dir: one model.safetensors when max_shard_bytes == 0 or everything fits, otherwise
// model-0000i-of-0000n.safetensors shards (tensors in name order, a shard closes before it would exceed the limit)
// plus model.safetensors.index.json ({"metadata": {"total_size": bytes}, "weight_map": {name: shard}}).
// Weight files of another layout left by an earlier save in dir are removed afterwards, so that the folder never
// holds two disagreeing copies. Returns the files written.
std::vector<std::filesystem::path> write_weights(const std::filesystem::path& dir, std::vector<TensorToWrite> tensors,
                                                 uint64_t max_shard_bytes = 0);

// The whole folder: creates dir, writes weights, config.json, then copies the tokenizer files from base_dir
// (skipped when base_dir is empty).
void save_hf_folder(const std::filesystem::path& dir, const std::string& config_json,
                    std::vector<TensorToWrite> tensors,
                    const std::filesystem::path& base_dir, uint64_t max_shard_bytes = 0);

}  // namespace sft::io
