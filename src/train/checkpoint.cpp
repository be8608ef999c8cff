#include "train/checkpoint.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <regex>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "io/hf_folder.h"
#include "util/error.h"
#include "util/json_number.h"

namespace sft::train {

namespace fs = std::filesystem;

namespace {

// Text written by %.17g; anything else (a hand-edited or corrupt file) is an error naming the key.
double parse_double_text(const std::string& text, const std::string& where) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text.c_str(), &end);
  SFT_CHECK(!text.empty() && end && *end == '\0' && errno == 0 && std::isfinite(v), where,
            ": expected a finite number as text, got \"", text, "\"");
  return v;
}

// Prefixes of the temporary folders sft writes into output_dir: a checkpoint or final model being built, and an
// old checkpoint being deleted (renamed first, so that a kill mid-delete never leaves a half-deleted checkpoint-N).
constexpr const char* kTmpPrefix = ".tmp-";
constexpr const char* kDeletingPrefix = ".deleting-";

}  // namespace

std::string trainer_state_to_json(const TrainerState& s) {
  nlohmann::ordered_json j;
  j["global_step"] = s.global_step;
  j["epoch"] = s.epoch;
  j["max_steps"] = s.max_steps;
  j["num_train_epochs"] = s.num_train_epochs;
  j["logging_steps"] = s.logging_steps;
  j["save_steps"] = s.save_steps;
  j["eval_steps"] = s.eval_steps;
  j["train_batch_size"] = s.train_batch_size;
  j["best_metric"] = s.best_metric ? nlohmann::ordered_json(*s.best_metric) : nlohmann::ordered_json(nullptr);
  j["best_model_checkpoint"] =
      s.best_model_checkpoint.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(s.best_model_checkpoint);
  auto hist = nlohmann::ordered_json::array();
  for (const auto& r : s.log_history) hist.push_back(nlohmann::ordered_json::parse(log_row_json(r)));
  j["log_history"] = hist;
  nlohmann::ordered_json r;
  r["loader_epoch"] = s.loader_epoch;
  r["loader_index"] = s.loader_index;
  // Window sums are stored as exact decimal text of the double (%.17g round-trips).
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", s.window.loss_sum);
  r["window_loss_sum"] = std::string(buf);
  r["window_targets"] = s.window.targets;
  r["window_tokens"] = s.window.tokens;
  r["window_steps"] = s.window.steps;
  std::snprintf(buf, sizeof buf, "%.17g", s.window.model_flops);
  r["window_model_flops"] = std::string(buf);
  r["seed"] = s.seed;
  r["rows_per_micro_batch"] = s.rows_per_micro_batch;
  j["sft_resume"] = r;
  return j.dump(2) + "\n";
}

TrainerState trainer_state_from_json(const std::string& text, const std::string& path) {
  TrainerState s;
  try {
    auto j = nlohmann::json::parse(text);
    // Integers through json_integer: a float there (1e300) would be undefined behaviour in get<int64_t>().
    const auto integer = [&](const nlohmann::json& o, const char* key) { return json_integer(o.at(key), path + ": " + key, 0); };
    const auto integer_or = [&](const nlohmann::json& o, const char* key, int64_t dflt) {  // -1 allowed (eval_steps)
      return o.contains(key) ? json_integer(o.at(key), path + ": " + key, -1) : dflt;
    };
    s.global_step = integer(j, "global_step");
    s.epoch = j.value("epoch", 0.0);
    s.max_steps = integer_or(j, "max_steps", 0);
    s.num_train_epochs = j.value("num_train_epochs", 0.0);
    s.logging_steps = integer_or(j, "logging_steps", 0);
    s.save_steps = integer_or(j, "save_steps", 0);
    s.eval_steps = integer_or(j, "eval_steps", 0);
    s.train_batch_size = integer_or(j, "train_batch_size", 0);
    if (j.contains("best_metric") && !j["best_metric"].is_null()) s.best_metric = j["best_metric"].get<double>();
    if (j.contains("best_model_checkpoint") && !j["best_model_checkpoint"].is_null())
      s.best_model_checkpoint = j["best_model_checkpoint"].get<std::string>();
    for (const auto& row : j.at("log_history")) s.log_history.push_back(log_row_from_json(row.dump()));
    const auto& r = j.at("sft_resume");
    s.loader_epoch = integer(r, "loader_epoch");
    s.loader_index = integer(r, "loader_index");
    s.window.loss_sum = parse_double_text(r.at("window_loss_sum").get<std::string>(), path + ": sft_resume.window_loss_sum");
    s.window.targets = integer(r, "window_targets");
    s.window.tokens = integer(r, "window_tokens");
    s.window.steps = integer(r, "window_steps");
    if (r.contains("window_model_flops"))
      s.window.model_flops = parse_double_text(r.at("window_model_flops").get<std::string>(),
                                               path + ": sft_resume.window_model_flops");
    SFT_CHECK(r.at("seed").is_number_integer(), path, ": seed: expected an integer, got ", r.at("seed").dump());
    s.seed = r.at("seed").get<uint64_t>();
    s.rows_per_micro_batch = integer_or(r, "rows_per_micro_batch", 0);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not a trainer_state.json written by sft train (" + e.what() + ")");
  }
  SFT_CHECK(s.global_step >= 0 && s.max_steps >= 0 && s.loader_epoch >= 0 && s.loader_index >= 0 &&
                s.window.targets >= 0 && s.window.tokens >= 0 && s.window.steps >= 0 && std::isfinite(s.epoch),
            path, ": global_step, max_steps, the loader position and the window counts must be non-negative");
  SFT_CHECK(s.global_step <= s.max_steps, path, ": global_step ", s.global_step, " is past max_steps ", s.max_steps);
  return s;
}

