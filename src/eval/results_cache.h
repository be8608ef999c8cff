// Resumable per-task results cache (`sft eval --use_cache DIR`): the log-likelihoods of every scored document, so an
// interrupted run (or a later run with a larger --limit) only scores what is missing.
//
// One file per task and identity: DIR/<task>-<16 hex of FNV-1a(identity)>.json, written atomically (temp + fsync +
// rename) whenever the evaluator checkpoints. `identity` names everything the numbers depend on besides the request
// strings (model folder + its files' sizes and times, dtype, max_length, backend; built by the CLI). Each document is
// keyed by a hash of its request strings (context and continuations), so a changed prompt, few-shot draw or data
// file never reuses a stale score.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/scorer.h"

namespace sft::eval {

uint64_t fnv1a64(std::string_view s, uint64_t h = 1469598103934665603ULL);
// The model part of a cache identity: absolute folder, and name/size/mtime of config.json and every *.safetensors.
std::string model_identity(const std::filesystem::path& model_dir);

class ResultsCache {
 public:
  ResultsCache() = default;  // disabled
  ResultsCache(const std::filesystem::path& dir, const std::string& identity, const std::string& task);
  bool enabled() const { return !path_.empty(); }
  static std::string doc_key(const std::string& context, const std::vector<std::string>& continuations);
  // A document of several (context, continuation) requests (partial evaluation), or a generation (the context and
  // the generation settings as the "continuations").
  static std::string requests_key(const std::vector<std::pair<std::string, std::string>>& requests);
  // Cached results for a document, or nullptr.
  const std::vector<LoglikelihoodResult>* find(const std::string& key) const;
  void put(const std::string& key, const std::vector<LoglikelihoodResult>& results);
  const Generation* find_generation(const std::string& key) const;
  void put_generation(const std::string& key, const Generation& g);
  void save() const;  // atomic; a no-op when disabled
  const std::filesystem::path& path() const { return path_; }

 private:
  void load(const nlohmann::json& j);
  std::filesystem::path path_;
  std::string identity_, task_;
  std::unordered_map<std::string, std::vector<LoglikelihoodResult>> docs_;
  std::unordered_map<std::string, Generation> generations_;
};

}  // namespace sft::eval
