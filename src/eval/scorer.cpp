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
    : model_(model), max_length_(max_length), vocab_(model.config().vocab_size), flops_(ModelFlops::of(model.config())) {
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
  stats_.model_flops += flops_.tokens(static_cast<int64_t>(rest.size()), static_cast<int64_t>(keep)) + flops_.head_rows(1);
  cached_ = prefix;
  return last_logits_;
}

LoglikelihoodResult TokenScorer::score_tokens(const std::vector<int32_t>& context_enc, const std::vector<int32_t>& cont) {
  SFT_CHECK(!cont.empty(), "continuation encodes to zero tokens (lm-eval requires at least one)");
  SFT_CHECK(static_cast<int64_t>(cont.size()) <= max_length_, "continuation of ", cont.size(),
            " tokens exceeds max length ", max_length_, " (--max_length; default max_position_embeddings)");
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
    stats_.model_flops += flops_.tokens(static_cast<int64_t>(head.size()), static_cast<int64_t>(prefix.size())) +
                          flops_.head_rows(static_cast<int64_t>(head.size()));
    for (size_t i = 0; i < head.size(); ++i) {
      auto [lp, g] = token_logprob(logits.data() + static_cast<int64_t>(i) * vocab_, vocab_, cont[i + 1]);
      r.logprob += lp;
      r.is_greedy = r.is_greedy && g;
    }
    session_->truncate(static_cast<int64_t>(prefix.size()));
  }
  return r;
}

// A branch of a batch: the model input of one request (or of all choices of a single-row document) and the rows
// whose next-token distribution scores a target.
struct TokenScorer::Unit {
  std::vector<int32_t> input;  // (context + continuation)[-(max_length+1):][:-1]
  int64_t first_out = 0;       // row whose logits score targets[0]; later targets use the following rows
  bool single_row = false;     // one row scores every choice (targets[c] = choice c's only token)
  std::vector<int32_t> targets;
  std::vector<LoglikelihoodResult*> results;  // single_row: one per choice; else one
};

