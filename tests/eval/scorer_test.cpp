// Scorer (KV-session scoring with prefix reuse and left truncation) against a brute-force scorer on a fake model
// whose logits depend on the WHOLE prefix, so any stale or misaligned cache entry changes the result.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "eval/scorer.h"
#include "util/error.h"

namespace {

using sft::model::Model;

constexpr int64_t kVocab = 37;

// Logits after prefix p: a hash of (p, v) mapped to [-4, 4].
std::vector<float> fake_logits(const std::vector<int32_t>& prefix) {
  uint64_t h = 1469598103934665603ULL;
  for (int32_t t : prefix) h = (h ^ static_cast<uint64_t>(t + 1)) * 1099511628211ULL;
  std::vector<float> out(kVocab);
  for (int64_t v = 0; v < kVocab; ++v) {
    uint64_t x = (h ^ static_cast<uint64_t>(v * 0x9E3779B97F4A7C15ULL)) * 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 31;
    out[v] = static_cast<float>(static_cast<double>(x % 100000) / 100000.0 * 8.0 - 4.0);
  }
  return out;
}

struct FakeSession : Model::KVSession {
  int64_t max_len;
  std::vector<int32_t> tokens;
  int64_t* appended;
  FakeSession(int64_t m, int64_t* a) : max_len(m), appended(a) {}
  int64_t length() const override { return static_cast<int64_t>(tokens.size()); }
  std::vector<float> append(const std::vector<int32_t>& t, bool all) override {
    EXPECT_LE(static_cast<int64_t>(tokens.size() + t.size()), max_len) << "session overflow";
    std::vector<float> out;
    for (int32_t x : t) {
      tokens.push_back(x);
      auto l = fake_logits(tokens);
      if (all) out.insert(out.end(), l.begin(), l.end());
      else out = l;
    }
    *appended += static_cast<int64_t>(t.size());
    return out;
  }
  void truncate(int64_t n) override {
    ASSERT_LE(n, length());
    tokens.resize(static_cast<size_t>(n));
  }
};

class FakeModel : public Model {
 public:
  FakeModel() { cfg_.vocab_size = kVocab; cfg_.max_position_embeddings = 64; }
  int64_t appended = 0;
  const sft::io::ModelConfig& config() const override { return cfg_; }
  sft::model::Precision precision() const override { return sft::model::Precision::F32; }
  sft::backend::Backend& backend() override { throw std::logic_error("unused"); }
  sft::model::LossSum forward_backward(const sft::model::Batch&, float) override { throw std::logic_error("unused"); }
  sft::model::LossSum forward_loss(const sft::model::Batch&) override { throw std::logic_error("unused"); }
  void zero_grad() override {}
  std::vector<sft::model::ParamRef> parameters() override { return {}; }
  void on_weights_updated() override {}
  void set_gradient_checkpointing(bool) override {}
  void next_token_logprobs(const sft::model::Batch&, std::vector<float>&, std::vector<uint8_t>&) override {
    throw std::logic_error("unused");
  }
  std::vector<float> logits(const sft::model::Batch&) override { throw std::logic_error("unused"); }
  std::unique_ptr<KVSession> new_session(int64_t max_len) override {
    return std::make_unique<FakeSession>(max_len, &appended);
  }
  void save(const std::filesystem::path&, const std::string&) override {}
  const sft::io::LoraAdapterConfig* lora_config() const override { return nullptr; }
  void save_adapter(const std::filesystem::path&, const std::string&) override { throw std::logic_error("unused"); }
  void set_dropout_seed(uint64_t) override {}
  int64_t num_all_parameters() const override { return 0; }

 private:
  sft::io::ModelConfig cfg_;
};

// Brute force, written from lm-eval's HFLM._loglikelihood_tokens: inp = (ctx + cont)[-(L+1):][:-1], the last
// len(cont) positions' log_softmax scored against cont.
std::pair<double, bool> brute(const std::vector<int32_t>& ctx, const std::vector<int32_t>& cont, int64_t L) {
  std::vector<int32_t> full(ctx);
  full.insert(full.end(), cont.begin(), cont.end());
  if (static_cast<int64_t>(full.size()) > L + 1) full.erase(full.begin(), full.end() - (L + 1));
  full.pop_back();
  double ll = 0;
  bool greedy = true;
  const size_t start = full.size() - cont.size() + 1;
  for (size_t i = 0; i < cont.size(); ++i) {
    std::vector<int32_t> prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(start + i));
    auto l = fake_logits(prefix);
    double mx = -1e30;
    int64_t arg = 0;
    for (int64_t v = 0; v < kVocab; ++v)
      if (l[v] > mx) mx = l[v], arg = v;
    double s = 0;
    for (float x : l) s += std::exp(x - mx);
    ll += l[cont[i]] - mx - std::log(s);
    greedy = greedy && arg == cont[i];
  }
  return {ll, greedy};
}

