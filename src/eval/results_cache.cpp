#include "eval/results_cache.h"

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file_util.h"

namespace sft::eval {

uint64_t fnv1a64(std::string_view s, uint64_t h) {
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

namespace {
std::string hex16(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}
}  // namespace

std::string model_identity(const std::filesystem::path& model_dir) {
  namespace fs = std::filesystem;
  std::vector<std::string> parts;
  for (const auto& e : fs::directory_iterator(model_dir)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || (name != "config.json" && e.path().extension() != ".safetensors")) continue;
    parts.push_back(name + ":" + std::to_string(e.file_size()) + ":" +
                    std::to_string(e.last_write_time().time_since_epoch().count()));
  }
  std::sort(parts.begin(), parts.end());
  std::string id = fs::absolute(model_dir).lexically_normal().string();
  for (const auto& p : parts) id += ";" + p;
  return id;
}

ResultsCache::ResultsCache(const std::filesystem::path& dir, const std::string& identity, const std::string& task)
    : identity_(identity), task_(task) {
  if (dir.empty()) return;
  path_ = dir / (task + "-" + hex16(fnv1a64(identity)) + ".json");
  if (!std::filesystem::exists(path_)) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path_));
  } catch (const nlohmann::json::exception& e) {
    throw Error("--use_cache: " + path_.string() + " is not a valid results cache (" + e.what() +
                "); delete it to start over");
  }
  if (!j.is_object() || j.value("identity", "") != identity_ || j.value("task", "") != task_)
    return;  // hash collision: start over
  try {
    load(j);
  } catch (const nlohmann::json::exception& e) {
    throw Error("--use_cache: " + path_.string() + " is not a valid results cache (" + e.what() +
                "); delete it to start over");
  }
}

void ResultsCache::load(const nlohmann::json& j) {
  if (j.contains("generations"))
    for (const auto& [key, v] : j.at("generations").items())
      generations_[key] = {v.at("tokens").get<std::vector<int32_t>>(), v.at("text").get<std::string>()};
  for (const auto& [key, v] : j.at("docs").items()) {
    std::vector<LoglikelihoodResult> rs;
    const auto& lls = v.at("lls");
    const auto& greedy = v.at("greedy");
    SFT_CHECK(lls.size() == greedy.size(), "--use_cache: ", path_.string(), ": doc ", key, " is malformed");
    for (size_t i = 0; i < lls.size(); ++i) {
      LoglikelihoodResult r;
      r.logprob = lls[i].get<double>();
      r.is_greedy = greedy[i].get<bool>();
      rs.push_back(r);
    }
    docs_[key] = std::move(rs);
  }
}

std::string ResultsCache::doc_key(const std::string& context, const std::vector<std::string>& continuations) {
  uint64_t h = fnv1a64(context);
  for (const auto& c : continuations) h = fnv1a64(c, fnv1a64(std::string_view("\x1f", 1), h));
  return hex16(h) + "-" + std::to_string(context.size());
}

std::string ResultsCache::requests_key(const std::vector<std::pair<std::string, std::string>>& requests) {
  uint64_t h = 1469598103934665603ULL;
  size_t n = 0;
  for (const auto& [c, x] : requests) {
    h = fnv1a64(x, fnv1a64(std::string_view("\x1e", 1), fnv1a64(c, fnv1a64(std::string_view("\x1d", 1), h))));
    n += c.size();
  }
  return hex16(h) + "-r" + std::to_string(n);
}

const Generation* ResultsCache::find_generation(const std::string& key) const {
  auto it = generations_.find(key);
  return it == generations_.end() ? nullptr : &it->second;
}

void ResultsCache::put_generation(const std::string& key, const Generation& g) {
  if (enabled()) generations_[key] = g;
}

const std::vector<LoglikelihoodResult>* ResultsCache::find(const std::string& key) const {
  auto it = docs_.find(key);
  return it == docs_.end() ? nullptr : &it->second;
}

void ResultsCache::put(const std::string& key, const std::vector<LoglikelihoodResult>& results) {
  if (enabled()) docs_[key] = results;
}

void ResultsCache::save() const {
  if (!enabled()) return;
  nlohmann::json docs = nlohmann::json::object();
  for (const auto& [key, rs] : docs_) {
    nlohmann::json lls = nlohmann::json::array(), greedy = nlohmann::json::array();
    for (const auto& r : rs) {
      lls.push_back(r.logprob);
      greedy.push_back(r.is_greedy);
    }
    docs[key] = {{"lls", lls}, {"greedy", greedy}};
  }
  nlohmann::json gens = nlohmann::json::object();
  for (const auto& [key, g] : generations_) gens[key] = {{"tokens", g.tokens}, {"text", g.text}};
  std::filesystem::create_directories(path_.parent_path());
  write_file_atomic(path_, nlohmann::json{{"identity", identity_}, {"task", task_}, {"docs", docs}, {"generations", gens}}
                                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                               "\n");
}

}  // namespace sft::eval
