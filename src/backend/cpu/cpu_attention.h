// Fast CPU attention with doc-id causal masking (contract: Backend::attention_forward/backward).
#pragma once
#include <cstdint>

#include "backend/backend.h"
#include "backend/cpu/cpu_variant.h"

namespace sft::backend::cpu::SFT_CPU_VARIANT {

void attention_forward_tiled(float* out, float* lse, const float* q, const float* k, const float* v,
                             const int32_t* doc, const AttnShape& s);
void attention_backward_tiled(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                              const float* v, const float* out, const float* lse, const int32_t* doc,
                              const AttnShape& s);

}  // namespace sft::backend::cpu::SFT_CPU_VARIANT