TEST(Scorer, MatchesBruteForceWithPrefixReuseAndTruncation) {
  FakeModel m;
  const int64_t L = 24;  // small max length so some requests are left-truncated
  std::mt19937 rng(123);
  auto rand_ids = [&](int n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = static_cast<int32_t>(rng() % kVocab);
    return v;
  };
  std::vector<int32_t> shots = rand_ids(16);  // shared "few-shot" prefix
  struct Req {
    std::vector<int32_t> ctx, cont;
  };
  std::vector<Req> reqs;
  for (int q = 0; q < 30; ++q) {
    std::vector<int32_t> ctx = (q % 3 == 0) ? rand_ids(1 + static_cast<int>(rng() % 6)) : shots;
    if (q % 3 != 0) {
      auto own = rand_ids(static_cast<int>(rng() % 12));  // sometimes long enough to force truncation
      ctx.insert(ctx.end(), own.begin(), own.end());
    }
    for (int c = 0; c < 4; ++c) reqs.push_back({ctx, rand_ids(1 + static_cast<int>(rng() % 5))});
  }
  // Greedy continuations too, so is_greedy == true is exercised.
  for (int q = 0; q < 5; ++q) {
    auto ctx = rand_ids(3 + q);
    std::vector<int32_t> cont;
    auto p = ctx;
    for (int i = 0; i < 3; ++i) {
      auto l = fake_logits(p);
      int32_t arg = static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin());
      cont.push_back(arg);
      p.push_back(arg);
    }
    reqs.push_back({ctx, cont});
  }
  sft::eval::TokenScorer scorer(m, L);
  int n_truncated = 0, n_greedy = 0;
  for (const auto& r : reqs) {
    auto got = scorer.score_tokens(r.ctx, r.cont);
    auto [ll, greedy] = brute(r.ctx, r.cont, L);
    EXPECT_NEAR(got.logprob, ll, 1e-9);
    EXPECT_EQ(got.is_greedy, greedy);
    n_truncated += got.truncated;
    n_greedy += got.is_greedy;
  }
  EXPECT_GT(n_truncated, 0) << "test data should exercise left truncation";
  EXPECT_GE(n_greedy, 5);
  // The shared prefix must actually be reused.
  EXPECT_LT(scorer.stats().tokens_forwarded, scorer.stats().tokens_requested);
  EXPECT_EQ(scorer.stats().tokens_forwarded, m.appended);
}

TEST(Scorer, BatchedDocsMatchBruteForce) {
  // score_docs: MMLU-like documents (4 single-token choices after one context; batched across documents after the
  // shared prefix) and ARC-like documents (multi-token choices as branches after the context), with truncation.
  const int64_t L = 24;
  std::mt19937 rng(77);
  auto rand_ids = [&](int n) {
    std::vector<int32_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = static_cast<int32_t>(rng() % kVocab);
    return v;
  };
  const std::vector<int32_t> shots = rand_ids(10);
  std::vector<std::vector<sft::eval::TokenRequest>> docs;
  for (int q = 0; q < 23; ++q) {
    std::vector<int32_t> ctx = shots;
    auto own = rand_ids(1 + static_cast<int>(rng() % 16));  // some exceed L: left truncation
    ctx.insert(ctx.end(), own.begin(), own.end());
    std::vector<sft::eval::TokenRequest> doc;
    const bool single = q % 2 == 0;
    for (int c = 0; c < (single ? 4 : 2 + q % 4); ++c)
      doc.push_back({ctx, single ? std::vector<int32_t>{c} : rand_ids(1 + static_cast<int>(rng() % 5))});
    docs.push_back(doc);
  }
  // (documents, padded rows) per forward: one at a time, a few, all; and a row limit that splits the batches
  for (auto [max_docs, max_tokens] : {std::pair<int64_t, int64_t>{1, 4096}, {3, 4096}, {64, 4096}, {64, 60}}) {
    FakeModel m;
    sft::eval::TokenScorer scorer(m, L);
    sft::eval::BatchLimits limits;
    limits.max_docs = limits.max_group_docs = max_docs;
    limits.max_tokens = max_tokens;
    auto got = scorer.score_docs(docs, limits);
    int truncated = 0;
    for (size_t d = 0; d < docs.size(); ++d)
      for (size_t c = 0; c < docs[d].size(); ++c) {
        auto [ll, greedy] = brute(docs[d][c].context, docs[d][c].continuation, L);
        EXPECT_NEAR(got[d][c].logprob, ll, 1e-9) << "doc " << d << " choice " << c << " max_docs " << max_docs;
        EXPECT_EQ(got[d][c].is_greedy, greedy);
        truncated += got[d][c].truncated;
      }
    EXPECT_GT(truncated, 0);
    EXPECT_LT(scorer.stats().tokens_forwarded, scorer.stats().tokens_requested);
  }
}

TEST(Scorer, ContextComputedOncePerQuestion) {
  FakeModel m;
  sft::eval::TokenScorer scorer(m, 64);
  std::vector<int32_t> ctx = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4};
  for (int32_t c = 0; c < 4; ++c) scorer.score_tokens(ctx, {c});  // MMLU-like single-token choices
  EXPECT_EQ(m.appended, 20);
  scorer.score_tokens(ctx, {1, 2, 3});  // a multi-token choice appends only its first n-1 tokens
  EXPECT_EQ(m.appended, 22);
  auto next = ctx;
  next.push_back(7);  // the next question shares the whole previous context
  scorer.score_tokens(next, {0});
  EXPECT_EQ(m.appended, 23);
}

TEST(Scorer, RejectsEmptyContinuation) {
  FakeModel m;
  sft::eval::TokenScorer scorer(m, 16);
  EXPECT_THROW(scorer.score_tokens({1, 2}, {}), sft::Error);
}

TEST(TokenLogprob, FirstMaximumIsGreedy) {
  std::vector<float> l = {1.0f, 3.0f, 3.0f, -2.0f};
  auto [lp1, g1] = sft::eval::token_logprob(l.data(), 4, 1);
  auto [lp2, g2] = sft::eval::token_logprob(l.data(), 4, 2);
  EXPECT_TRUE(g1);
  EXPECT_FALSE(g2);  // torch.argmax returns the first maximal index
  double z = std::log(std::exp(1.0) + 2 * std::exp(3.0) + std::exp(-2.0));
  EXPECT_NEAR(lp1, 3.0 - z, 1e-12);
  EXPECT_NEAR(lp2, 3.0 - z, 1e-12);
}

}  // namespace
