// Model-level properties that do not need transformers: the fast CPU backend against the scalar reference backend
// on a whole forward+backward, gradient accumulation and loss scaling, packing equivalence, Batch helpers, the KV
// session against the batch forward. (Numerical parity with transformers: test_model_parity.py.)
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/backend.h"
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

// Every Gemma 2 block choice: GeGLU, (1 + w) and sandwich norms, scaled embeddings, query_pre_attn_scalar, attention
// and final soft-caps, and a 3-token sliding window on layers 0 and 2 (shorter than the test sequences).
io::ModelConfig tiny_gemma2() {
  io::ModelConfig c = tiny(true, false);
  c.model_type = "gemma2";
  c.num_hidden_layers = 3;
  c.hidden_act = "gelu_pytorch_tanh";
  c.norm_unit_offset = c.sandwich_norms = c.scale_embeddings = true;
  c.query_pre_attn_scalar = 8;
  c.attn_logit_softcapping = 2.0, c.final_logit_softcapping = 3.0;
  c.sliding_window = 3;
  c.layer_types = {"sliding_attention", "full_attention", "sliding_attention"};
  return c;
}

Batch random_batch(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  std::mt19937 g(seed);
  std::vector<std::vector<int32_t>> seqs;
  for (int64_t r = 0; r < B; ++r) {
    std::vector<int32_t> s(T - r);  // different lengths: padding
    for (auto& x : s) x = static_cast<int32_t>(g() % V);
    seqs.push_back(s);
  }
  return Batch::from_sequences(seqs, {}, 0);
}

using test::grads_of;
using test::rel;

TEST(Batch, FromSequencesAndTargetCount) {
  Batch b = Batch::from_sequences({{5, 6, 7}, {8}}, {{-100, 6, 7}, {8}}, 0);
  EXPECT_EQ(b.B, 2);
  EXPECT_EQ(b.T, 3);
  EXPECT_EQ(b.input_ids, (std::vector<int32_t>{5, 6, 7, 8, 0, 0}));
  EXPECT_EQ(b.doc_ids, (std::vector<int32_t>{0, 0, 0, 1, -1, -1}));
  EXPECT_EQ(b.labels, (std::vector<int32_t>{-100, 6, 7, 8, -100, -100}));
  EXPECT_EQ(b.count_targets(), 2);  // labels at position 0 are never targets (shift)
}

TEST(Model, FastBackendMatchesReferenceBackend) {
  auto fast = backend::make_cpu_backend(), ref = backend::make_cpu_reference_backend();
  for (int variant : {0, 1, 2}) {
    const io::ModelConfig c = variant == 2 ? tiny_gemma2() : tiny(variant == 0, variant != 0);
    auto a = Model::random(c, 7, *fast, Precision::F32);
    auto b = Model::random(c, 7, *ref, Precision::F32);
    const Batch batch = random_batch(3, 11, 53, 1);
    const LossSum la = a->forward_backward(batch, 0.1f), lb = b->forward_backward(batch, 0.1f);
    EXPECT_EQ(la.n_targets, lb.n_targets);
    EXPECT_NEAR(la.sum, lb.sum, 1e-5 * std::fabs(lb.sum));
    EXPECT_LT(rel(grads_of(*a), grads_of(*b)), 1e-5);
    EXPECT_LT(rel(a->logits(batch), b->logits(batch)), 1e-6);
  }
}

TEST(Model, GradientsAccumulateAndScale) {
  auto be = backend::make_cpu_backend();
  auto m = Model::random(tiny(true, true), 3, *be, Precision::F32);
  const Batch batch = random_batch(2, 9, 53, 2);
  m->zero_grad();
  m->forward_backward(batch, 1.0f);
  const auto once = grads_of(*m);
  m->forward_backward(batch, 2.0f);  // accumulates 2x more on top
  const auto thrice = grads_of(*m);
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(thrice[i], 3 * once[i], 1e-5 * (1 + std::fabs(once[i])));
  EXPECT_GT(rel(once, std::vector<float>(once.size(), 0.0f)), 0.0);  // not all zero
}

