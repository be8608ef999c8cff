// A full training step of a tiny Qwen2-shaped model on the CUDA backend against the CPU reference backend:
// Model::random with the same seed on both, one forward_backward over a packed + padded batch, then the loss sum,
// the target count and every parameter gradient are compared; then one AdamW step and the loss after it.
// Tolerances: F32 mode 5e-3 of each gradient's scale (attention's internal GEMMs run TF32), loss 1e-3 relative;
// BF16 mode (bf16 GEMM operands on both sides, roundings can differ where activations differ in the last fp32 bits)
// 3e-2 of the scale, loss 1e-2 relative.
#include "gpu_test_util.h"
#include "io/hf_config.h"
#include "model/model.h"

namespace sft::gputest {
namespace {

io::ModelConfig tiny_config() {
  io::ModelConfig c;
  c.model_type = "qwen2";
  c.architecture = "Qwen2ForCausalLM";
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = 256;
  c.max_position_embeddings = 512;
  c.rope_theta = 1e6;
  c.rms_norm_eps = 1e-6;
  c.tie_word_embeddings = true;
  c.attention_bias = true;
  c.torch_dtype = "float32";
  c.eos_token_id = 1;
  c.pad_token_id = 0;
  return c;
}

// Row 0 packs two documents (the first with a 5-token prompt masked out); row 1 holds one document then padding.
model::Batch tiny_batch(int64_t V) {
  model::Batch b;
  b.B = 2;
  b.T = 48;
  auto ids = randint(b.B * b.T, 2, int32_t(V), 7);
  b.input_ids = ids;
  b.position_ids.resize(b.B * b.T);
  b.doc_ids.resize(b.B * b.T);
  b.labels.resize(b.B * b.T);
  for (int64_t i = 0; i < b.T; ++i) {
    const bool second = i >= 20;
    b.doc_ids[i] = second ? 1 : 0;
    b.position_ids[i] = int32_t(second ? i - 20 : i);
    b.labels[i] = (!second && i < 5) ? -100 : ids[i];
    const int64_t j = b.T + i;
    const bool pad = i >= 33;
    b.doc_ids[j] = pad ? -1 : 0;
    b.position_ids[j] = pad ? 0 : int32_t(i);
    b.input_ids[j] = pad ? 0 : ids[j];
    b.labels[j] = pad ? -100 : ids[j];
  }
  return b;
}

std::vector<float> download(backend::Backend& be, const float* p, int64_t n) {
  std::vector<float> h(n);
  be.download(h.data(), p, size_t(n) * 4);
  return h;
}

void step_case(model::Precision prec, float grad_tol, double loss_rtol) {
  std::string why;
  auto cuda = try_cuda(&why);
  if (!cuda) GTEST_SKIP() << "no CUDA device: " << why;
  auto ref = backend::make_cpu_reference_backend();
  const auto cfg = tiny_config();
  auto mg = model::Model::random(cfg, 1234, *cuda, prec);
  auto mr = model::Model::random(cfg, 1234, *ref, prec);
  const auto batch = tiny_batch(cfg.vocab_size);
  const int64_t targets = batch.count_targets();
  ASSERT_GT(targets, 0);
  mg->zero_grad();
  mr->zero_grad();
  const auto lg = mg->forward_backward(batch, 1.0f / float(targets));
  const auto lr = mr->forward_backward(batch, 1.0f / float(targets));
  EXPECT_EQ(lg.n_targets, lr.n_targets);
  EXPECT_NEAR(lg.sum, lr.sum, loss_rtol * std::fabs(lr.sum)) << "loss sum";
  auto pg = mg->parameters();
  auto pr = mr->parameters();
  ASSERT_EQ(pg.size(), pr.size());
  for (size_t i = 0; i < pg.size(); ++i) {
    ASSERT_EQ(pg[i].name, pr[i].name);
    ASSERT_EQ(pg[i].numel, pr[i].numel);
    EXPECT_TRUE(close_scaled(download(*cuda, pg[i].value, pg[i].numel), download(*ref, pr[i].value, pr[i].numel),
                             1e-6f))
        << pg[i].name << " (initial weights differ)";
    // scale = max |grad| of the tensor
    auto gg = download(*cuda, pg[i].grad, pg[i].numel), gr = download(*ref, pr[i].grad, pr[i].numel);
    float mx = 1e-12f;
    for (float x : gr) mx = std::max(mx, std::fabs(x));
    EXPECT_TRUE(close(gg, gr, grad_tol * mx, 0)) << pg[i].name << " grad";
  }
  // one AdamW step on both, then the loss again
  for (auto* pair : {&pg, &pr}) {
    auto& be = pair == &pg ? *cuda : *ref;
    backend::AdamWArgs a;
    a.lr = 1e-3f;
    a.weight_decay = 0.01f;
    for (auto& p : *pair) {
      auto* m = static_cast<float*>(be.alloc(size_t(p.numel) * 4));
      auto* v = static_cast<float*>(be.alloc(size_t(p.numel) * 4));
      be.adamw_step(p.value, p.grad, m, v, p.numel, a);
      be.synchronize();
      be.free(m);
      be.free(v);
    }
  }
  mg->on_weights_updated();
  mr->on_weights_updated();
  const auto l2g = mg->forward_loss(batch);
  const auto l2r = mr->forward_loss(batch);
  EXPECT_NEAR(l2g.sum, l2r.sum, loss_rtol * std::fabs(l2r.sum)) << "loss after one AdamW step";
  EXPECT_LT(l2g.sum, lg.sum) << "one step on the same batch lowers its loss";
}

TEST(CudaModelStep, F32MatchesCpuReference) { step_case(model::Precision::F32, 5e-3f, 1e-3); }
TEST(CudaModelStep, Bf16MatchesCpuReference) { step_case(model::Precision::BF16, 3e-2f, 1e-2); }

}  // namespace
}  // namespace sft::gputest