void copy_model_side_files(const fs::path& base_dir, const fs::path& dst_dir) {
  SFT_CHECK(fs::exists(base_dir / "tokenizer.json") || io::is_gguf_file(base_dir), base_dir.string(),
            ": base model folder has no tokenizer.json to copy into the output");
  io::copy_tokenizer_files(base_dir, dst_dir);  // tokenizer files, chat template, generation_config.json
}

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& output_dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  if (!fs::is_directory(output_dir)) return out;
  static const std::regex re("checkpoint-([0-9]+)");
  for (const auto& e : fs::directory_iterator(output_dir)) {
    std::smatch m;
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || !std::regex_match(name, m, re)) continue;
    int64_t step = 0;
    const std::string digits = m[1].str();
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), step);
    SFT_CHECK(ec == std::errc() && end == digits.data() + digits.size(), e.path().string(),
              ": the step number of this checkpoint folder is out of range (not written by sft train; move it away)");
    out.emplace_back(step, e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

fs::path last_checkpoint(const fs::path& output_dir) {
  auto all = list_checkpoints(output_dir);
  SFT_CHECK(!all.empty(), "--resume_from_checkpoint last: no checkpoint-N folder in ", output_dir.string());
  return all.back().second;
}

std::vector<fs::path> rotate_checkpoints(const fs::path& output_dir, int64_t limit, const fs::path& keep) {
  std::vector<fs::path> deleted;
  if (limit <= 0) return deleted;
  auto all = list_checkpoints(output_dir);
  int64_t remaining = static_cast<int64_t>(all.size());
  for (const auto& [step, dir] : all) {
    if (remaining <= limit) break;
    if (!keep.empty() && fs::weakly_canonical(dir) == fs::weakly_canonical(keep)) continue;
    remove_dir_safely(dir);
    deleted.push_back(dir);
    --remaining;
  }
  return deleted;
}

void remove_dir_safely(const fs::path& dir) {
  // Renamed first (atomic): a kill during the recursive delete leaves a .deleting-* folder, never a checkpoint-N
  // that looks complete and is not. remove_stale_temporaries() clears such leftovers on the next run.
  const fs::path doomed = dir.parent_path() / (std::string(kDeletingPrefix) + dir.filename().string());
  std::error_code ec;
  fs::remove_all(doomed, ec);
  fs::rename(dir, doomed);
  fs::remove_all(doomed);
}

std::vector<fs::path> remove_stale_temporaries(const fs::path& output_dir) {
  std::vector<fs::path> removed;
  if (!fs::is_directory(output_dir)) return removed;
  for (const auto& e : fs::directory_iterator(output_dir)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(kTmpPrefix, 0) == 0 || name.rfind(kDeletingPrefix, 0) == 0) removed.push_back(e.path());
  }
  for (const auto& p : removed) fs::remove_all(p);
  return removed;
}

void move_files_into(const fs::path& src_dir, const fs::path& dst_dir) {
  // trainer_state.json marks a finished model folder: it moves last, after the weights.
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(src_dir))
    if (e.is_regular_file()) files.push_back(e.path());
  std::stable_partition(files.begin(), files.end(), [](const fs::path& p) { return p.filename() != "trainer_state.json"; });
  for (const auto& f : files) fs::rename(f, dst_dir / f.filename());
  fs::remove_all(src_dir);
}

void remove_previous_outputs(const fs::path& output_dir) {
  for (const auto& [step, dir] : list_checkpoints(output_dir)) remove_dir_safely(dir);
  std::vector<std::string> names = {"trainer_log.jsonl", "trainer_state.json", "training_args.json", "loss_curve.svg",
                                    "config.json", "model.safetensors", "model.safetensors.index.json",
                                    "adapter_model.safetensors", "adapter_config.json"};
  for (const auto& f : io::tokenizer_file_names()) names.push_back(f);
  for (const auto& e : fs::directory_iterator(output_dir)) {  // shards model-0000k-of-0000n.safetensors
    const std::string n = e.path().filename().string();
    if (n.rfind("model-", 0) == 0 && n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) names.push_back(n);
  }
  for (const auto& n : names) fs::remove(output_dir / n);
}

}  // namespace sft::train
