// Model FLOPs of inference forwards (the useful work, as MFU counts it): 2 per weight of every linear layer per
// forwarded token, 4 * heads * head_dim per (query, visible key) pair of attention (QK^T and PV), and 2 * hidden *
// vocab per row that goes through the LM head. Padding, masked keys and recomputation are not counted, so the rate
// divided by the machine's gemm peak is the share of the machine the evaluation used.
#pragma once
#include <cstdint>

#include "io/hf_config.h"

namespace sft::eval {

struct ModelFlops {
  double per_token = 0;     // linear layers
  double per_key_pair = 0;  // attention
  double per_head_row = 0;  // LM head
  static ModelFlops of(const io::ModelConfig& c);
  // n tokens at positions first, first+1, ... each attending to every position up to its own (a causal row).
  double tokens(int64_t n, int64_t first_position) const {
    const double pairs = static_cast<double>(n) * static_cast<double>(first_position) +
                         static_cast<double>(n) * static_cast<double>(n + 1) / 2.0;
    return per_token * static_cast<double>(n) + per_key_pair * pairs;
  }
  double head_rows(int64_t rows) const { return per_head_row * static_cast<double>(rows); }
};

}  // namespace sft::eval
