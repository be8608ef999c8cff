// The family specs against the decoder and the memory plan, for every fixture config (tests/fixtures/io/configs,
// cut to 1 layer and a 256-token vocabulary so that the largest fits in a test):
//  - the decoder's parameters() are exactly tensor_table(): names, shapes, weight decay, in order;
//  - model::plan_training_memory (what `sft info` prints) equals the bytes a counting backend wrapped around the CPU
//    backend sees allocated by a real model + AdamW + one training step, in fp32 and bf16 mode.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>

#include "source_dir.h"
#include "backend/backend.h"
#include "model/family.h"
#include "model/memory_plan.h"
#include "model/model.h"
#include "train/adamw.h"
#include "util/file_util.h"
#include "model_test_util.h"

namespace sft::model {
namespace {

std::vector<std::filesystem::path> fixture_configs() {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(sft::test::source_dir()) + "/tests/fixtures/io/configs"))
    if (e.path().extension() == ".json") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

io::ModelConfig cut(io::ModelConfig c) {
  c.num_hidden_layers = 1;
  c.vocab_size = 256;
  return c;
}

TEST(Family, EveryFixtureHasAFamilyAndTheDecoderAllocatesItsTable) {
  const auto configs = fixture_configs();
  ASSERT_GE(configs.size(), 6u);
  for (const auto& path : configs) {
    SCOPED_TRACE(path.filename().string());
    const io::ModelConfig c = cut(load_config(path));
    auto be = backend::make_cpu_backend();
    auto m = Model::random(c, 1, *be, Precision::F32);
    const auto params = m->parameters();
    const auto table = tensor_table(c);
    ASSERT_EQ(params.size(), table.size());
    int64_t n = 0;
    for (size_t i = 0; i < table.size(); ++i) {
      EXPECT_EQ(params[i].name, table[i].name);
      EXPECT_EQ(params[i].shape, table[i].shape);
      EXPECT_EQ(params[i].decay, table[i].decay);
      EXPECT_EQ(params[i].numel, table[i].numel());
      n += params[i].numel;
    }
    EXPECT_EQ(n, num_parameters(c));
  }
}

TEST(Family, MemoryPlanEqualsCountedAllocations) {
  for (const auto& path : fixture_configs()) {
    for (bool ckpt : {false, true}) {
      for (Precision p : {Precision::F32, Precision::BF16}) {
        if (ckpt && p == Precision::BF16) continue;  // the workspace difference is the same; keeps the test short
        SCOPED_TRACE(path.filename().string() + (p == Precision::BF16 ? " bf16" : " f32") + (ckpt ? " checkpointed" : ""));
        io::ModelConfig c = cut(load_config(path));
        if (ckpt) c.num_hidden_layers = 2;  // checkpointing keeps one layer's activations instead of two
        test::CountingBackend be(backend::make_cpu_backend());
        const Batch b = Batch::from_sequences({{1, 2, 3, 4, 5, 6}, {7, 8, 9}}, {}, 0);  // n = 2 * 6 tokens
        const MemoryPlan plan = plan_training_memory(c, b.B * b.T, p, be.fast_bf16_gemm(), ckpt);
        if (ckpt) {
          EXPECT_LT(plan.activations, plan_training_memory(c, b.B * b.T, p, be.fast_bf16_gemm()).activations);
        }
        {
          auto m = Model::random(c, 3, be, p);
          m->set_gradient_checkpointing(ckpt);
          const int64_t after_model = be.live;
          EXPECT_EQ(after_model, plan.weights + plan.gradients + plan.compute_copies);
          train::AdamW opt(be, m->parameters(), {});
          EXPECT_EQ(be.live - after_model, plan.optimizer);
          m->forward_backward(b, 1.0f / static_cast<float>(b.count_targets()));
          opt.step(1e-3);
          m->on_weights_updated();
          EXPECT_EQ(be.peak, plan.total());
          EXPECT_EQ(plan.parameters, num_parameters(c));
        }
        EXPECT_EQ(be.live, 0);  // everything freed
      }
    }
  }
}

// A run reserves its largest micro-batch (Model::reserve_training_tokens): smaller batches of any shape then reuse that
// workspace (no allocation after the reservation), and the peak is the plan of the reserved token count.
TEST(Family, ReservedWorkspaceIsReusedBySmallerBatches) {
  const io::ModelConfig c = cut(load_config(fixture_configs().front()));
  test::CountingBackend be(backend::make_cpu_backend());
  const Batch padded = Batch::from_sequences({{1, 2, 3, 4, 5, 6}, {7, 8, 9}}, {{1, 2, 3, 4, 5, 6}, {7, 8, 9}}, 0);
  const Batch one_row = Batch::from_sequences({{1, 2, 3, 4, 5, 6, 7, 8, 9}}, {{1, 2, 3, 4, 5, 6, 7, 8, 9}}, 0);
  const MemoryPlan plan = plan_training_memory(c, 16, Precision::F32, be.fast_bf16_gemm());
  {
    auto m = Model::random(c, 3, be, Precision::F32);
    train::AdamW opt(be, m->parameters(), {});
    m->reserve_training_tokens(16);
    const int64_t reserved = be.live;
    for (const Batch* b : {&padded, &one_row, &padded}) {
      m->forward_backward(*b, 0.1f);
      EXPECT_EQ(be.live, reserved) << "a batch of " << b->B * b->T << " tokens reallocated the workspace";
    }
    opt.step(1e-3);
    EXPECT_EQ(be.peak, plan.total());
  }
  EXPECT_EQ(be.live, 0);
}

}  // namespace
}  // namespace sft::model
