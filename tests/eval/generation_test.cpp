// generate_until's engine (TokenGenerator: batches, shared prefix in the KV session, persistent branches, stop rules,
// left truncation) against a brute-force greedy loop on a fake model whose logits depend on the whole prefix, so any
// stale, shared or misaligned cache entry changes the tokens; lm-eval's stop-string cut and --gen_kwargs parsing.
// (The fast KV branches themselves are checked against full forwards in tests/model/kv_branches_test.cpp.)
#include <gtest/gtest.h>

#include <random>

#include "eval/gen_kwargs.h"
#include "eval/generation.h"
#include "util/error.h"

namespace {

using sft::model::Model;

constexpr int64_t kVocab = 23;

std::vector<float> fake_logits(const std::vector<int32_t>& prefix) {
  uint64_t h = 1469598103934665603ULL;
  for (int32_t t : prefix) h = (h ^ static_cast<uint64_t>(t + 1)) * 1099511628211ULL;
  std::vector<float> out(kVocab);
  for (int64_t v = 0; v < kVocab; ++v) {
    uint64_t x = (h ^ static_cast<uint64_t>(v * 0x9E3779B97F4A7C15ULL)) * 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 31;
    out[v] = static_cast<float>(static_cast<double>(x % 1000) / 1000.0 * 8.0 - 4.0);  // ties happen: first wins
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
  void truncate(int64_t n) override { tokens.resize(static_cast<size_t>(n)); }
};

class FakeModel : public Model {
 public:
  explicit FakeModel(int64_t max_pos) { cfg_.vocab_size = kVocab; cfg_.max_position_embeddings = max_pos; }
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

// Written from HF generate's greedy loop + lm-eval's truncation: context[-(L - max_new):], then argmax (first max)
// of the logits after the whole sequence, until an eos id, `stop(generated)` or max_new tokens.
std::vector<int32_t> brute(std::vector<int32_t> ctx, int64_t L, int64_t max_new, const std::vector<int32_t>& eos,
                           const std::function<bool(const std::vector<int32_t>&)>& stop) {
  if (static_cast<int64_t>(ctx.size()) > L - max_new) ctx.erase(ctx.begin(), ctx.end() - (L - max_new));
  std::vector<int32_t> gen;
  while (true) {
    std::vector<int32_t> seq(ctx);
    seq.insert(seq.end(), gen.begin(), gen.end());
    const auto l = fake_logits(seq);
    int32_t arg = 0;
    for (int32_t v = 1; v < kVocab; ++v)
      if (l[v] > l[arg]) arg = v;
    gen.push_back(arg);
    if (std::find(eos.begin(), eos.end(), arg) != eos.end() || stop(gen) ||
        static_cast<int64_t>(gen.size()) >= max_new)
      return gen;
  }
}

TEST(Generation, MatchesBruteForceGreedyForEveryBatching) {
  std::mt19937 g(4);
  auto rnd = [&](size_t n) {
    std::vector<int32_t> v(n);
    for (auto& x : v) x = static_cast<int32_t>(g() % kVocab);
    return v;
  };
  // Contexts sharing a few-shot-like prefix, one sharing nothing, one longer than the room left for it.
  const std::vector<int32_t> shared = rnd(9);
  std::vector<std::vector<int32_t>> contexts;
  for (size_t n : {3, 1, 6, 2, 5, 4}) {
    auto c = shared;
    auto own = rnd(n);
    c.insert(c.end(), own.begin(), own.end());
    contexts.push_back(c);
  }
  contexts.push_back(rnd(4));
  contexts.push_back(rnd(70));  // left-truncated to L - max_new
  const int64_t L = 64, max_new = 12;
  const std::vector<int32_t> eos = {5};
  // Stop when the generated ids contain the pair (7, 8) or three 2s in a row.
  auto stop = [](const std::vector<int32_t>& gen) {
    for (size_t i = 1; i < gen.size(); ++i)
      if ((gen[i - 1] == 7 && gen[i] == 8) || (i >= 2 && gen[i] == 2 && gen[i - 1] == 2 && gen[i - 2] == 2)) return true;
    return false;
  };
  std::vector<std::vector<int32_t>> want;
  for (const auto& c : contexts) want.push_back(brute(c, L, max_new, eos, stop));
  for (int64_t seqs : {1, 3, 8}) {
    for (int64_t prefill : {int64_t{8192}, int64_t{40}}) {
      FakeModel m(L);
      sft::eval::TokenGenerator gen(m, L);
      sft::eval::GenerateLimits lim;
      lim.max_seqs = seqs;
      lim.max_prefill_tokens = prefill;
      std::vector<size_t> asked;
      const auto got = gen.generate(contexts, max_new, eos, [&](size_t i, const std::vector<int32_t>& t) {
        asked.push_back(i);
        return stop(t);
      }, lim);
      ASSERT_EQ(got.size(), contexts.size());
      for (size_t i = 0; i < contexts.size(); ++i) EXPECT_EQ(got[i], want[i]) << "context " << i << " seqs " << seqs;
      EXPECT_FALSE(asked.empty());
      EXPECT_GT(gen.stats().tokens_generated, 0);
    }
  }
  FakeModel m(L);
  sft::eval::TokenGenerator gen(m, L);
  EXPECT_THROW(gen.generate({{1, 2}}, L, eos, [](size_t, const std::vector<int32_t>&) { return false; }, {}),
               sft::Error);  // no room for a context
  EXPECT_THROW(gen.generate({{}}, 4, eos, [](size_t, const std::vector<int32_t>&) { return false; }, {}), sft::Error);
}

TEST(Generation, StopStringsCutAsLmEval) {
  using sft::eval::cut_at_stop_strings;
  // postprocess_generated_text: for each term in order, text.split(term)[0].
  EXPECT_EQ(cut_at_stop_strings(" 42\n\nQuestion: next", {"Question:", "</s>", "<|im_end|>"}), " 42\n\n");
  EXPECT_EQ(cut_at_stop_strings("a</s>b Question: c", {"Question:", "</s>"}), "a");
  EXPECT_EQ(cut_at_stop_strings("no stop here", {"Question:", ""}), "no stop here");  // '' is ignored
  EXPECT_EQ(cut_at_stop_strings("Question: at start", {"Question:"}), "");
}

TEST(Generation, GenKwargsAsLmEvalParsesThem) {
  using sft::eval::parse_gen_kwargs;
  auto a = parse_gen_kwargs({"max_gen_toks=64"});
  EXPECT_EQ(*a.max_gen_toks, 64);
  EXPECT_FALSE(a.until.has_value());
  auto b = parse_gen_kwargs({"until=[\"\\n\\n\", 'Question:'],do_sample=false,temperature=0.0", "max_new_tokens=9"});
  EXPECT_EQ(*b.until, (std::vector<std::string>{"\n\n", "Question:"}));
  EXPECT_EQ(*b.max_gen_toks, 9);
  auto c = parse_gen_kwargs({"max_new_tokens=9,max_gen_toks=7"});  // max_gen_toks has priority
  EXPECT_EQ(*c.max_gen_toks, 7);
  auto d = parse_gen_kwargs({"until=Answer:"});
  EXPECT_EQ(*d.until, (std::vector<std::string>{"Answer:"}));
  auto e = parse_gen_kwargs({"{\"max_gen_toks\": 32, \"until\": [\"x\"], \"do_sample\": false}"});
  EXPECT_EQ(*e.max_gen_toks, 32);
  EXPECT_EQ(*e.until, (std::vector<std::string>{"x"}));
  EXPECT_THROW(parse_gen_kwargs({"do_sample=true"}), sft::Error);
  EXPECT_THROW(parse_gen_kwargs({"temperature=0.7"}), sft::Error);  // do_sample unset + temperature > 0 = sampling
  EXPECT_NO_THROW(parse_gen_kwargs({"temperature=0.7,do_sample=false"}));  // lm-eval sets temperature 0 then
  EXPECT_THROW(parse_gen_kwargs({"max_gen_toks=0"}), sft::Error);
  EXPECT_THROW(parse_gen_kwargs({"top_p=0.9"}), sft::Error);
  EXPECT_THROW(parse_gen_kwargs({"max_gen_toks"}), sft::Error);
  EXPECT_THROW(parse_gen_kwargs({"until=[1, 2]"}), sft::Error);
}

}  // namespace
