// Log-likelihood scoring of continuations, tokenised exactly as lm-eval's HFLM (TemplateLM._encode_pair +
// HFLM.tok_encode + HFLM._loglikelihood_tokens):
//  - trailing whitespace of the context moves to the continuation;
//  - whole = encode(context + continuation), context_enc = encode(context), continuation = whole[len(context_enc):];
//  - encode() uses the tokenizer's add_special_tokens default (BOS only where the post-processor adds one, e.g.
//    Llama 3), except when the text already starts with the prefix token's text;
//  - the model input is (context_enc + continuation_enc)[-(max_length+1):][:-1] (left truncation);
//  - ll = sum of log p(continuation token), is_greedy = every continuation token is the argmax.
//
// Engine: a KV session (model::Model::KVSession) plus branch scoring (KVSession::append_branches). score_docs() cuts
// the documents into batches; a batch's longest common token prefix (description + few-shot block, or a question's
// own context) is put into the session once (reusing whatever the session already holds), and everything after it
// goes through the model as one batch of branches that each see the prefix and only themselves:
//   - single-token choices sharing one input (MMLU's " A".." D"): ONE branch per document, its last row scores every
//     choice; up to `batch` documents per forward (sorted by length to limit padding), all after the shared prefix;
//   - multi-token choices (ARC, HellaSwag): one document per forward, its context in the session, its choices as
//     branches (the context is computed once, not once per choice as in lm-eval's padded batches).
// The numbers equal a fresh full forward per request up to fp32 summation order.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "eval/generation.h"
#include "eval/model_flops.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace sft::eval {

struct LoglikelihoodResult {
  double logprob = 0.0;
  bool is_greedy = false;
  int64_t n_context_tokens = 0, n_continuation_tokens = 0;
  bool truncated = false;  // the input was left-truncated to max_length
};

struct ScorerStats {
  int64_t tokens_forwarded = 0;  // tokens actually appended to the KV cache
  int64_t tokens_requested = 0;  // context + continuation tokens of every request (what a no-cache engine computes)
  int64_t tokens_generated = 0;  // generate_until: new tokens
  double model_flops = 0;        // model FLOPs of every forward (model_flops.h)
};

// Tokenisation half of the scorer (separate so it can be tested without a model).
class PairEncoder {
 public:
  explicit PairEncoder(const tok::Tokenizer& tok);
  std::vector<int32_t> encode(const std::string& text) const;  // HFLM.tok_encode(text) with add_special_tokens=None
  // (context_enc, continuation_enc) as lm-eval's loglikelihood() builds them (empty context -> [prefix_token_id]).
  std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_pair(const std::string& context,
                                                                    const std::string& continuation) const;

 private:
  const tok::Tokenizer& tok_;
  int32_t prefix_token_id_ = -1;
  std::string prefix_text_;
};

// One choice of a document in tokens (PairEncoder::encode_pair's output).
struct TokenRequest {
  std::vector<int32_t> context, continuation;
};

// Batching limits for score_docs: at most max_docs single-row documents and max_tokens padded branch tokens per
// forward (one multi-token document always goes alone).
// The defaults are --batch_size auto, measured quietly on a 2-core AVX2 machine (SmolLM2-135M fp32, 120 MMLU and 60
// ARC/HellaSwag documents): larger forwards were slower (MMLU 0-shot 64 docs 24.0 s, 8 docs 14.5 s; ARC/HellaSwag
// 64 groups 18-19 s, 2 groups 11.4 s), so auto keeps them small.
struct BatchLimits {
  int64_t max_docs = 8;        // single-row documents (MMLU) per forward
  int64_t max_group_docs = 2;  // multi-row documents (ARC, HellaSwag: context + branches) per forward
  int64_t max_tokens = 4096;
};