// Gradient checkpointing re-runs each layer's forward with the same kernels on the same inputs, so loss and every
// gradient must be bit-identical to the run that saved all activations (EXPECT_EQ, no tolerance), in both compute
// precisions, with and without biases and q/k norms, and with Gemma 2's blocks (whose MLP out norm makes the recompute
// run through the down projection), over two steps (the second reuses the checkpointed workspace).
TEST(Model, GradientCheckpointingGivesIdenticalGradients) {
  auto be = backend::make_cpu_backend();
  for (int variant = 0; variant < 4; ++variant)
    for (Precision p : {Precision::F32, Precision::BF16}) {
      SCOPED_TRACE(std::to_string(variant) + (p == Precision::BF16 ? " bf16" : " f32"));
      io::ModelConfig c = variant == 3 ? tiny_gemma2() : tiny(variant == 0, variant == 1);
      c.num_hidden_layers = 3;
      if (variant == 2) c.model_type = "qwen3", c.qk_norm = true;
      auto plain = Model::random(c, 5, *be, p), ckpt = Model::random(c, 5, *be, p);
      ckpt->set_gradient_checkpointing(true);
      for (uint64_t step = 0; step < 2; ++step) {
        const Batch batch = random_batch(3, 10, 53, 20 + step);
        plain->zero_grad();
        ckpt->zero_grad();
        const LossSum a = plain->forward_backward(batch, 0.05f), b = ckpt->forward_backward(batch, 0.05f);
        EXPECT_EQ(a.sum, b.sum);
        const auto ga = grads_of(*plain), gb = grads_of(*ckpt);
        ASSERT_EQ(ga.size(), gb.size());
        size_t differ = 0;
        for (size_t i = 0; i < ga.size(); ++i) differ += ga[i] != gb[i];
        EXPECT_EQ(differ, 0u) << "of " << ga.size() << " gradient elements";
        EXPECT_GT(rel(ga, std::vector<float>(ga.size(), 0.0f)), 0.0);  // not all zero
      }
      // Switching it off again gives the plain workspace (and the same numbers).
      ckpt->set_gradient_checkpointing(false);
      const Batch batch = random_batch(2, 7, 53, 30);
      plain->zero_grad();
      ckpt->zero_grad();
      EXPECT_EQ(plain->forward_backward(batch, 0.1f).sum, ckpt->forward_backward(batch, 0.1f).sum);
      EXPECT_EQ(grads_of(*plain), grads_of(*ckpt));
    }
}

void packed_row_equals_separate_rows(std::unique_ptr<Model> m) {
  SCOPED_TRACE(m->config().model_type);
  std::vector<int32_t> d0 = {3, 9, 4, 1}, d1 = {7, 7, 2, 5, 11};
  Batch sep = Batch::from_sequences({d0, d1}, {}, 0);
  Batch packed;
  packed.B = 1, packed.T = 10;
  for (int k = 0; k < 2; ++k) {
    const auto& d = k == 0 ? d0 : d1;
    for (size_t i = 0; i < d.size(); ++i) {
      packed.input_ids.push_back(d[i]);
      packed.position_ids.push_back(static_cast<int32_t>(i));
      packed.doc_ids.push_back(k);
      packed.labels.push_back(i == 0 ? -100 : d[i]);  // no target across the document boundary
    }
  }
  packed.input_ids.push_back(0), packed.position_ids.push_back(0), packed.doc_ids.push_back(-1);
  packed.labels.push_back(-100);
  m->zero_grad();
  const LossSum a = m->forward_backward(sep, 1.0f);
  const auto ga = grads_of(*m);
  m->zero_grad();
  const LossSum b = m->forward_backward(packed, 1.0f);
  EXPECT_EQ(a.n_targets, b.n_targets);
  EXPECT_NEAR(a.sum, b.sum, 1e-5 * a.sum);
  EXPECT_LT(rel(grads_of(*m), ga), 1e-5);
  EXPECT_NEAR(m->forward_loss(packed).sum, b.sum, 1e-6 * b.sum);
}

TEST(Model, PackedRowEqualsSeparateRows) {
  auto be = backend::make_cpu_backend();
  for (const io::ModelConfig& c : {tiny(false, false), tiny_gemma2()})  // Gemma: the window inside each document
    packed_row_equals_separate_rows(Model::random(c, 4, *be, Precision::F32));
}

TEST(Model, KvSessionMatchesBatchForward) {
  auto be = backend::make_cpu_backend();
  for (const io::ModelConfig& c : {tiny(true, true), tiny_gemma2()}) {  // Gemma: cached decode through the window
    SCOPED_TRACE(c.model_type);
    auto m = Model::random(c, 5, *be, Precision::F32);
    std::vector<int32_t> seq = {1, 5, 9, 13, 17, 21, 25, 29};
    const auto full = m->logits(Batch::from_sequences({seq}, {}, 0));
    auto s = m->new_session(16);
    s->append({seq.begin(), seq.begin() + 5});
    std::vector<float> last;
    for (size_t i = 5; i < seq.size(); ++i) last = s->append({seq[i]});  // one token at a time
    EXPECT_EQ(s->length(), 8);
    const std::vector<float> want(full.end() - 53, full.end());
    EXPECT_LT(rel(last, want), 1e-5);
    EXPECT_THROW(s->append(std::vector<int32_t>(9, 1)), Error);
  }
}