std::vector<std::vector<LoglikelihoodResult>> TokenScorer::score_docs(
    const std::vector<std::vector<TokenRequest>>& docs, const BatchLimits& limits) {
  SFT_CHECK(limits.max_docs >= 1 && limits.max_group_docs >= 1 && limits.max_tokens >= 1, "batch limits must be positive");
  std::vector<std::vector<LoglikelihoodResult>> out(docs.size());
  std::vector<std::vector<Unit>> units(docs.size());
  for (size_t d = 0; d < docs.size(); ++d) {
    out[d].resize(docs[d].size());
    std::vector<Unit> per_choice;
    for (size_t c = 0; c < docs[d].size(); ++c) {
      const auto& req = docs[d][c];
      SFT_CHECK(!req.continuation.empty(), "continuation encodes to zero tokens (lm-eval requires at least one)");
      SFT_CHECK(static_cast<int64_t>(req.continuation.size()) <= max_length_, "continuation of ",
                req.continuation.size(), " tokens exceeds max length ", max_length_,
                " (--max_length; default max_position_embeddings)");
      LoglikelihoodResult& r = out[d][c];
      r.n_context_tokens = static_cast<int64_t>(req.context.size());
      r.n_continuation_tokens = static_cast<int64_t>(req.continuation.size());
      std::vector<int32_t> full(req.context);
      full.insert(full.end(), req.continuation.begin(), req.continuation.end());
      if (static_cast<int64_t>(full.size()) > max_length_ + 1) {
        full.erase(full.begin(), full.end() - (max_length_ + 1));
        r.truncated = true;
      }
      full.pop_back();
      SFT_CHECK(full.size() >= req.continuation.size(), "scoring needs at least one context token");
      stats_.tokens_requested += static_cast<int64_t>(full.size());
      Unit u;
      u.first_out = static_cast<int64_t>(full.size() - req.continuation.size());
      u.input = std::move(full);
      u.targets = req.continuation;
      u.results = {&r};
      per_choice.push_back(std::move(u));
    }
    bool one_row = !per_choice.empty();
    for (const auto& u : per_choice)
      one_row = one_row && u.targets.size() == 1 && u.input == per_choice[0].input;
    if (one_row) {  // MMLU: the choices differ only in the token after a shared input
      Unit u = std::move(per_choice[0]);
      u.single_row = true;
      for (size_t c = 1; c < per_choice.size(); ++c) {
        u.targets.push_back(per_choice[c].targets[0]);
        u.results.push_back(per_choice[c].results[0]);
      }
      units[d].push_back(std::move(u));
    } else {
      units[d] = std::move(per_choice);
    }
  }
  // Single-row documents: longest first (as lm-eval's Collator), packed up to the limits; the others one by one.
  std::vector<size_t> single, multi;
  for (size_t d = 0; d < docs.size(); ++d) {
    if (units[d].empty()) continue;
    (units[d].size() == 1 && units[d][0].single_row ? single : multi).push_back(d);
  }
  std::stable_sort(single.begin(), single.end(),
                   [&](size_t a, size_t b) { return units[a][0].input.size() > units[b][0].input.size(); });
  std::vector<Unit*> batch;
  int64_t longest = 0;
  for (size_t d : single) {
    Unit* u = &units[d][0];
    const int64_t len = static_cast<int64_t>(u->input.size());
    const int64_t padded = std::max(longest, len) * static_cast<int64_t>(batch.size() + 1);
    if (!batch.empty() && (static_cast<int64_t>(batch.size()) >= limits.max_docs || padded > limits.max_tokens)) {
      run_batch(batch);
      batch.clear();
      longest = 0;
    }
    batch.push_back(u);
    longest = std::max(longest, len);
  }
  if (!batch.empty()) run_batch(batch);
  // Multi-row documents: each is a group (its own context once, its choices as branches); groups of similar size
  // (largest first) are packed into one forward up to the limits, counting padded rows as the model lays them out.
  std::vector<DocPlan> plans;
  for (size_t d : multi) plans.push_back(plan_doc(units[d]));
  std::stable_sort(plans.begin(), plans.end(), [](const DocPlan& a, const DocPlan& b) {
    return a.prefix + a.longest > b.prefix + b.longest;
  });
  std::vector<DocPlan*> group;
  int64_t pmax = 0, tb = 0, nbr = 0;
  for (DocPlan& p : plans) {
    const int64_t pm = std::max(pmax, p.prefix), t = std::max(tb, p.longest);
    const int64_t nb = nbr + static_cast<int64_t>(p.units->size());
    const int64_t rows = pm * static_cast<int64_t>(group.size() + 1) + nb * t;
    if (!group.empty() && (static_cast<int64_t>(group.size()) >= limits.max_group_docs || rows > limits.max_tokens)) {
      run_groups(group);
      group.clear();
      pmax = tb = nbr = 0;
    }
    group.push_back(&p);
    pmax = std::max(pmax, p.prefix);
    tb = std::max(tb, p.longest);
    nbr += static_cast<int64_t>(p.units->size());
  }
  if (!group.empty()) run_groups(group);
  return out;
}

TokenScorer::DocPlan TokenScorer::plan_doc(std::vector<Unit>& units) {
  // The document's shared context: the longest common prefix of its inputs, ending before the first scored row of
  // any choice so that every branch keeps at least the row that scores its first target.
  DocPlan p;
  p.units = &units;
  size_t P = units[0].input.size();
  for (const Unit& u : units) {
    P = std::min<size_t>(P, static_cast<size_t>(u.first_out));
    size_t k = 0;
    while (k < P && u.input[k] == units[0].input[k]) ++k;
    P = k;
  }
  p.prefix = static_cast<int64_t>(P);
  for (const Unit& u : units) p.longest = std::max<int64_t>(p.longest, static_cast<int64_t>(u.input.size()) - p.prefix);
  return p;
}

