#include "eval/scorer.h"

#include <algorithm>
#include <cmath>

#include "eval/py_text.h"
#include "util/error.h"

namespace sft::eval {

PairEncoder::PairEncoder(const tok::Tokenizer& tok) : tok_(tok) {
  // HFLM.prefix_token_id: bos_token_id if set, else eos_token_id.
  auto id = tok.bos_id() ? tok.bos_id() : tok.eos_id();
  if (id) {
    prefix_token_id_ = *id;
    prefix_text_ = tok.decode({*id});
  }
}

std::vector<int32_t> PairEncoder::encode(const std::string& text) const {
  // tok_encode(add_special_tokens=None): tokenizer default (True), but False when the text starts with the prefix
  // token's text (has_bos_prefix), so a BOS is never doubled.
  bool add_special = !(!prefix_text_.empty() && text.rfind(prefix_text_, 0) == 0);
  return tok_.encode(text, add_special);
}

std::pair<std::vector<int32_t>, std::vector<int32_t>> PairEncoder::encode_pair(const std::string& context_in,
                                                                               const std::string& continuation_in) const {
  if (context_in.empty()) {
    SFT_CHECK(prefix_token_id_ >= 0, "empty context needs a BOS or EOS token to condition on");
    return {{prefix_token_id_}, encode(continuation_in)};
  }
  std::string context = py_rstrip(context_in);
  std::string continuation = context_in.substr(context.size()) + continuation_in;
  auto whole = encode(context + continuation);
  auto ctx = encode(context);
  std::vector<int32_t> cont;
  if (whole.size() > ctx.size()) cont.assign(whole.begin() + static_cast<std::ptrdiff_t>(ctx.size()), whole.end());
  return {std::move(ctx), std::move(cont)};
}

std::pair<double, bool> token_logprob(const float* logits, int64_t vocab, int32_t token) {
  SFT_CHECK(token >= 0 && token < vocab, "token id ", token, " outside the model vocabulary of ", vocab);
  int64_t arg = 0;
  float mx = logits[0];
  for (int64_t v = 1; v < vocab; ++v)
    if (logits[v] > mx) {
      mx = logits[v];
      arg = v;
    }
  double sum = 0.0;
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(logits[v]) - mx);
  return {static_cast<double>(logits[token]) - mx - std::log(sum), arg == token};
}

int64_t lm_eval_max_length(const io::ModelConfig& cfg) {
  return cfg.max_position_embeddings > 0 ? cfg.max_position_embeddings : 2048;
}

TokenScorer::TokenScorer(model::Model& model, int64_t max_length)
    : model_(model), max_length_(max_length), vocab_(model.config().vocab_size) {
  SFT_CHECK(max_length_ > 1, "max_length must be > 1");
}

void TokenScorer::ensure_capacity(int64_t n) {
  if (session_ && n <= capacity_) return;
  // Grow geometrically (bounded by max_length + 1) so a task allocates its cache a few times at most.
  int64_t cap = std::max<int64_t>(n, std::min<int64_t>(max_length_ + 1, std::max<int64_t>(512, capacity_ * 2)));
  session_ = model_.new_session(cap);
  capacity_ = cap;
  cached_.clear();
  last_logits_.clear();
}

const std::vector<float>& TokenScorer::set_prefix(const std::vector<int32_t>& prefix) {
  SFT_CHECK(!prefix.empty(), "scoring needs at least one context token");
  ensure_capacity(static_cast<int64_t>(prefix.size()) + 1);
  size_t common = 0;
  while (common < cached_.size() && common < prefix.size() && cached_[common] == prefix[common]) ++common;
  if (common == prefix.size() && common == cached_.size() && !last_logits_.empty()) return last_logits_;
  // Keep at least one token to recompute so that the logits after the last prefix token come out of append().
  size_t keep = std::min(common, prefix.size() - 1);
  session_->truncate(static_cast<int64_t>(keep));
  std::vector<int32_t> rest(prefix.begin() + static_cast<std::ptrdiff_t>(keep), prefix.end());
  last_logits_ = session_->append(rest, false);
  SFT_CHECK(static_cast<int64_t>(last_logits_.size()) == vocab_, "KVSession::append returned ", last_logits_.size(),
            " logits, expected ", vocab_);
  stats_.tokens_forwarded += static_cast<int64_t>(rest.size());
  cached_ = prefix;
  return last_logits_;
}

LoglikelihoodResult TokenScorer::score_tokens(const std::vector<int32_t>& context_enc, const std::vector<int32_t>& cont) {
  SFT_CHECK(!cont.empty(), "continuation encodes to zero tokens (lm-eval requires at least one)");
  SFT_CHECK(static_cast<int64_t>(cont.size()) <= max_length_, "continuation of ", cont.size(),
            " tokens exceeds max length ", max_length_);
  LoglikelihoodResult r;
  r.n_context_tokens = static_cast<int64_t>(context_enc.size());
  r.n_continuation_tokens = static_cast<int64_t>(cont.size());
  // Input = (context + cont)[-(max_length+1):][:-1]; the prefix is that input minus the continuation's part.
  std::vector<int32_t> full(context_enc);
  full.insert(full.end(), cont.begin(), cont.end());
  if (static_cast<int64_t>(full.size()) > max_length_ + 1) {
    full.erase(full.begin(), full.end() - (max_length_ + 1));
    r.truncated = true;
  }
  std::vector<int32_t> prefix(full.begin(), full.end() - static_cast<std::ptrdiff_t>(cont.size()));
  stats_.tokens_requested += static_cast<int64_t>(full.size()) - 1;
  const auto& first = set_prefix(prefix);
  auto [lp0, g0] = token_logprob(first.data(), vocab_, cont[0]);
  r.logprob = lp0;
  r.is_greedy = g0;
  if (cont.size() > 1) {
    ensure_capacity(static_cast<int64_t>(prefix.size() + cont.size()));
    if (cached_ != prefix) set_prefix(prefix);  // ensure_capacity may have replaced the session
    std::vector<int32_t> head(cont.begin(), cont.end() - 1);
    auto logits = session_->append(head, true);
    SFT_CHECK(static_cast<int64_t>(logits.size()) == vocab_ * static_cast<int64_t>(head.size()),
              "KVSession::append(all_positions) returned ", logits.size(), " logits, expected ",
              vocab_ * static_cast<int64_t>(head.size()));
    stats_.tokens_forwarded += static_cast<int64_t>(head.size());
    for (size_t i = 0; i < head.size(); ++i) {
      auto [lp, g] = token_logprob(logits.data() + static_cast<int64_t>(i) * vocab_, vocab_, cont[i + 1]);
      r.logprob += lp;
      r.is_greedy = r.is_greedy && g;
    }
    session_->truncate(static_cast<int64_t>(prefix.size()));
  }
  return r;
}

Scorer::Scorer(model::Model& model, const tok::Tokenizer& tok, int64_t max_length)
    : enc_(tok), engine_(model, max_length) {}

std::vector<LoglikelihoodResult> Scorer::score(const std::string& context, const std::vector<std::string>& conts) {
  std::vector<LoglikelihoodResult> out;
  out.reserve(conts.size());
  for (const auto& c : conts) {
    auto [ctx_enc, cont_enc] = enc_.encode_pair(context, c);
    out.push_back(engine_.score_tokens(ctx_enc, cont_enc));
  }
  return out;
}

}  // namespace sft::eval