void branches_match_sequential_and_full_forward(std::unique_ptr<Model> m);
void groups_match_sequential_and_full_forward(std::unique_ptr<Model> m);

TEST(Model, KvSessionBranchesMatchSequentialAndFullForward) {
  auto be = backend::make_cpu_backend();
  for (const io::ModelConfig& c : {tiny(false, true), tiny_gemma2()})
    branches_match_sequential_and_full_forward(Model::random(c, 8, *be, Precision::F32));
}

void branches_match_sequential_and_full_forward(std::unique_ptr<Model> m) {
  SCOPED_TRACE(m->config().model_type);
  std::mt19937 g(11);
  auto rnd = [&](size_t n) {
    std::vector<int32_t> v(n);
    for (auto& x : v) x = static_cast<int32_t>(g() % 53);
    return v;
  };
  for (size_t prefix_len : {size_t{0}, size_t{7}}) {
    const std::vector<int32_t> prefix = rnd(prefix_len);
    const std::vector<std::vector<int32_t>> branches = {rnd(3), rnd(1), rnd(5), rnd(2)};
    const std::vector<std::vector<int64_t>> rows = {{0, 1, 2}, {0}, {4, 1}, {}};
    auto fast = m->new_session(20), ref = m->new_session(20);
    if (!prefix.empty()) {
      fast->append(prefix);
      ref->append(prefix);
    }
    const auto got = fast->append_branches(branches, rows);
    const auto want = ref->KVSession::append_branches(branches, rows);  // the sequential reference
    ASSERT_EQ(got.size(), branches.size());
    EXPECT_EQ(fast->length(), static_cast<int64_t>(prefix_len));  // the cache is unchanged
    for (size_t b = 0; b < branches.size(); ++b) {
      ASSERT_EQ(got[b].size(), rows[b].size() * 53);
      if (!rows[b].empty()) {
        EXPECT_LT(rel(got[b], want[b]), 1e-5) << "prefix " << prefix_len << " branch " << b;
      }
      // and against a fresh full forward of prefix + branch
      std::vector<int32_t> seq = prefix;
      seq.insert(seq.end(), branches[b].begin(), branches[b].end());
      const auto full = m->logits(Batch::from_sequences({seq}, {}, 0));
      for (size_t i = 0; i < rows[b].size(); ++i) {
        const size_t at = (prefix_len + static_cast<size_t>(rows[b][i])) * 53;
        const std::vector<float> w(full.begin() + at, full.begin() + at + 53),
            gv(got[b].begin() + i * 53, got[b].begin() + (i + 1) * 53);
        EXPECT_LT(rel(gv, w), 1e-5);
      }
    }
    // The session still continues correctly after branch scoring.
    if (!prefix.empty()) {
      EXPECT_LT(rel(fast->append({3}), ref->append({3})), 1e-5);
    }
  }
  auto s = m->new_session(8);
  EXPECT_THROW(s->append_branches({std::vector<int32_t>(9, 1)}, {{0}}), Error);  // beyond max_len
  EXPECT_THROW(s->append_branches({{1, 2}}, {{2}}), Error);                      // row outside the branch
}

TEST(Model, KvSessionGroupsMatchSequentialAndFullForward) {
  // Several documents in one forward: groups with different prefix lengths (0 included), branch counts and lengths,
  // after an empty and a non-empty cache; every scored row against the sequential reference and a full forward.
  // (Gemma 2's sliding window takes the sequential path: kv_session.cpp.)
  auto be = backend::make_cpu_backend();
  for (const io::ModelConfig& c : {tiny(true, true), tiny_gemma2()})
    groups_match_sequential_and_full_forward(Model::random(c, 9, *be, Precision::F32));
}