void TokenScorer::run_groups(const std::vector<DocPlan*>& plans) {
  std::vector<model::Model::KVSession::Group> groups;
  int64_t need = 1;
  for (const DocPlan* p : plans) {
    model::Model::KVSession::Group g;
    const std::vector<Unit>& units = *p->units;
    g.prefix.assign(units[0].input.begin(), units[0].input.begin() + static_cast<std::ptrdiff_t>(p->prefix));
    for (const Unit& u : units) {
      g.branches.emplace_back(u.input.begin() + static_cast<std::ptrdiff_t>(p->prefix), u.input.end());
      std::vector<int64_t> r;
      for (size_t i = 0; i < u.targets.size(); ++i) r.push_back(u.first_out - p->prefix + static_cast<int64_t>(i));
      stats_.model_flops += flops_.tokens(static_cast<int64_t>(g.branches.back().size()), p->prefix) +
                            flops_.head_rows(static_cast<int64_t>(r.size()));
      g.out_rows.push_back(std::move(r));
      stats_.tokens_forwarded += static_cast<int64_t>(g.branches.back().size());
    }
    stats_.tokens_forwarded += p->prefix;
    stats_.model_flops += flops_.tokens(p->prefix, 0);
    need = std::max(need, p->prefix + p->longest);
    groups.push_back(std::move(g));
  }
  ensure_capacity(need);
  session_->truncate(0);  // the groups see nothing else
  cached_.clear();
  last_logits_.clear();
  const auto logits = session_->append_groups(groups);
  SFT_CHECK(logits.size() == groups.size(), "KVSession::append_groups returned ", logits.size(), " groups, expected ",
            groups.size());
  for (size_t g = 0; g < plans.size(); ++g) {
    std::vector<Unit>& units = *plans[g]->units;
    SFT_CHECK(logits[g].size() == units.size(), "KVSession::append_groups returned ", logits[g].size(),
              " branches for group ", g);
    for (size_t b = 0; b < units.size(); ++b) {
      const Unit& u = units[b];
      SFT_CHECK(static_cast<int64_t>(logits[g][b].size()) == vocab_ * static_cast<int64_t>(u.targets.size()),
                "KVSession::append_groups returned ", logits[g][b].size(), " logits for group ", g, " branch ", b);
      LoglikelihoodResult& r = *u.results[0];
      r.logprob = 0;
      r.is_greedy = true;
      for (size_t i = 0; i < u.targets.size(); ++i) {
        auto [lp, gr] = token_logprob(logits[g][b].data() + static_cast<int64_t>(i) * vocab_, vocab_, u.targets[i]);
        r.logprob += lp;
        r.is_greedy = r.is_greedy && gr;
      }
    }
  }
}

void TokenScorer::run_batch(std::vector<Unit*>& units) {
  // Shared prefix: the longest common prefix of all inputs, ending before the first scored row of any unit so that
  // every branch keeps at least the row that scores its first target.
  size_t P = units[0]->input.size();
  for (const Unit* u : units) {
    P = std::min<size_t>(P, static_cast<size_t>(u->first_out));
    size_t k = 0;
    while (k < P && u->input[k] == units[0]->input[k]) ++k;
    P = k;
  }
  int64_t longest = 0;
  for (const Unit* u : units) longest = std::max<int64_t>(longest, static_cast<int64_t>(u->input.size()) - P);
  ensure_capacity(static_cast<int64_t>(P) + longest);
  if (P > 0) {
    set_prefix(std::vector<int32_t>(units[0]->input.begin(), units[0]->input.begin() + static_cast<std::ptrdiff_t>(P)));
  } else {
    session_->truncate(0);
    cached_.clear();
    last_logits_.clear();
  }
  std::vector<std::vector<int32_t>> branches;
  std::vector<std::vector<int64_t>> rows;
  for (const Unit* u : units) {
    branches.emplace_back(u->input.begin() + static_cast<std::ptrdiff_t>(P), u->input.end());
    std::vector<int64_t> r;
    const int64_t n_rows = u->single_row ? 1 : static_cast<int64_t>(u->targets.size());
    for (int64_t i = 0; i < n_rows; ++i) r.push_back(u->first_out - static_cast<int64_t>(P) + i);
    stats_.model_flops += flops_.tokens(static_cast<int64_t>(branches.back().size()), static_cast<int64_t>(P)) +
                          flops_.head_rows(static_cast<int64_t>(r.size()));
    rows.push_back(std::move(r));
    stats_.tokens_forwarded += static_cast<int64_t>(branches.back().size());
  }
  const auto logits = session_->append_branches(branches, rows);
  SFT_CHECK(logits.size() == units.size(), "KVSession::append_branches returned ", logits.size(), " branches, expected ",
            units.size());
  for (size_t b = 0; b < units.size(); ++b) {
    Unit* u = units[b];
    SFT_CHECK(static_cast<int64_t>(logits[b].size()) == vocab_ * static_cast<int64_t>(rows[b].size()),
              "KVSession::append_branches returned ", logits[b].size(), " logits for branch ", b);
    if (u->single_row) {
      for (size_t c = 0; c < u->targets.size(); ++c) {
        auto [lp, g] = token_logprob(logits[b].data(), vocab_, u->targets[c]);
        u->results[c]->logprob = lp;
        u->results[c]->is_greedy = g;
      }
    } else {
      LoglikelihoodResult& r = *u->results[0];
      r.logprob = 0;
      r.is_greedy = true;
      for (size_t i = 0; i < u->targets.size(); ++i) {
        auto [lp, g] = token_logprob(logits[b].data() + static_cast<int64_t>(i) * vocab_, vocab_, u->targets[i]);
        r.logprob += lp;
        r.is_greedy = r.is_greedy && g;
      }
    }
  }
}

