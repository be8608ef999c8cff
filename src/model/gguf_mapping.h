// Model families <-> GGUF as llama.cpp's converter (convert_hf_to_gguf.py) writes it and llama.cpp's loader reads it:
// the architecture name and metadata keys, tensor names (token_embd, blk.N.attn_q, ...), the Llama q/k row
// permutation, Llama 3 rope scaling as a rope_freqs tensor, and the tokenizer (io/gguf_tokenizer.h).
// Export: `sft export`, `sft train --save_gguf`. Import: every command's --model / --model_name_or_path F.gguf
// (load_config, Model::load, and cmd_info go through open_gguf_model).
//
// Adding a family's GGUF mapping: one row of kGgufArchs in gguf_mapping.cpp (its llama.cpp architecture name and
// whether the converter permutes q/k), plus a tensor name for any TensorRole the family adds.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/hf_config.h"
#include "io/safetensors.h"
#include "model/family.h"

namespace sft::model {

// One family's GGUF facts: config.json model_type, llama.cpp's architecture name (general.architecture, key prefix),
// and whether llama.cpp's converter permutes q/k rows into its interleaved rotary layout (LlamaModel.undo_permute;
// Qwen2/Qwen3 rotate NEOX-style and are stored as transformers has them).
struct GgufArch {
  const char* model_type;
  const char* arch;
  bool permute_qk;
};
const GgufArch& gguf_arch(const std::string& model_type);  // throws naming the model_type when there is no mapping

// The converter's permute(w, n_head) of q/k rows (weights [rows, cols] or biases, cols = 1): within each head the
// two halves of the rotary dimensions become interleaved pairs; GGUF row h*d + 2i + j holds HF row h*d + j*d/2 + i.
// to_gguf applies it, otherwise it is undone.
bool gguf_permuted(const GgufArch& a, const TensorSpec& t);
int64_t gguf_permute_heads(const io::ModelConfig& c, const TensorSpec& t);  // n_head of the permutation of t
void gguf_permute_rows(std::vector<float>& v, int64_t n_head, int64_t cols, bool to_gguf);

// Llama 3 rope scaling as llama.cpp takes it: rope_freqs.weight, one divisor per rotary frequency (the converter's
// LlamaModel.generate_extra_tensors, computed in float32 as it does); and back: the llama3 parameters that reproduce
// such factors (throws naming `where` when none do).
std::vector<float> llama3_rope_factors(const io::ModelConfig& c);
io::RopeScaling rope_scaling_from_factors(io::ModelConfig c, const std::vector<float>& f, const std::string& where);

// llama.cpp's GGUF name of a tensor of the tensor table ("blk.3.attn_q.weight"); throws for a role with none.
std::string gguf_tensor_name(const TensorSpec& t);

// Throws naming the model_type when its family has no GGUF mapping.
void check_gguf_mapping(const io::ModelConfig& cfg);

// --outtype: f32, f16, bf16 or q8_0 (llama.cpp's converter's names); throws naming `flag` otherwise.
io::GgmlType parse_gguf_outtype(const std::string& text, const std::string& flag = "--outtype");

struct GgufExportResult {
  std::filesystem::path file;
  std::string architecture;  // general.architecture
  int64_t tensors = 0;
  uint64_t bytes = 0;
  int64_t f16_fallbacks = 0;  // q8_0 only: matrices whose rows are not a multiple of 32, written as F16
};

// Writes `model` (an HF folder or a GGUF file) — with a peft adapter merged in when adapter_dir is non-empty — as a
// GGUF of type outtype (the converter's rule: 1-D tensors, norms and biases stay F32; q8_0 falls back to F16 for a
// matrix whose rows are not a multiple of 32). Streams tensor by tensor into a temp file renamed at the end; refuses
// an existing outfile unless overwrite. Errors name the file, key or tensor.
GgufExportResult export_gguf(const std::filesystem::path& model, const std::filesystem::path& adapter_dir,
                             const std::filesystem::path& outfile, io::GgmlType outtype, bool overwrite);
// One line saying what export_gguf wrote (file, architecture, type, tensors, size), plus a note when matrices fell
// back to f16 (rows not a multiple of 32, as llama.cpp's converter does).
std::string describe_gguf_export(const GgufExportResult& r, const std::string& outtype);

// The model config a GGUF's metadata states (and its tensors: tied head, attention biases, rope_freqs) as a
// config.json would, parsed and checked by the family spec; errors name the file and key.
io::ModelConfig gguf_config(const io::GgufFile& f);

// A GGUF model as the decoder reads an HF folder: its config and a WeightStore whose tensors carry the HF names and
// layouts (GGUF names mapped, the Llama q/k permutation undone, blocks dequantised to float32). Every tensor is
// checked against the metadata first (present, shape, a readable type; no tensor the model does not use).
struct GgufModel {
  std::shared_ptr<const io::GgufFile> file;
  io::ModelConfig config;
  io::WeightStore weights;
};
GgufModel open_gguf_model(const std::filesystem::path& path);

}  // namespace sft::model
