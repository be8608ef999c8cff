// NEFTune in the model layer (model/neftune.h): the noise's distribution against U(-m, m), that it is added to the
// embedding output of training passes exactly (a model whose embedding rows were moved by the same noise gives the
// same loss and gradients bit for bit), and that evaluation, scoring, logits and generation never see it.
// (transformers' scale on the same batch shape and the whole training run against its hook: tests/train/test_neftune.py.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"
#include "model/neftune.h"
#include "model_test_util.h"
#include "util/error.h"

namespace sft::model {
namespace {

io::ModelConfig tiny_untied() {  // untied: moving embedding rows must not move the LM head
  io::ModelConfig c;
  c.model_type = "qwen2";
  c.hidden_size = 24, c.intermediate_size = 40, c.num_hidden_layers = 2, c.num_attention_heads = 4;
  c.num_key_value_heads = 2, c.head_dim = 6, c.vocab_size = 61, c.max_position_embeddings = 64;
  c.rope_theta = 1000.0, c.rms_norm_eps = 1e-6, c.tie_word_embeddings = false, c.attention_bias = true;
  return c;
}

// B rows of T tokens, no padding, every id distinct (so noise per position = noise per embedding row), labels = ids.
Batch distinct_ids_batch(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  std::vector<int32_t> ids(static_cast<size_t>(V));
  for (int32_t i = 0; i < V; ++i) ids[static_cast<size_t>(i)] = i;
  std::shuffle(ids.begin(), ids.end(), std::mt19937(static_cast<unsigned>(seed)));
  std::vector<std::vector<int32_t>> rows;
  for (int64_t r = 0; r < B; ++r) rows.emplace_back(ids.begin() + r * T, ids.begin() + (r + 1) * T);
  return Batch::from_sequences(rows, rows, 0);
}

TEST(Neftune, NoiseIsUniformOnPlusMinusM) {
  const int64_t n = int64_t{1} << 20;
  const float m = neftune_magnitude(5.0, 37, 96);
  std::vector<float> x(static_cast<size_t>(n));
  neftune_noise(x.data(), n, m, 0x1234);
  double sum = 0, sq = 0;
  float lo = m, hi = -m;
  std::vector<int64_t> bins(64, 0);
  for (float v : x) {
    ASSERT_GE(v, -m);
    ASSERT_LT(v, m);
    sum += v, sq += double(v) * v;
    lo = std::min(lo, v), hi = std::max(hi, v);
    ++bins[static_cast<size_t>(std::min<int64_t>(63, static_cast<int64_t>((v + m) / (2 * m) * 64)))];
  }
  const double mean = sum / n, var = sq / n - mean * mean;
  // U(-m, m): mean 0 (sd of the sample mean m / sqrt(3n)), variance m^2/3 (sd of the sample variance
  // sqrt((m^4/5 - m^4/9) / n) = m^2 sqrt(4 / (45 n))): 5 standard deviations each.
  EXPECT_LT(std::fabs(mean), 5 * m / std::sqrt(3.0 * n));
  EXPECT_LT(std::fabs(var - m * m / 3.0), 5 * m * m * std::sqrt(4.0 / (45.0 * n)));
  EXPECT_LT(lo, -m * (1 - 1e-4));  // the whole interval is reached (1e6 draws: the extremes are ~2e-6 m away)
  EXPECT_GT(hi, m * (1 - 1e-4));
  // 64 equal bins: chi-square with 63 degrees of freedom; its 1 - 1e-7 quantile is 139.6 (scipy.stats.chi2.ppf).
  double chi2 = 0;
  const double expect = static_cast<double>(n) / 64;
  for (int64_t b : bins) chi2 += (b - expect) * (b - expect) / expect;
  EXPECT_LT(chi2, 139.6);
  // Another seed: an unrelated stream (correlation ~ N(0, 1/n)).
  std::vector<float> y(static_cast<size_t>(n));
  neftune_noise(y.data(), n, m, 0x1235);
  double xy = 0;
  for (int64_t i = 0; i < n; ++i) xy += double(x[i]) * y[i];
  EXPECT_LT(std::fabs(xy / n / (m * m / 3.0)), 5.0 / std::sqrt(double(n)));
}

TEST(Neftune, MagnitudeIsAlphaOverSqrtOfLengthTimesHidden) {
  // float32 as transformers computes it; within an ulp or two of the exact value, and 0 noise for alpha 0.
  for (double alpha : {0.1, 1.0, 5.0, 15.0})
    for (int64_t L : {1, 7, 512, 4099})
      for (int64_t H : {24, 576, 896}) {
        const double exact = alpha / std::sqrt(double(L) * double(H));
        EXPECT_NEAR(neftune_magnitude(alpha, L, H), exact, 3e-7 * exact) << alpha << " " << L << " " << H;
      }
  EXPECT_EQ(neftune_magnitude(0.0, 10, 10), 0.0f);
  EXPECT_THROW(neftune_magnitude(1.0, 0, 10), Error);
}

// The noise lands on the embedding output: the same as moving each position's embedding row by its noise (distinct ids,
// untied head), so loss and every gradient agree bit for bit — in fp32 and bf16 compute.
TEST(Neftune, AddsTheNoiseToTheEmbeddingOutputOfTrainingPasses) {
  auto be = backend::make_cpu_backend();
  for (Precision p : {Precision::F32, Precision::BF16}) {
    SCOPED_TRACE(p == Precision::BF16 ? "bf16" : "f32");
    const io::ModelConfig c = tiny_untied();
    auto noisy = Model::random(c, 9, *be, p), moved = Model::random(c, 9, *be, p), plain = Model::random(c, 9, *be, p);
    const Batch batch = distinct_ids_batch(3, 13, c.vocab_size, 4);
    const EmbeddingNoise noise{5.0, 777, 13};
    noisy->set_embedding_noise(noise);

    const int64_t H = c.hidden_size, n = batch.B * batch.T;
    std::vector<float> delta(static_cast<size_t>(n * H));
    neftune_noise(delta.data(), n * H, neftune_magnitude(noise.alpha, noise.seq_len, H), noise.seed);
    for (const ParamRef& pr : moved->parameters()) {
      if (pr.name != "model.embed_tokens.weight") continue;
      std::vector<float> w(static_cast<size_t>(pr.numel));
      be->download(w.data(), pr.value, w.size() * sizeof(float));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t h = 0; h < H; ++h) w[batch.input_ids[i] * H + h] += delta[i * H + h];
      be->upload(pr.value, w.data(), w.size() * sizeof(float));
    }
    moved->on_weights_updated();

    noisy->zero_grad(), moved->zero_grad(), plain->zero_grad();
    const LossSum a = noisy->forward_backward(batch, 0.01f), b = moved->forward_backward(batch, 0.01f);
    const LossSum clean = plain->forward_backward(batch, 0.01f);
    EXPECT_EQ(a.sum, b.sum);
    EXPECT_EQ(test::grads_of(*noisy), test::grads_of(*moved));
    EXPECT_GT(std::fabs(a.sum - clean.sum), 1e-3 * std::fabs(clean.sum));  // the noise matters at this scale
    // Same seed, same noise; another seed, other noise; alpha 0 = none.
    noisy->zero_grad();
    EXPECT_EQ(noisy->forward_backward(batch, 0.01f).sum, a.sum);
    noisy->set_embedding_noise({5.0, 778, 13});
    EXPECT_NE(noisy->forward_backward(batch, 0.01f).sum, a.sum);
    noisy->set_embedding_noise({});
    noisy->zero_grad();
    EXPECT_EQ(noisy->forward_backward(batch, 0.01f).sum, clean.sum);
  }
}

// Gemma 2 scales the embeddings by sqrt(hidden) inside its embedding module (transformers'
// Gemma2TextScaledWordEmbedding), so transformers' hook on that module adds the noise AFTER the scale: moving the
// embedding rows by noise / sqrt(hidden) gives the same loss (up to the rounding of that division and the product),
// while noise before the scale (rows moved by the full noise) would be sqrt(hidden) = ~4.9x larger.
TEST(Neftune, GemmaNoiseFollowsTheEmbeddingScale) {
  auto be = backend::make_cpu_backend();
  io::ModelConfig c = tiny_untied();
  c.model_type = "gemma2";
  c.hidden_act = "gelu_pytorch_tanh";
  c.norm_unit_offset = c.sandwich_norms = c.scale_embeddings = true;
  c.query_pre_attn_scalar = 6;
  c.attn_logit_softcapping = 20.0, c.final_logit_softcapping = 30.0;
  const Batch batch = distinct_ids_batch(3, 13, c.vocab_size, 5);
  const EmbeddingNoise noise{5.0, 4242, 13};
  const int64_t H = c.hidden_size, n = batch.B * batch.T;
  std::vector<float> delta(static_cast<size_t>(n * H));
  neftune_noise(delta.data(), n * H, neftune_magnitude(noise.alpha, noise.seq_len, H), noise.seed);
  const float scale = std::sqrt(static_cast<float>(H));
  auto moved_loss = [&](float divisor) {  // the loss of a model whose embedding rows moved by delta / divisor
    auto m = Model::random(c, 9, *be, Precision::F32);
    for (const ParamRef& pr : m->parameters()) {
      if (pr.name != "model.embed_tokens.weight") continue;
      std::vector<float> w(static_cast<size_t>(pr.numel));
      be->download(w.data(), pr.value, w.size() * sizeof(float));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t h = 0; h < H; ++h) w[batch.input_ids[i] * H + h] += delta[i * H + h] / divisor;
      be->upload(pr.value, w.data(), w.size() * sizeof(float));
    }
    m->on_weights_updated();
    return m->forward_backward(batch, 0.01f).sum;
  };
  auto noisy = Model::random(c, 9, *be, Precision::F32), plain = Model::random(c, 9, *be, Precision::F32);
  noisy->set_embedding_noise(noise);
  const double got = noisy->forward_backward(batch, 0.01f).sum, clean = plain->forward_backward(batch, 0.01f).sum;
  const double after_scale = moved_loss(scale), before_scale = moved_loss(1.0f);
  // fp32 rounding of (w + d/s)*s vs w*s + d: a few ulps per element, well below 1e-5 of the loss.
  EXPECT_NEAR(got, after_scale, 1e-5 * std::fabs(clean));
  EXPECT_GT(std::fabs(got - before_scale), 100 * std::fabs(got - after_scale) + 1e-4 * std::fabs(clean));
  EXPECT_GT(std::fabs(got - clean), 1e-4 * std::fabs(clean));
}

