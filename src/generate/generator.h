// Autoregressive generation with a KV cache (model::Model::KVSession): prefill the prompt once, then one token per
// step. The cache is kept between calls and the longest common token prefix is reused, so `sft chat` only computes
// each new turn. Stops on any eos id, on stop strings (matched on the decoded text, which is cut before the stop
// string) or after max_new_tokens. Text is streamed through tok::StreamDecoder (complete UTF-8 only), holding back any
// tail that could still become a stop string.
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "generate/sampling.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

namespace sft::gen {

// generation_config.json of an HF folder, with transformers' GenerationConfig defaults for absent keys.
struct GenerationConfig {
  SamplingParams sampling;            // do_sample false, temperature 1, top_k 50, top_p 1, repetition_penalty 1
  std::optional<int64_t> max_new_tokens;
  std::optional<int64_t> max_length;  // 20 in transformers when neither is set
  std::vector<int32_t> eos_token_ids;  // eos_token_id (int or list)
};
// Returns defaults when the file does not exist; throws naming the file on invalid JSON.
GenerationConfig load_generation_config(const std::filesystem::path& model_dir);

struct GenerateOptions {
  SamplingParams sampling;
  int64_t max_new_tokens = 256;
  std::vector<int32_t> eos_ids;       // generation stops after emitting one of these (not included in text)
  std::vector<std::string> stop_strings;
  uint64_t seed = 0;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (the eos id that stopped generation included)
  std::string text;             // decoded (special tokens skipped), cut before a stop string
  std::string stop_reason;      // "eos", "stop_string", "max_new_tokens", "max_length"
  int64_t prompt_tokens = 0, prefill_tokens = 0;  // prefill_tokens: prompt tokens not already in the cache
  double prefill_seconds = 0, decode_seconds = 0;
};

class Generator {
 public:
  Generator(model::Model& model, const tok::Tokenizer& tok);
  // on_text receives streamed text pieces (may be empty-callback).
  GenerateResult generate(const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                          const std::function<void(const std::string&)>& on_text = {});
  void reset();  // forget the cache

 private:
  std::vector<float> prefill(const std::vector<int32_t>& prompt, int64_t needed, GenerateResult& r);

  model::Model& model_;
  const tok::Tokenizer& tok_;
  std::unique_ptr<model::Model::KVSession> session_;
  int64_t capacity_ = 0;
  std::vector<int32_t> cached_;
  std::vector<float> last_logits_;
};

}  // namespace sft::gen