Scorer::Scorer(model::Model& model, const tok::Tokenizer& tok, int64_t max_length)
    : model_(model), tok_(tok), max_length_(max_length), enc_(tok), engine_(model, max_length) {}

ScorerStats Scorer::stats() const {
  ScorerStats s = engine_.stats();
  if (generator_) {
    s.tokens_forwarded += generator_->stats().tokens_forwarded;
    s.tokens_generated += generator_->stats().tokens_generated;
    s.model_flops += generator_->stats().model_flops;
  }
  return s;
}

std::vector<Generation> Scorer::generate_until(const std::vector<std::string>& contexts, const UntilSettings& settings,
                                               const GenerateLimits& limits,
                                               const std::function<void(int64_t)>& on_batch) {
  if (!generator_) generator_ = std::make_unique<TokenGenerator>(model_, max_length_);
  // HFLM: the stop strings are the task's `until` plus the tokenizer's eos text (handle_stop_sequences).
  std::vector<std::string> until = settings.until;
  if (const auto eos = tok_.eos_id()) {
    const std::string eos_text = tok_.decode({*eos}, false);
    if (std::find(until.begin(), until.end(), eos_text) == until.end()) until.push_back(eos_text);
  }
  std::vector<std::vector<int32_t>> enc;
  for (const auto& c : contexts) enc.push_back(enc_.encode(c));
  // The stopping criterion decodes the generated tokens with special tokens kept and looks for each stop string.
  auto done = [&](size_t, const std::vector<int32_t>& gen) {
    const std::string text = tok_.decode(gen, false);
    for (const auto& u : until)
      if (!u.empty() && text.find(u) != std::string::npos) return true;
    return false;
  };
  const auto ids = generator_->generate(enc, settings.max_gen_toks, settings.eos_ids, done, limits, on_batch);
  std::vector<Generation> out;
  for (const auto& g : ids) out.push_back({g, cut_at_stop_strings(tok_.decode(g, true), until)});
  return out;
}

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

namespace sft::eval {

std::vector<std::vector<LoglikelihoodResult>> Scorer::score_docs(
    const std::vector<std::pair<std::string, std::vector<std::string>>>& docs, const BatchLimits& limits) {
  std::vector<std::vector<TokenRequest>> reqs(docs.size());
  for (size_t d = 0; d < docs.size(); ++d)
    for (const auto& c : docs[d].second) {
      auto [ctx, cont] = enc_.encode_pair(docs[d].first, c);
      reqs[d].push_back({std::move(ctx), std::move(cont)});
    }
  return engine_.score_docs(reqs, limits);
}

std::vector<std::vector<LoglikelihoodResult>> Scorer::score_requests(
    const std::vector<std::vector<std::pair<std::string, std::string>>>& docs, const BatchLimits& limits) {
  std::vector<std::vector<TokenRequest>> reqs(docs.size());
  for (size_t d = 0; d < docs.size(); ++d)
    for (const auto& [context, continuation] : docs[d]) {
      auto [ctx, cont] = enc_.encode_pair(context, continuation);
      reqs[d].push_back({std::move(ctx), std::move(cont)});
    }
  return engine_.score_docs(reqs, limits);
}

}  // namespace sft::eval
