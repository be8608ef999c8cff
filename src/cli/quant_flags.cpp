#include "cli/quant_flags.h"

#include "util/error.h"

namespace sft::cli {

void add_quant_flags(CLI::App* sub, QuantFlags& q) {
  // Bare (--load_in_4bit) or with a value (--load_in_4bit True|False), as sft train and transformers' scripts take it.
  sub->add_flag("--load_in_4bit{true}", q.load_in_4bit,
                "With --adapter: quantise the base's projections to 4 bits at load, as bitsandbytes (QLoRA)")
      ->expected(0, 1);
  sub->add_option("--bnb_4bit_quant_type", q.quant_type, "nf4 or fp4")->capture_default_str();
  sub->add_flag("--bnb_4bit_use_double_quant{true}", q.double_quant, "Quantise the 4-bit block scales too (8 bits)")
      ->expected(0, 1);
  sub->add_option("--bnb_4bit_compute_dtype", q.compute_dtype, "float32 or bfloat16")->capture_default_str();
}

const model::LoraOptions* base_storage(const QuantFlags& q, bool has_adapter, bool model_bf16, model::LoraOptions& out) {
  if (!q.load_in_4bit) return nullptr;
  SFT_CHECK(has_adapter, "--load_in_4bit: a 4-bit base is loaded for a QLoRA adapter: add --adapter DIR");
  SFT_CHECK(q.quant_type == "nf4" || q.quant_type == "fp4", "--bnb_4bit_quant_type: expected nf4 or fp4, got '",
            q.quant_type, "'");
  SFT_CHECK(q.compute_dtype == "float32" || q.compute_dtype == "bfloat16",
            "--bnb_4bit_compute_dtype: expected float32 or bfloat16, got '", q.compute_dtype, "'");
  out.load_in_4bit = true;
  out.bnb_4bit_quant_type = q.quant_type;
  out.bnb_4bit_use_double_quant = q.double_quant;
  out.store_dtype_bf16 = model_bf16 || q.compute_dtype == "bfloat16";
  return &out;
}

model::Precision quant_precision(const QuantFlags& q, model::Precision otherwise) {
  if (!q.load_in_4bit) return otherwise;
  return q.compute_dtype == "bfloat16" ? model::Precision::BF16 : model::Precision::F32;
}

}  // namespace sft::cli
