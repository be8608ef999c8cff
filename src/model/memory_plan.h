// What training a model of a config costs in backend memory, computed by running the decoder's own allocation code
// against a sizing backend (alloc() only counts; nothing is allocated), so the plan cannot drift from the decoder.
// `sft info` prints it; tests/model/memory_plan_test.cpp checks it against a counting backend wrapped around the
// real CPU backend during a real training step.
#pragma once
#include <cstdint>

#include "io/hf_config.h"
#include <memory>

#include "model/frozen_weights.h"
#include "model/model.h"

namespace sft::model {

struct MemoryPlan {
  int64_t parameters = 0;       // trainable parameter count (tied head once)
  int64_t weights = 0;          // fp32 masters (each tensor 64-byte aligned) + the RoPE frequency table
  int64_t gradients = 0;        // fp32, same layout as the masters
  int64_t optimizer = 0;        // AdamW m and v, fp32
  int64_t compute_copies = 0;   // BF16 mode: weight copies for the gemms (bf16, or bf16-rounded fp32 when emulated)
  int64_t activations = 0;      // the training workspace of one micro-batch (docs/ARCHITECTURE.md memory plan)
  int64_t total() const { return weights + gradients + optimizer + compute_copies + activations; }
};

// Full fine-tuning with AdamW, n_tokens = batch_size * seq_len per micro-batch. fast_bf16_gemm: the device's
// Backend::fast_bf16_gemm() (decides the size of the BF16 weight copies and operand slots). gradient_checkpointing:
// the workspace of Model::set_gradient_checkpointing(true).
MemoryPlan plan_training_memory(const io::ModelConfig& cfg, int64_t n_tokens, Precision p, bool fast_bf16_gemm,
                                bool gradient_checkpointing = false);

// LoRA / QLoRA training, by the same method (the decoder with the adapters attached, on the sizing backend): the
// frozen base as the run stores it -- storage nullptr: fp32 masters (fp32 compute); else in its stored form, bf16
// or 4-bit (FrozenTensor::bytes_for of each frozen matrix) -- plus norms, adapters and modules_to_save with fp32
// value, gradient and AdamW m, v, the training workspace and the adapters' saved rows (plan_lora). `weights` holds
// everything the model allocates (base, adapters, their gradients, bf16 copies); `frozen` the stored-form part.
struct LoraMemoryPlan {
  MemoryPlan plan;
  int64_t frozen = 0;
};
LoraMemoryPlan plan_lora_memory(const io::ModelConfig& cfg, const io::LoraAdapterConfig& lora, int64_t n_tokens,
                                Precision p, bool fast_bf16_gemm, bool gradient_checkpointing,
                                const FrozenStorage* storage);

// How a LoRA run of compute precision p keeps its frozen base (Model::load's rule): nullptr = fp32 masters (fp32
// compute without 4 bits, or keep_fp32_base); else bf16-only or 4-bit as the options say.
std::unique_ptr<FrozenStorage> frozen_storage_for(Precision p, const LoraOptions& o);

}  // namespace sft::model
