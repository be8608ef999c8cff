// generate_until as lm-eval's HF backend runs it (HFLM.generate_until + _model_generate + utils.postprocess_generated_
// text), greedy only:
//  - each context is encoded as HFLM.tok_batch_encode does and left-truncated to max_length - max_gen_toks;
//  - tokens are the first argmax of the logits (torch.argmax) until an eos id of the generation config, a stop string
//    appearing in the decoded generated tokens (special tokens kept, as the stopping criterion decodes them), or
//    max_gen_toks tokens;
//  - the text is the decoded generation (special tokens skipped) cut before the first occurrence of any stop string,
//    the tokenizer's eos text included (handle_stop_sequences adds it).
// lm-eval stops a sequence a step or two later than the first appearance of a stop string (it looks back over the last
// len(stop tokens) + 2 tokens of every sequence in the batch); the text before the cut is the same.
//
// Engine: contexts sorted longest first (lm-eval's Collator), batches of up to `max_seqs`; a batch's longest common
// token prefix goes into a KV session once and every context continues it as a persistent branch
// (KVSession::start_branches: all prompts in one forward), then one batched forward per generated token for all live
// branches (KVSession::step_branches).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "eval/model_flops.h"
#include "model/model.h"

namespace sft::eval {

struct GenerateLimits {
  int64_t max_seqs = 8;              // sequences per batch
  int64_t max_prefill_tokens = 8192;  // padded prompt rows of the batch's first forward
};

struct GenerationStats {
  int64_t tokens_forwarded = 0, tokens_generated = 0;
  double model_flops = 0;
};

// The token-level engine (no tokenizer; tested on a fake model).
class TokenGenerator {
 public:
  TokenGenerator(model::Model& model, int64_t max_length);
  // Greedy continuations of every context (left-truncated to max_length - max_new). `done(i, generated)` is asked
  // after every new token of sequence i that is not an eos id; returns the generated ids per context (an eos id that
  // stopped a sequence included). `on_batch(n)` (optional) is told after every batch how many sequences it finished.
  std::vector<std::vector<int32_t>> generate(const std::vector<std::vector<int32_t>>& contexts, int64_t max_new,
                                             const std::vector<int32_t>& eos_ids,
                                             const std::function<bool(size_t, const std::vector<int32_t>&)>& done,
                                             const GenerateLimits& limits,
                                             const std::function<void(int64_t)>& on_batch = {});
  const GenerationStats& stats() const { return stats_; }

 private:
  void run_batch(const std::vector<std::vector<int32_t>>& ctx, const std::vector<size_t>& idx, int64_t max_new,
                 const std::vector<int32_t>& eos_ids,
                 const std::function<bool(size_t, const std::vector<int32_t>&)>& done,
                 std::vector<std::vector<int32_t>>& out);
  model::Model& model_;
  int64_t max_length_, vocab_;
  ModelFlops flops_;
  std::unique_ptr<model::Model::KVSession> session_;
  int64_t capacity_ = 0;
  std::vector<int32_t> cached_;
  GenerationStats stats_;
};


// First index of the maximum (torch.argmax).
int32_t greedy_token(const float* logits, int64_t vocab);
// postprocess_generated_text: text cut before the first occurrence of any non-empty stop string.
std::string cut_at_stop_strings(std::string text, const std::vector<std::string>& until);

}  // namespace sft::eval
