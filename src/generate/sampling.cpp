#include "generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "util/error.h"

namespace sft::gen {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void apply_repetition_penalty(std::vector<float>& logits, const std::vector<int32_t>& seen, float penalty) {
  if (penalty == 1.0f) return;
  SFT_CHECK(penalty > 0, "repetition_penalty must be > 0, got ", penalty);
  // HF gathers the scores of the ids, penalises and scatters back: each distinct id is penalised once.
  std::vector<int32_t> ids(seen);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (int32_t id : ids) {
    if (id < 0 || id >= static_cast<int32_t>(logits.size())) continue;
    float& s = logits[static_cast<size_t>(id)];
    s = s < 0 ? s * penalty : s / penalty;
  }
}

void apply_temperature(std::vector<float>& logits, float temperature) {
  SFT_CHECK(temperature > 0, "temperature must be > 0 when sampling, got ", temperature);
  if (temperature == 1.0f) return;
  for (float& x : logits) x /= temperature;
}

void apply_top_k(std::vector<float>& logits, int64_t top_k) {
  if (top_k <= 0 || top_k >= static_cast<int64_t>(logits.size())) return;
  std::vector<float> sorted(logits);
  std::nth_element(sorted.begin(), sorted.begin() + (top_k - 1), sorted.end(), std::greater<float>());
  float kth = sorted[static_cast<size_t>(top_k - 1)];
  for (float& x : logits)
    if (x < kth) x = kNegInf;  // scores < topk(...)[-1] are removed, ties kept
}

void validate_sampling(const SamplingParams& p, const std::string& where) {
  SFT_CHECK(std::isfinite(p.temperature) && p.temperature >= 0, where, "temperature: expected a finite number >= 0, got ",
            p.temperature);
  SFT_CHECK(p.top_k >= 0, where, "top_k: expected an integer >= 0 (0 disables), got ", p.top_k);
  SFT_CHECK(std::isfinite(p.top_p) && p.top_p >= 0 && p.top_p <= 1, where, "top_p: expected a number in [0, 1] ",
            "(1 disables), got ", p.top_p);
  SFT_CHECK(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0, where,
            "repetition_penalty: expected a finite number > 0 (1 disables), got ", p.repetition_penalty);
}

void apply_top_p(std::vector<float>& logits, float top_p) {
  SFT_CHECK(top_p >= 0.0f && top_p <= 1.0f, "top_p must be in [0, 1], got ", top_p);
  if (top_p >= 1.0f) return;
  const size_t V = logits.size();
  // HF: sort ascending, cumulative softmax, remove where cumprob <= 1 - top_p, always keep the largest.
  std::vector<size_t> order(V);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] < logits[b]; });
  float mx = logits[order[V - 1]];
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - mx);
  double cum = 0;
  for (size_t i = 0; i < V; ++i) {
    cum += std::exp(static_cast<double>(logits[order[i]]) - mx) / sum;
    if (i + 1 < V && cum <= 1.0 - static_cast<double>(top_p)) logits[order[i]] = kNegInf;
  }
}

int32_t argmax(const std::vector<float>& logits) {
  SFT_CHECK(!logits.empty(), "argmax of empty logits");
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

int32_t select_next_token(std::vector<float>& logits, const std::vector<int32_t>& seen, const SamplingParams& p,
                          std::mt19937_64& rng) {
  apply_repetition_penalty(logits, seen, p.repetition_penalty);
  if (!p.do_sample) return argmax(logits);
  apply_temperature(logits, p.temperature);
  apply_top_k(logits, p.top_k);
  apply_top_p(logits, p.top_p);
  float mx = logits[static_cast<size_t>(argmax(logits))];
  std::vector<double> probs(logits.size());
  double sum = 0;
  for (size_t i = 0; i < logits.size(); ++i) sum += probs[i] = std::exp(static_cast<double>(logits[i]) - mx);
  double u = std::uniform_real_distribution<double>(0.0, sum)(rng);
  double acc = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    acc += probs[i];
    if (u < acc && probs[i] > 0) return static_cast<int32_t>(i);
  }
  return argmax(logits);  // u landed on the rounding slack at the very end
}

}  // namespace sft::gen
