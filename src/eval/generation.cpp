#include "eval/generation.h"

#include <algorithm>
#include <numeric>

#include "util/error.h"

namespace sft::eval {

int32_t greedy_token(const float* logits, int64_t vocab) {
  int64_t arg = 0;
  for (int64_t v = 1; v < vocab; ++v)
    if (logits[v] > logits[arg]) arg = v;
  return static_cast<int32_t>(arg);
}

std::string cut_at_stop_strings(std::string text, const std::vector<std::string>& until) {
  for (const auto& term : until) {
    if (term.empty()) continue;  // lm-eval ignores '' (a seq2seq eos that decodes to nothing)
    const size_t p = text.find(term);
    if (p != std::string::npos) text.resize(p);
  }
  return text;
}

TokenGenerator::TokenGenerator(model::Model& model, int64_t max_length)
    : model_(model), max_length_(max_length), vocab_(model.config().vocab_size), flops_(ModelFlops::of(model.config())) {
  SFT_CHECK(max_length_ > 1, "max_length must be > 1");
}

std::vector<std::vector<int32_t>> TokenGenerator::generate(
    const std::vector<std::vector<int32_t>>& contexts, int64_t max_new, const std::vector<int32_t>& eos_ids,
    const std::function<bool(size_t, const std::vector<int32_t>&)>& done, const GenerateLimits& limits,
    const std::function<void(int64_t)>& on_batch) {
  SFT_CHECK(max_new >= 1 && max_new < max_length_, "max_gen_toks ", max_new, " must be at least 1 and below the ",
            "max length ", max_length_, " (lm-eval: max_length - max_gen_toks is the room for the context; set them "
            "with --gen_kwargs max_gen_toks=N and --max_length)");
  SFT_CHECK(limits.max_seqs >= 1 && limits.max_prefill_tokens >= 1, "generation batch limits must be positive");
  const int64_t max_ctx = max_length_ - max_new;
  std::vector<std::vector<int32_t>> ctx(contexts.size());
  for (size_t i = 0; i < contexts.size(); ++i) {
    SFT_CHECK(!contexts[i].empty(), "generation context ", i, " has no tokens");
    const auto& c = contexts[i];
    const size_t keep = std::min<size_t>(c.size(), static_cast<size_t>(max_ctx));
    ctx[i].assign(c.end() - static_cast<std::ptrdiff_t>(keep), c.end());  // left truncation (tok_batch_encode)
  }
  std::vector<size_t> order(ctx.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ctx[a].size() > ctx[b].size(); });
  std::vector<std::vector<int32_t>> out(ctx.size());
  for (size_t i = 0; i < order.size();) {
    const int64_t longest = static_cast<int64_t>(ctx[order[i]].size());
    std::vector<size_t> batch;
    while (i < order.size() && static_cast<int64_t>(batch.size()) < limits.max_seqs &&
           (batch.empty() || static_cast<int64_t>(batch.size() + 1) * longest <= limits.max_prefill_tokens))
      batch.push_back(order[i++]);
    run_batch(ctx, batch, max_new, eos_ids, done, out);
    if (on_batch) on_batch(static_cast<int64_t>(batch.size()));
  }
  return out;
}

