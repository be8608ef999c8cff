// Next-token selection with Hugging Face transformers semantics (generation/logits_process.py), applied in HF's order:
// repetition penalty -> temperature -> top-k -> top-p -> softmax -> multinomial draw; greedy = argmax of the
// penalised logits (first maximum, as torch.argmax). The random draw uses our own seeded RNG (std::mt19937_64), so
// sampled text is reproducible with --seed but is not torch's stream.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace sft::gen {

struct SamplingParams {
  bool do_sample = false;
  float temperature = 1.0f;         // HF TemperatureLogitsWarper: logits / t (sampling only)
  int64_t top_k = 50;               // HF TopKLogitsWarper: 0 disables; ties with the k-th value are kept
  float top_p = 1.0f;               // HF TopPLogitsWarper: 1.0 disables
  float repetition_penalty = 1.0f;  // HF RepetitionPenaltyLogitsProcessor over prompt + generated ids
};

// Checks every field's range (HF GenerationConfig.validate's rules: temperature >= 0, top_k >= 0, top_p in [0, 1],
// repetition_penalty > 0, all finite); throws sft::Error "<where><field> ..." naming the first bad one.
// `where` is e.g. "--" for flags or "generation_config.json: " for the file.
void validate_sampling(const SamplingParams& p, const std::string& where);

// In place on one row of logits [V]. `seen` = every id of the prompt and the generated tokens so far.
void apply_repetition_penalty(std::vector<float>& logits, const std::vector<int32_t>& seen, float penalty);
void apply_temperature(std::vector<float>& logits, float temperature);
void apply_top_k(std::vector<float>& logits, int64_t top_k);  // removed entries become -inf
void apply_top_p(std::vector<float>& logits, float top_p);    // removed entries become -inf
int32_t argmax(const std::vector<float>& logits);
// Full pipeline. `logits` is consumed (modified).
int32_t select_next_token(std::vector<float>& logits, const std::vector<int32_t>& seen, const SamplingParams& p,
                          std::mt19937_64& rng);

}  // namespace sft::gen
