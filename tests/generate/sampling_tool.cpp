// Driver for test_sampling_processors.py: applies our logits processors to rows read as JSON from stdin so the test
// can compare them with transformers' own LogitsProcessor classes.
// stdin: {"cases": [{"logits": [...], "seen": [...], "penalty": p, "temperature": t, "top_k": k, "top_p": q}, ...]}
// stdout: {"penalty": [[...]], "temperature": [[...]], "top_k": [[...]], "top_p": [[...]], "greedy": [id, ...]}
#include <cmath>
#include <iostream>
#include <iterator>
#include <random>

#include <nlohmann/json.hpp>

#include "generate/sampling.h"

int main() {
  using nlohmann::json;
  std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  json req = json::parse(in), out;
  auto dump = [](const std::vector<float>& v) {
    json a = json::array();
    for (float x : v) a.push_back(std::isinf(x) ? json("-inf") : json(x));
    return a;
  };
  for (const auto& c : req["cases"]) {
    auto logits = c["logits"].get<std::vector<float>>();
    auto seen = c["seen"].get<std::vector<int32_t>>();
    auto a = logits;
    sft::gen::apply_repetition_penalty(a, seen, c["penalty"].get<float>());
    out["penalty"].push_back(dump(a));
    auto b = logits;
    sft::gen::apply_temperature(b, c["temperature"].get<float>());
    out["temperature"].push_back(dump(b));
    auto k = logits;
    sft::gen::apply_top_k(k, c["top_k"].get<int64_t>());
    out["top_k"].push_back(dump(k));
    auto p = logits;
    sft::gen::apply_top_p(p, c["top_p"].get<float>());
    out["top_p"].push_back(dump(p));
    auto g = logits;
    sft::gen::SamplingParams sp;
    sp.repetition_penalty = c["penalty"].get<float>();
    std::mt19937_64 rng(0);
    out["greedy"].push_back(sft::gen::select_next_token(g, seen, sp, rng));
  }
  std::cout << out.dump() << "\n";
  return 0;
}
