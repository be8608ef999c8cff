#include "generate/generator.h"

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file_util.h"
#include "util/input_file.h"

namespace sft::gen {

GenerationConfig load_generation_config(const std::filesystem::path& model_dir) {
  GenerationConfig g;
  auto path = model_dir / "generation_config.json";
  if (!input_present(path)) return g;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_input_file(path, input::json_file));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + ": invalid JSON (" + e.what() + ")");
  }
  SFT_CHECK(j.is_object(), path.string(), ": expected a JSON object, got ", j.type_name());
  const std::string where = path.string() + ": ";
  // A key of the wrong type is an error naming it (transformers refuses such a file too); null means unset.
  auto present = [&](const char* key) { return j.contains(key) && !j[key].is_null(); };
  auto num = [&](const char* key, auto& out) {
    if (!present(key)) return;
    SFT_CHECK(j[key].is_number(), where, "\"", key, "\" must be a number, got ", j[key].dump());
    out = j[key].get<std::decay_t<decltype(out)>>();
  };
  auto integer = [&](const char* key, std::optional<int64_t>& out, int64_t lo) {
    if (!present(key)) return;
    SFT_CHECK(j[key].is_number_integer() && j[key].get<int64_t>() >= lo && j[key].get<int64_t>() <= (int64_t{1} << 40),
              where, "\"", key, "\" must be an integer >= ", lo, ", got ", j[key].dump());
    out = j[key].get<int64_t>();
  };
  if (present("do_sample")) {
    SFT_CHECK(j["do_sample"].is_boolean(), where, "\"do_sample\" must be true or false, got ", j["do_sample"].dump());
    g.sampling.do_sample = j["do_sample"].get<bool>();
  }
  num("temperature", g.sampling.temperature);
  if (present("top_k")) {
    SFT_CHECK(j["top_k"].is_number_integer(), where, "\"top_k\" must be an integer, got ", j["top_k"].dump());
    g.sampling.top_k = j["top_k"].get<int64_t>();
  }
  num("top_p", g.sampling.top_p);
  num("repetition_penalty", g.sampling.repetition_penalty);
  validate_sampling(g.sampling, where);
  integer("max_new_tokens", g.max_new_tokens, 0);
  integer("max_length", g.max_length, 1);
  if (present("eos_token_id")) {
    const auto& e = j["eos_token_id"];
    auto id = [&](const nlohmann::json& x) {
      SFT_CHECK(x.is_number_integer() && x.get<int64_t>() >= 0 && x.get<int64_t>() < (int64_t{1} << 31), where,
                "\"eos_token_id\" must be a token id or a list of token ids, got ", e.dump());
      return static_cast<int32_t>(x.get<int64_t>());
    };
    if (e.is_array())
      for (const auto& x : e) g.eos_token_ids.push_back(id(x));
    else
      g.eos_token_ids.push_back(id(e));
  }
  return g;
}

Generator::Generator(model::Model& model, const tok::Tokenizer& tok) : model_(model), tok_(tok) {}

void Generator::reset() {
  session_.reset();
  capacity_ = 0;
  cached_.clear();
  last_logits_.clear();
}

std::vector<float> Generator::prefill(const std::vector<int32_t>& prompt, int64_t needed, GenerateResult& r) {
  const int64_t max_pos = model_.config().max_position_embeddings;
  if (!session_ || needed > capacity_) {
    int64_t cap = std::max<int64_t>(needed, std::min<int64_t>(std::max<int64_t>(capacity_ * 2, 1024),
                                                              max_pos > 0 ? max_pos : needed));
    session_ = model_.new_session(cap);
    capacity_ = cap;
    cached_.clear();
  }
  size_t common = 0;
  while (common < cached_.size() && common < prompt.size() && cached_[common] == prompt[common]) ++common;
  size_t keep = std::min(common, prompt.size() - 1);  // recompute >= 1 token to get the next-token logits
  session_->truncate(static_cast<int64_t>(keep));
  std::vector<int32_t> rest(prompt.begin() + static_cast<std::ptrdiff_t>(keep), prompt.end());
  r.prefill_tokens = static_cast<int64_t>(rest.size());
  cached_ = prompt;
  return session_->append(rest, false);
}

GenerateResult Generator::generate(const std::vector<int32_t>& prompt, const GenerateOptions& opts,
                                   const std::function<void(const std::string&)>& on_text) {
  SFT_CHECK(!prompt.empty(), "generate: the prompt encodes to zero tokens");
  SFT_CHECK(opts.max_new_tokens >= 0, "max_new_tokens must be >= 0");
  GenerateResult r;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  const int64_t max_pos = model_.config().max_position_embeddings;
  int64_t budget = opts.max_new_tokens;
  if (max_pos > 0) {
    SFT_CHECK(r.prompt_tokens < max_pos, "the prompt has ", r.prompt_tokens,
              " tokens, the model's max_position_embeddings is ", max_pos);
    budget = std::min<int64_t>(budget, max_pos - r.prompt_tokens);
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits = prefill(prompt, r.prompt_tokens + budget, r);
  auto t1 = std::chrono::steady_clock::now();
  r.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();

  std::mt19937_64 rng(opts.seed);
  std::vector<int32_t> seen(prompt);
  tok::StreamDecoder dec(tok_, true);
  std::string pending;  // decoded text not yet handed to on_text (could start a stop string)
  auto emit = [&](const std::string& s) {
    r.text += s;
    if (on_text && !s.empty()) on_text(s);
  };
  // Returns true when a stop string completed; emits everything that can no longer become part of one.
  auto flush_pending = [&](bool final) {
    for (const auto& s : opts.stop_strings) {
      if (s.empty()) continue;
      size_t hit = pending.find(s);
      if (hit != std::string::npos) {
        emit(pending.substr(0, hit));
        pending.clear();
        return true;
      }
    }
    size_t hold = 0;
    if (!final)
      for (const auto& s : opts.stop_strings) {
        if (s.empty()) continue;
        for (size_t len = std::min(s.size() - 1, pending.size()); len > hold; --len)
          if (pending.compare(pending.size() - len, len, s, 0, len) == 0) {
            hold = len;
            break;
          }
      }
    emit(pending.substr(0, pending.size() - hold));
    pending.erase(0, pending.size() - hold);
    return false;
  };

  r.stop_reason = budget < opts.max_new_tokens ? "max_length" : "max_new_tokens";
  for (int64_t step = 0; step < budget; ++step) {
    int32_t next = select_next_token(logits, seen, opts.sampling, rng);
    r.tokens.push_back(next);
    seen.push_back(next);
    if (std::find(opts.eos_ids.begin(), opts.eos_ids.end(), next) != opts.eos_ids.end()) {
      r.stop_reason = "eos";
      break;
    }
    pending += dec.push(next);
    if (flush_pending(false)) {
      r.stop_reason = "stop_string";
      break;
    }
    if (step + 1 == budget) break;  // no forward pass for a token that would never be used
    logits = session_->append({next}, false);
    cached_.push_back(next);
  }
  if (r.stop_reason != "stop_string") {
    pending += dec.flush();
    if (flush_pending(true)) r.stop_reason = "stop_string";
  }
  // The cache holds exactly the tokens that were appended (the last sampled token was never fed back).
  r.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  return r;
}

}  // namespace sft::gen
