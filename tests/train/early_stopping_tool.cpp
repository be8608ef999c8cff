// Driver for tests/train/test_early_stopping.py: feeds evaluation sequences to train::EarlyStopping and
// train::update_best_metric in the trainer's order (on_evaluate against the best so far, then the best update).
//   early_stopping_tool < cases.jsonl
// Each input line: {"patience": P, "threshold": T, "greater": bool, "values": [v1, v2, ...]}
// Each output line: {"counters": [...], "stop_at": k (1-based evaluation, 0 = never), "best": [...], "best_at": [...]}
// (best_at: the 1-based evaluation that set the best so far; stops are reported, the sequence is not cut).
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "train/early_stopping.h"

int main() {
  try {
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line.empty()) continue;
      const auto c = nlohmann::json::parse(line);
      sft::train::EarlyStopping es(c.at("patience").get<int64_t>(), c.at("threshold").get<double>(),
                                   c.at("greater").get<bool>());
      std::optional<double> best;
      int64_t best_at = 0, stop_at = 0, k = 0;
      nlohmann::json out = {{"counters", nlohmann::json::array()}, {"best", nlohmann::json::array()},
                            {"best_at", nlohmann::json::array()}};
      for (const auto& v : c.at("values")) {
        ++k;
        const double x = v.get<double>();
        const bool stop = es.on_evaluate(x, best);
        if (sft::train::update_best_metric(best, x, c.at("greater").get<bool>())) best_at = k;
        if (stop && stop_at == 0) stop_at = k;
        out["counters"].push_back(es.counter());
        out["best"].push_back(*best);
        out["best_at"].push_back(best_at);
      }
      out["stop_at"] = stop_at;
      std::cout << out.dump() << "\n";
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "early_stopping_tool: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
