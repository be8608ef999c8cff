// KVSession::start_branches / step_branches (batched generation, eval's generate_until): the fast implementation of
// the CPU backends against the sequential reference (the base class: append the whole branch + truncate) and a fresh
// full forward, on random weights and random tokens; prompts of different lengths, branches idle on some steps, with
// and without a cached prefix, on the fast and the reference CPU backend (shared prefix keys or copied per row).
#include <gtest/gtest.h>

#include <random>

#include "backend/backend.h"
#include "model/model.h"
#include "model_test_util.h"
#include "util/error.h"

namespace sft::model {
namespace {

using test::rel;

io::ModelConfig tiny_llama() {
  io::ModelConfig c;
  c.model_type = "llama";
  c.hidden_size = 24, c.intermediate_size = 40, c.num_hidden_layers = 2, c.num_attention_heads = 4;
  c.num_key_value_heads = 2, c.head_dim = 6, c.vocab_size = 53, c.max_position_embeddings = 64;
  c.rope_theta = 1000.0, c.rms_norm_eps = 1e-6, c.tie_word_embeddings = true;
  return c;
}

// Logits after the last token of `seq` from a full forward (no cache).
std::vector<float> last_logits(Model& m, const std::vector<int32_t>& seq) {
  const auto all = m.logits(Batch::from_sequences({seq}, {}, 0));
  return std::vector<float>(all.end() - 53, all.end());
}

void check_backend(std::unique_ptr<backend::Backend> be) {
  auto m = Model::random(tiny_llama(), 4, *be, Precision::F32);
  std::mt19937 g(21);
  auto rnd = [&](size_t n) {
    std::vector<int32_t> v(n);
    for (auto& x : v) x = static_cast<int32_t>(1 + g() % 52);
    return v;
  };
  for (size_t cached_len : {size_t{0}, size_t{5}}) {
    const std::vector<int32_t> cached = rnd(cached_len);
    const std::vector<std::vector<int32_t>> prompts = {rnd(7), rnd(1), rnd(4)};
    auto fast = m->new_session(40), ref = m->new_session(40);
    if (!cached.empty()) fast->append(cached), ref->append(cached);
    const int64_t capacity = 7 + 6;
    auto got = fast->start_branches(prompts, capacity);
    auto want = ref->KVSession::start_branches(prompts, capacity);
    ASSERT_EQ(got.size(), prompts.size());
    std::vector<std::vector<int32_t>> seqs;
    for (size_t b = 0; b < prompts.size(); ++b) {
      std::vector<int32_t> s = cached;
      s.insert(s.end(), prompts[b].begin(), prompts[b].end());
      seqs.push_back(s);
      EXPECT_LT(rel(got[b], want[b]), 1e-5) << "prompt " << b;
      EXPECT_LT(rel(got[b], last_logits(*m, s)), 1e-5) << "prompt " << b;
    }
    EXPECT_EQ(fast->length(), static_cast<int64_t>(cached_len));  // the cache itself is unchanged
    // Six steps; branch 1 idles on steps 2 and 4, branch 2 stops after step 3.
    for (int step = 0; step < 6; ++step) {
      std::vector<int32_t> toks(prompts.size());
      for (size_t b = 0; b < prompts.size(); ++b) toks[b] = static_cast<int32_t>(1 + g() % 52);
      if (step == 2 || step == 4) toks[1] = -1;
      if (step > 3) toks[2] = -1;
      got = fast->step_branches(toks);
      want = ref->KVSession::step_branches(toks);
      for (size_t b = 0; b < prompts.size(); ++b) {
        if (toks[b] < 0) {
          EXPECT_TRUE(got[b].empty());
          continue;
        }
        seqs[b].push_back(toks[b]);
        EXPECT_LT(rel(got[b], want[b]), 1e-5) << "step " << step << " branch " << b;
        EXPECT_LT(rel(got[b], last_logits(*m, seqs[b])), 1e-5) << "step " << step << " branch " << b;
      }
    }
    // A new start replaces the branches.
    got = fast->start_branches({rnd(2)}, 4);
    EXPECT_EQ(got.size(), 1u);
  }
  auto s = m->new_session(10);
  EXPECT_THROW(s->start_branches({{1, 2}, {}}, 4), Error);      // an empty prompt
  EXPECT_THROW(s->start_branches({{1, 2, 3}}, 2), Error);       // prompt beyond capacity
  EXPECT_THROW(s->start_branches({{1, 2}}, 20), Error);         // capacity beyond max_len
  s->start_branches({{1, 2}}, 3);
  s->step_branches({4});
  EXPECT_THROW(s->step_branches({5}), Error);                   // branch full
  EXPECT_THROW(s->step_branches({5, 6}), Error);                // one token per branch
}

TEST(KvBranches, FastCpuMatchesReferenceAndFullForward) { check_backend(backend::make_cpu_backend()); }
TEST(KvBranches, ReferenceCpuBackendMatches) { check_backend(backend::make_cpu_reference_backend()); }

}  // namespace
}  // namespace sft::model