// The token-level engine: KV session, prefix reuse, branch batching, left truncation (no tokenizer; tested on a fake
// model).
class TokenScorer {
 public:
  // max_length: lm-eval's resolve_max_length (config n_positions / max_position_embeddings / n_ctx, else 2048).
  TokenScorer(model::Model& model, int64_t max_length);
  // context_enc must be non-empty unless the truncated input still leaves a prefix (lm-eval's rules).
  LoglikelihoodResult score_tokens(const std::vector<int32_t>& context_enc, const std::vector<int32_t>& cont_enc);
  // Every choice of every document (docs[d][c]); same numbers as score_tokens one by one, batched as above.
  std::vector<std::vector<LoglikelihoodResult>> score_docs(const std::vector<std::vector<TokenRequest>>& docs,
                                                           const BatchLimits& limits);
  const ScorerStats& stats() const { return stats_; }

 private:
  // Makes the session hold exactly `prefix` and returns the logits after its last token.
  const std::vector<float>& set_prefix(const std::vector<int32_t>& prefix);
  void ensure_capacity(int64_t n);
  struct Unit;
  void run_batch(std::vector<Unit*>& units);
  // A multi-row document as a group of append_groups: its context length and longest branch.
  struct DocPlan {
    std::vector<Unit>* units = nullptr;
    int64_t prefix = 0, longest = 0;
  };
  static DocPlan plan_doc(std::vector<Unit>& units);
  void run_groups(const std::vector<DocPlan*>& plans);

  model::Model& model_;
  int64_t max_length_;
  int64_t vocab_;
  std::unique_ptr<model::Model::KVSession> session_;
  int64_t capacity_ = 0;
  std::vector<int32_t> cached_;     // token ids whose K/V the session holds
  std::vector<float> last_logits_;  // logits after cached_.back()
  ScorerStats stats_;
  ModelFlops flops_;
};

// generate_until settings of one task (lm-eval's generation_kwargs after --gen_kwargs; greedy).
struct UntilSettings {
  std::vector<std::string> until;
  int64_t max_gen_toks = 256;
  std::vector<int32_t> eos_ids;  // the generation config's eos_token_id(s)
};
struct Generation {
  std::vector<int32_t> tokens;  // generated ids (a stopping eos included)
  std::string text;             // decoded (special tokens skipped), cut before the first stop string
};

// Strings in, lm-eval tokenisation, TokenScorer underneath.
class Scorer {
 public:
  Scorer(model::Model& model, const tok::Tokenizer& tok, int64_t max_length);
  // Scores every continuation after the same context.
  std::vector<LoglikelihoodResult> score(const std::string& context, const std::vector<std::string>& continuations);
  // Several documents at once: (context, continuations) per document.
  std::vector<std::vector<LoglikelihoodResult>> score_docs(
      const std::vector<std::pair<std::string, std::vector<std::string>>>& docs, const BatchLimits& limits);
  // Several documents, each a list of (context, continuation) requests (partial evaluation has several contexts).
  std::vector<std::vector<LoglikelihoodResult>> score_requests(
      const std::vector<std::vector<std::pair<std::string, std::string>>>& docs, const BatchLimits& limits);
  // generate_until (generation.h) for every context.
  std::vector<Generation> generate_until(const std::vector<std::string>& contexts, const UntilSettings& settings,
                                         const GenerateLimits& limits,
                                         const std::function<void(int64_t)>& on_batch = {});
  ScorerStats stats() const;
  const PairEncoder& encoder() const { return enc_; }

 private:
  model::Model& model_;
  const tok::Tokenizer& tok_;
  int64_t max_length_;
  PairEncoder enc_;
  TokenScorer engine_;
  std::unique_ptr<TokenGenerator> generator_;
};

// log p(token) under log_softmax(logits) (max-subtracted, fp64 sum) and whether token is the first argmax (torch).
std::pair<double, bool> token_logprob(const float* logits, int64_t vocab, int32_t token);
// lm-eval's max length rule given a model config (max_position_embeddings when set, else 2048).
int64_t lm_eval_max_length(const io::ModelConfig& cfg);

}  // namespace sft::eval
