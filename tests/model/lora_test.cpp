// LoRA properties that do not need peft (parity with peft: test_lora_parity.py): a new adapter (B = 0) leaves the
// model's output bit-identical; fast vs reference backend with the adapter active; dropout masks agree between forward
// and backward (finite differences of the training loss); the base is frozen (only adapters are parameters); target
// resolution follows peft's rules and rejects bad names; merge_lora_delta equals the adapter's forward.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/backend.h"
#include "model/lora.h"
#include "model/model.h"
#include "model_test_util.h"
#include "util/error.h"

namespace sft::model {
namespace {

io::ModelConfig tiny(bool tied, bool bias) {
  io::ModelConfig c;
  c.model_type = bias ? "qwen2" : "llama";
  c.hidden_size = 24, c.intermediate_size = 40, c.num_hidden_layers = 2, c.num_attention_heads = 4;
  c.num_key_value_heads = 2, c.head_dim = 6, c.vocab_size = 53, c.max_position_embeddings = 64;
  c.rope_theta = 1000.0, c.rms_norm_eps = 1e-6, c.tie_word_embeddings = tied, c.attention_bias = bias;
  return c;
}

Batch random_batch(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  std::mt19937 g(seed);
  std::vector<std::vector<int32_t>> seqs;
  for (int64_t r = 0; r < B; ++r) {
    std::vector<int32_t> s(T - r);
    for (auto& x : s) x = static_cast<int32_t>(g() % V);
    seqs.push_back(s);
  }
  return Batch::from_sequences(seqs, {}, 0);
}

LoraOptions lora_opts(std::vector<std::string> targets, bool as_string, double dropout = 0.0) {
  LoraOptions o;
  o.config.r = 3;
  o.config.lora_alpha = 7;
  o.config.lora_dropout = dropout;
  o.config.target_modules = std::move(targets);
  o.config.target_is_string = as_string;
  o.seed = 11;
  return o;
}

// Gives every lora_B random values (a new adapter has B = 0, which would hide most of the LoRA term).
void randomize_b(Model& m, uint64_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.0f, 0.3f);
  for (const ParamRef& p : m.parameters()) {
    if (p.name.find("lora_B") == std::string::npos) continue;
    std::vector<float> h(p.numel);
    for (auto& x : h) x = nd(g);
    m.backend().upload(p.value, h.data(), h.size() * sizeof(float));
  }
}

using test::grads_of;
using test::rel;

TEST(Lora, NewAdapterLeavesOutputBitIdentical) {
  auto be = backend::make_cpu_backend();
  const auto cfg = tiny(true, true);
  auto base = Model::random(cfg, 5, *be, Precision::F32);
  const LoraOptions o = lora_opts({"all-linear"}, true);
  auto lora = Model::random(cfg, 5, *be, Precision::F32, &o);
  const Batch b = random_batch(2, 9, cfg.vocab_size, 1);
  EXPECT_EQ(base->logits(b), lora->logits(b));  // B = 0: the LoRA term adds exact zeros
}

TEST(Lora, BaseIsFrozenOnlyAdaptersAreParameters) {
  auto be = backend::make_cpu_backend();
  const auto cfg = tiny(false, false);
  LoraOptions o = lora_opts({"q_proj", "v_proj"}, false);
  o.config.modules_to_save = {"lm_head"};
  auto m = Model::random(cfg, 3, *be, Precision::F32, &o);
  int64_t lora = 0, saved = 0;
  for (const ParamRef& p : m->parameters()) {
    if (p.name.find(".lora_") != std::string::npos) lora += p.numel;
    else {
      EXPECT_EQ(p.name, "base_model.model.lm_head.weight");
      saved += p.numel;
    }
  }
  const int64_t H = 24, QD = 24, KD = 12;
  EXPECT_EQ(lora, 2 * 3 * ((H + QD) + (H + KD)));  // 2 layers x (q + v), r 3
  EXPECT_EQ(saved, 53 * 24);
  EXPECT_EQ(m->num_all_parameters(), num_parameters(cfg) + lora + saved);
  ASSERT_NE(m->lora_config(), nullptr);
}

TEST(Lora, FastMatchesReferenceBackendWithAdapter) {
  auto fast = backend::make_cpu_backend();
  auto ref = backend::make_cpu_reference_backend();
  const auto cfg = tiny(true, true);
  const LoraOptions o = lora_opts({"all-linear"}, true);
  auto a = Model::random(cfg, 7, *fast, Precision::F32, &o);
  auto b = Model::random(cfg, 7, *ref, Precision::F32, &o);
  randomize_b(*a, 3);
  randomize_b(*b, 3);
  const Batch batch = random_batch(2, 8, cfg.vocab_size, 4);
  a->zero_grad();
  b->zero_grad();
  const float scale = 1.0f / static_cast<float>(batch.count_targets());
  const LossSum la = a->forward_backward(batch, scale), lb = b->forward_backward(batch, scale);
  EXPECT_NEAR(la.sum, lb.sum, 1e-4 * std::abs(lb.sum));
  EXPECT_LT(rel(grads_of(*a), grads_of(*b)), 1e-4);  // fp32, summation order only
  EXPECT_LT(rel(a->logits(batch), b->logits(batch)), 1e-5);
}

// d(training loss)/d(theta) by central differences, with the dropout mask fixed by the seed: if the backward used a
// different mask than the forward, the analytic gradient would be off by O(1).
TEST(Lora, DropoutGradientMatchesFiniteDifferences) {
  auto be = backend::make_cpu_reference_backend();
  const auto cfg = tiny(true, false);
  const LoraOptions o = lora_opts({"q_proj", "up_proj", "down_proj"}, false, 0.3);
  auto m = Model::random(cfg, 9, *be, Precision::F32, &o);
  randomize_b(*m, 8);
  const Batch batch = random_batch(2, 7, cfg.vocab_size, 2);
  m->set_dropout_seed(12345);
  m->zero_grad();
  m->forward_backward(batch, 1.0f);
  const std::vector<ParamRef> ps = m->parameters();
  int checked = 0;
  for (const ParamRef& p : ps) {
    std::vector<float> v(p.numel), g(p.numel);
    be->download(v.data(), p.value, p.numel * sizeof(float));
    be->download(g.data(), p.grad, p.numel * sizeof(float));
    for (int64_t i : {int64_t{0}, p.numel / 2, p.numel - 1}) {
      const float eps = 1e-2f, keep = v[i];
      auto loss_at = [&](float x) {
        v[i] = x;
        be->upload(p.value, v.data(), v.size() * sizeof(float));
        m->set_dropout_seed(12345);
        return m->forward_backward(batch, 0.0f).sum;  // scale 0: loss only, gradients untouched
      };
      const double fd = (loss_at(keep + eps) - loss_at(keep - eps)) / (2.0 * eps);
      v[i] = keep;
      be->upload(p.value, v.data(), v.size() * sizeof(float));
      // fp32 loss sums of ~14 tokens: differences carry ~1e-5 absolute noise / 2e-2 -> ~1e-3; curvature O(eps^2)
      EXPECT_NEAR(g[i], fd, 2e-3 + 2e-2 * std::abs(fd)) << p.name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

// With gradient checkpointing the adapters' forward (dropout masks included: same seed per layer and step) runs
// again in the backward; the adapter gradients must be bit-identical to the run that kept every activation.
TEST(Lora, GradientCheckpointingGivesIdenticalAdapterGradients) {
  auto be = backend::make_cpu_backend();
  const LoraOptions o = lora_opts({"all-linear"}, true, 0.1);
  io::ModelConfig c = tiny(false, true);
  c.num_hidden_layers = 3;
  auto plain = Model::random(c, 2, *be, Precision::F32, &o), ckpt = Model::random(c, 2, *be, Precision::F32, &o);
  randomize_b(*plain, 4);
  randomize_b(*ckpt, 4);
  ckpt->set_gradient_checkpointing(true);
  for (uint64_t step = 0; step < 2; ++step) {
    plain->set_dropout_seed(100 + step);
    ckpt->set_dropout_seed(100 + step);
    const Batch batch = random_batch(3, 9, 53, 40 + step);
    plain->zero_grad();
    ckpt->zero_grad();
    EXPECT_EQ(plain->forward_backward(batch, 0.1f).sum, ckpt->forward_backward(batch, 0.1f).sum);
    const auto ga = grads_of(*plain), gb = grads_of(*ckpt);
    EXPECT_EQ(ga, gb);
    EXPECT_GT(rel(ga, std::vector<float>(ga.size(), 0.0f)), 0.0);
  }
}

TEST(Lora, DropoutChangesTrainingLossOnlyWhenActive) {
  auto be = backend::make_cpu_backend();
  const auto cfg = tiny(true, true);
  const LoraOptions o = lora_opts({"all-linear"}, true, 0.5);
  auto m = Model::random(cfg, 2, *be, Precision::F32, &o);
  randomize_b(*m, 1);
  const Batch batch = random_batch(1, 8, cfg.vocab_size, 3);
  m->set_dropout_seed(1);
  const double t1 = m->forward_backward(batch, 0.0f).sum;
  m->set_dropout_seed(1);
  const double t1_again = m->forward_backward(batch, 0.0f).sum;
  m->set_dropout_seed(2);
  const double t2 = m->forward_backward(batch, 0.0f).sum;
  const double e1 = m->forward_loss(batch).sum, e2 = m->forward_loss(batch).sum;
  EXPECT_EQ(t1, t1_again);  // same seed, same mask
  EXPECT_NE(t1, t2);
  EXPECT_EQ(e1, e2);  // evaluation: no dropout
  EXPECT_NE(e1, t1);
}

TEST(Lora, TargetResolutionFollowsPeft) {
  const auto cfg = tiny(false, true);
  const std::vector<LinearInfo> lin = linear_layers(cfg);
  ASSERT_EQ(lin.size(), 2u * 7u + 1u);  // 7 per layer + lm_head
  EXPECT_EQ(lin.back().module, "lm_head");
  io::LoraAdapterConfig c;
  c.target_modules = {"all-linear"};
  c.target_is_string = true;
  EXPECT_EQ(resolve_lora_targets(c, lin, "--f").size(), 14u);  // lm_head excluded
  c.target_modules = {"model.layers.1.self_attn.q_proj"};
  c.target_is_string = false;
  EXPECT_EQ(resolve_lora_targets(c, lin, "--f").size(), 1u);
  c.target_modules = {".*\\.1\\.mlp\\..*"};
  c.target_is_string = true;
  EXPECT_EQ(resolve_lora_targets(c, lin, "--f").size(), 3u);
  c.target_modules = {"q_proj", "qproj"};
  c.target_is_string = false;
  try {
    resolve_lora_targets(c, lin, "--lora_target_modules");
    FAIL() << "unknown module accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--lora_target_modules: 'qproj' matches no linear layer"), std::string::npos)
        << e.what();
  }
  c.target_modules = {"lm_head"};
  EXPECT_THROW(resolve_lora_targets(c, lin, "--f"), Error);
}

TEST(Lora, RankMustBePositive) {
  auto be = backend::make_cpu_backend();
  LoraOptions o = lora_opts({"q_proj"}, false);
  o.config.r = 0;
  try {
    Model::random(tiny(true, true), 1, *be, Precision::F32, &o);
    FAIL() << "r = 0 accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--lora_r"), std::string::npos) << e.what();
  }
}

TEST(Lora, MergeDeltaEqualsAdapterForward) {
  // y = x W^T + s (x A^T) B^T  ==  x (W + s B A)^T
  std::mt19937 g(4);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int64_t out = 5, in = 7, r = 3, n = 4;
  const float s = 0.75f;
  std::vector<float> W(out * in), A(r * in), B(out * r), x(n * in);
  for (auto* v : {&W, &A, &B, &x})
    for (auto& e : *v) e = nd(g);
  std::vector<float> merged = W;
  merge_lora_delta(merged.data(), A.data(), B.data(), out, in, r, s);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double y = 0, lm = 0;
      for (int64_t k = 0; k < in; ++k) y += double(x[i * in + k]) * W[o * in + k];
      for (int64_t j = 0; j < r; ++j) {
        double u = 0;
        for (int64_t k = 0; k < in; ++k) u += double(x[i * in + k]) * A[j * in + k];
        lm += u * B[o * r + j];
      }
      double ym = 0;
      for (int64_t k = 0; k < in; ++k) ym += double(x[i * in + k]) * merged[o * in + k];
      EXPECT_NEAR(ym, y + s * lm, 1e-4 * (1 + std::abs(ym)));
    }
}

}  // namespace
}  // namespace sft::model