// Evaluation loss, scoring, logits and KV-cached generation are inference passes: the noise set for training changes
// none of their numbers.
TEST(Neftune, NeverInEvaluationScoringOrGeneration) {
  auto be = backend::make_cpu_backend();
  const io::ModelConfig c = tiny_untied();
  auto m = Model::random(c, 3, *be, Precision::F32);
  const Batch batch = distinct_ids_batch(2, 11, c.vocab_size, 8);
  const std::vector<int32_t> prompt(batch.input_ids.begin(), batch.input_ids.begin() + 9);
  auto inference = [&] {
    std::vector<float> lp;
    std::vector<uint8_t> greedy;
    m->next_token_logprobs(batch, lp, greedy);
    auto s = m->new_session(16);
    std::vector<float> gen = s->append(prompt);
    const std::vector<float> next = s->append({prompt[0]});
    gen.insert(gen.end(), next.begin(), next.end());
    return std::make_tuple(m->forward_loss(batch).sum, m->logits(batch), lp, gen);
  };
  const auto before = inference();
  m->set_embedding_noise({15.0, 99, 11});
  m->zero_grad();
  const double trained = m->forward_backward(batch, 0.0f).sum;  // a training pass in between sees the noise
  EXPECT_NE(trained, std::get<0>(before));
  const auto after = inference();
  EXPECT_EQ(std::get<0>(after), std::get<0>(before));
  EXPECT_EQ(std::get<1>(after), std::get<1>(before));
  EXPECT_EQ(std::get<2>(after), std::get<2>(before));
  EXPECT_EQ(std::get<3>(after), std::get<3>(before));
}

TEST(Neftune, RejectsAScaleWithoutALength) {
  auto be = backend::make_cpu_backend();
  auto m = Model::random(tiny_untied(), 3, *be, Precision::F32);
  EXPECT_THROW(m->set_embedding_noise({1.0, 1, 0}), Error);
  EXPECT_THROW(m->set_embedding_noise({-1.0, 1, 5}), Error);
  EXPECT_NO_THROW(m->set_embedding_noise({0.0, 1, 0}));
}

}  // namespace
}  // namespace sft::model
