// QLoRA flags of sft eval / generate / chat (transformers' BitsAndBytesConfig names, as sft train's settings rows):
// with --adapter, the base's projections are quantised to 4 bits at load exactly as in the QLoRA run that trained it.
#pragma once
#include <string>

#include "cli/commands.h"
#include "model/model.h"

namespace sft::cli {

struct QuantFlags {
  bool load_in_4bit = false;
  std::string quant_type = "nf4";
  bool double_quant = false;
  std::string compute_dtype = "float32";
};

void add_quant_flags(CLI::App* sub, QuantFlags& q);
// The base storage for model::load_model (nullptr without --load_in_4bit); throws naming the flag on a bad value or
// --load_in_4bit without --adapter. model_bf16: the model dtype is bfloat16 (--dtype bfloat16).
const model::LoraOptions* base_storage(const QuantFlags& q, bool has_adapter, bool model_bf16, model::LoraOptions& out);
// The gemms' precision: --bnb_4bit_compute_dtype with --load_in_4bit, else `otherwise`.
model::Precision quant_precision(const QuantFlags& q, model::Precision otherwise);

}  // namespace sft::cli
