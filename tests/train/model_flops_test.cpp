// batch_model_flops: the trainer's "Model GFLOP/s" numerator (6N per real token + full-square attention per document).
#include <gtest/gtest.h>

#include "data/batching.h"
#include "io/hf_config.h"
#include "train/trainer.h"

namespace sft::train {
namespace {

TEST(ModelFlops, SixNPerRealTokenPlusAttentionPerDocumentSquare) {
  io::ModelConfig c;
  c.hidden_size = 64, c.num_attention_heads = 4, c.head_dim = 0, c.num_hidden_layers = 3;  // head_dim 64/4 = 16
  data::Batch b;
  b.B = 2, b.T = 5;
  b.doc_ids = {0, 0, 0, 1, 1,      // row 0: packed documents of 3 and 2 tokens
               7, 7, 7, 7, -1};    // row 1: 4 tokens + padding
  const int64_t n_params = 1000;
  const double tokens = 9, pairs = 3 * 3 + 2 * 2 + 4 * 4;
  EXPECT_DOUBLE_EQ(batch_model_flops(b, n_params, c), 6.0 * n_params * tokens + 6.0 * 3 * 4 * 16 * pairs);
  // the bench's formula for one full row of T tokens: 6*N*T + 6*L*T^2*heads*head_dim
  data::Batch full;
  full.B = 1, full.T = 4, full.doc_ids = {0, 0, 0, 0};
  c.head_dim = 32;
  EXPECT_DOUBLE_EQ(batch_model_flops(full, n_params, c), 6.0 * n_params * 4 + 6.0 * 3 * 16 * 4 * 32);
}

}  // namespace
}  // namespace sft::train