void TokenGenerator::run_batch(const std::vector<std::vector<int32_t>>& ctx, const std::vector<size_t>& idx,
                               int64_t max_new, const std::vector<int32_t>& eos_ids,
                               const std::function<bool(size_t, const std::vector<int32_t>&)>& done,
                               std::vector<std::vector<int32_t>>& out) {
  // Shared prefix: the longest common prefix of the batch, leaving every branch at least its last context token.
  size_t P = ctx[idx[0]].size() - 1;
  for (size_t b : idx) {
    P = std::min(P, ctx[b].size() - 1);
    size_t k = 0;
    while (k < P && ctx[b][k] == ctx[idx[0]][k]) ++k;
    P = k;
  }
  std::vector<std::vector<int32_t>> own;
  int64_t longest_own = 0;
  for (size_t b : idx) {
    own.emplace_back(ctx[b].begin() + static_cast<std::ptrdiff_t>(P), ctx[b].end());
    longest_own = std::max<int64_t>(longest_own, static_cast<int64_t>(own.back().size()));
  }
  const int64_t cap = longest_own + max_new;
  const int64_t need = static_cast<int64_t>(P) + cap + 1;
  if (!session_ || capacity_ < need) {
    capacity_ = std::max(need, std::min<int64_t>(max_length_ + 2, std::max<int64_t>(512, capacity_ * 2)));
    session_ = model_.new_session(capacity_);
    cached_.clear();
  }
  // The prefix in the session, reusing what it holds.
  const std::vector<int32_t> prefix(ctx[idx[0]].begin(), ctx[idx[0]].begin() + static_cast<std::ptrdiff_t>(P));
  size_t common = 0;
  while (common < cached_.size() && common < prefix.size() && cached_[common] == prefix[common]) ++common;
  session_->truncate(static_cast<int64_t>(std::min(common, cached_.size())));
  if (common < prefix.size()) {
    const std::vector<int32_t> rest(prefix.begin() + static_cast<std::ptrdiff_t>(common), prefix.end());
    session_->append(rest, false);
    stats_.tokens_forwarded += static_cast<int64_t>(rest.size());
    stats_.model_flops += flops_.tokens(static_cast<int64_t>(rest.size()), static_cast<int64_t>(common)) +
                          flops_.head_rows(1);
  }
  cached_ = prefix;

  const size_t nb = idx.size();
  std::vector<std::vector<float>> logits = session_->start_branches(own, cap);
  std::vector<int64_t> len(nb);
  for (size_t b = 0; b < nb; ++b) {
    len[b] = static_cast<int64_t>(own[b].size());
    stats_.tokens_forwarded += len[b];
    stats_.model_flops += flops_.tokens(len[b], static_cast<int64_t>(P));
  }
  stats_.model_flops += flops_.head_rows(static_cast<int64_t>(nb));
  std::vector<std::vector<int32_t>> gen(nb);
  std::vector<bool> live(nb, true);
  while (true) {
    std::vector<int32_t> step(nb, -1);
    int64_t n_live = 0;
    for (size_t b = 0; b < nb; ++b) {
      if (!live[b]) continue;
      SFT_CHECK(static_cast<int64_t>(logits[b].size()) == vocab_, "KV session returned ", logits[b].size(),
                " logits, expected ", vocab_);
      const int32_t t = greedy_token(logits[b].data(), vocab_);
      gen[b].push_back(t);
      ++stats_.tokens_generated;
      const bool eos = std::find(eos_ids.begin(), eos_ids.end(), t) != eos_ids.end();
      if (eos || done(idx[b], gen[b]) || static_cast<int64_t>(gen[b].size()) >= max_new) {
        live[b] = false;
        continue;
      }
      step[b] = t;
      stats_.model_flops += flops_.tokens(1, static_cast<int64_t>(P) + len[b]);
      ++len[b];
      ++n_live;
    }
    if (n_live == 0) break;
    logits = session_->step_branches(step);
    stats_.tokens_forwarded += n_live;
    stats_.model_flops += flops_.head_rows(n_live);
  }
  for (size_t b = 0; b < nb; ++b) out[idx[b]] = std::move(gen[b]);
}

ModelFlops ModelFlops::of(const io::ModelConfig& c) {
  const double H = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double QD = static_cast<double>(c.q_dim()), KD = static_cast<double>(c.kv_dim());
  const double per_layer = H * QD + 2 * H * KD + QD * H + 3 * H * I;  // q, k, v, o, gate, up, down
  ModelFlops f;
  f.per_token = 2.0 * per_layer * static_cast<double>(c.num_hidden_layers);
  f.per_key_pair = 4.0 * QD * static_cast<double>(c.num_hidden_layers);
  f.per_head_row = 2.0 * H * static_cast<double>(c.vocab_size);
  return f;
}

}  // namespace sft::eval