void groups_match_sequential_and_full_forward(std::unique_ptr<Model> m) {
  SCOPED_TRACE(m->config().model_type);
  std::mt19937 g(12);
  auto rnd = [&](size_t n) {
    std::vector<int32_t> v(n);
    for (auto& x : v) x = static_cast<int32_t>(g() % 53);
    return v;
  };
  using Group = Model::KVSession::Group;
  for (size_t cached_len : {size_t{0}, size_t{4}}) {
    const std::vector<int32_t> cached = rnd(cached_len);
    std::vector<Group> groups(4);
    groups[0] = {rnd(6), {rnd(3), rnd(1), rnd(4)}, {{0, 1, 2}, {0}, {3, 0}}};
    groups[1] = {rnd(0), {rnd(2), rnd(5)}, {{1}, {0, 4}}};
    groups[2] = {rnd(9), {rnd(1)}, {{0}}};
    groups[3] = {rnd(2), {rnd(2), rnd(2), rnd(1), rnd(3)}, {{0, 1}, {}, {0}, {2}}};
    auto fast = m->new_session(24), ref = m->new_session(24);
    if (!cached.empty()) {
      fast->append(cached);
      ref->append(cached);
    }
    const auto got = fast->append_groups(groups);
    const auto want = ref->KVSession::append_groups(groups);  // the sequential reference
    ASSERT_EQ(got.size(), groups.size());
    EXPECT_EQ(fast->length(), static_cast<int64_t>(cached_len));  // the cache is unchanged
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      ASSERT_EQ(got[gi].size(), groups[gi].branches.size());
      for (size_t b = 0; b < groups[gi].branches.size(); ++b) {
        const auto& rows = groups[gi].out_rows[b];
        ASSERT_EQ(got[gi][b].size(), rows.size() * 53);
        if (rows.empty()) continue;
        EXPECT_LT(rel(got[gi][b], want[gi][b]), 1e-5) << "cache " << cached_len << " group " << gi << " branch " << b;
        std::vector<int32_t> seq = cached;
        seq.insert(seq.end(), groups[gi].prefix.begin(), groups[gi].prefix.end());
        const size_t start = seq.size();
        seq.insert(seq.end(), groups[gi].branches[b].begin(), groups[gi].branches[b].end());
        const auto full = m->logits(Batch::from_sequences({seq}, {}, 0));
        for (size_t i = 0; i < rows.size(); ++i) {
          const size_t at = (start + static_cast<size_t>(rows[i])) * 53;
          const std::vector<float> w(full.begin() + at, full.begin() + at + 53),
              gv(got[gi][b].begin() + i * 53, got[gi][b].begin() + (i + 1) * 53);
          EXPECT_LT(rel(gv, w), 1e-5) << "cache " << cached_len << " group " << gi << " branch " << b;
        }
      }
    }
    if (!cached.empty()) {
      EXPECT_LT(rel(fast->append({3}), ref->append({3})), 1e-5);
    }
  }
  {  // no context at all (every prefix empty, nothing cached): branches alone
    auto fast = m->new_session(8), ref = m->new_session(8);
    const std::vector<Group> only = {{{}, {rnd(3), rnd(2)}, {{0, 2}, {1}}}, {{}, {rnd(4)}, {{3}}}};
    const auto got = fast->append_groups(only);
    const auto want = ref->KVSession::append_groups(only);
    for (size_t gi = 0; gi < only.size(); ++gi)
      for (size_t b = 0; b < only[gi].branches.size(); ++b) EXPECT_LT(rel(got[gi][b], want[gi][b]), 1e-5);
  }
  auto s = m->new_session(8);
  EXPECT_THROW(s->append_groups({Group{std::vector<int32_t>(5, 1), {{1, 2, 3, 4}}, {{0}}}}), Error);  // > max_len
  EXPECT_THROW(s->append_groups({Group{{1}, {{1, 2}}, {{2}}}}), Error);  // row outside the branch
  EXPECT_THROW(s->append_groups({Group{{1}, {}, {}}}), Error);           // a group without branches
}

TEST(Model, Bf16ModeCloseToFp32) {
  auto be = backend::make_cpu_backend();
  auto a = Model::random(tiny(true, true), 6, *be, Precision::F32);
  auto b = Model::random(tiny(true, true), 6, *be, Precision::BF16);
  const Batch batch = random_batch(2, 12, 53, 3);
  const LossSum la = a->forward_backward(batch, 1.0f), lb = b->forward_backward(batch, 1.0f);
  EXPECT_NEAR(lb.sum / la.sum, 1.0, 1e-2);  // bf16 operands: ~2^-9 relative per rounding
  EXPECT_LT(rel(grads_of(*b), grads_of(*a)), 5e-2);
  EXPECT_GT(rel(grads_of(*b), grads_of(*a)), 0.0);  // it really computed in lower precision
}

TEST(Model, RejectsBadBatches) {
  auto be = backend::make_cpu_backend();
  auto m = Model::random(tiny(true, true), 1, *be, Precision::F32);
  Batch b = Batch::from_sequences({{1, 2, 999}}, {}, 0);
  EXPECT_THROW(m->forward_loss(b), Error);
}

}  // namespace
}  // namespace sft::model
