#include "train/train_config.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "train/train_settings.h"
#include "util/error.h"

namespace sft::train {

namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
constexpr int64_t kMaxSteps = int64_t{1} << 40;  // far beyond any run; keeps step arithmetic far from overflow

}  // namespace

int64_t TrainConfig::total_steps(int64_t updates_per_epoch) const {
  if (max_steps > 0) return max_steps;
  const double steps = std::ceil(num_train_epochs * static_cast<double>(updates_per_epoch));
  SFT_CHECK(std::isfinite(steps) && steps >= 1 && steps <= static_cast<double>(kMaxSteps), "--num_train_epochs ",
            num(num_train_epochs), " gives ", num(steps), " optimizer steps (", updates_per_epoch,
            " per epoch); expected between 1 and 2^40");
  return static_cast<int64_t>(steps);
}

void TrainConfig::validate() const { validate_settings(*this); }

namespace {
std::vector<std::string> split_list(const std::string& s, const char* flag) {
  std::vector<std::string> out;
  size_t b = 0;
  while (b <= s.size()) {
    const size_t e = std::min(s.find(',', b), s.size());
    std::string item = s.substr(b, e - b);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    SFT_CHECK(!item.empty(), flag, ": empty module name in '", s, "'");
    out.push_back(item);
    b = e + 1;
  }
  return out;
}
}  // namespace

io::LoraAdapterConfig TrainConfig::lora_config() const {
  io::LoraAdapterConfig c;
  c.base_model_name_or_path = model_name_or_path;
  c.r = lora_r;
  c.lora_alpha = lora_alpha;
  c.lora_dropout = lora_dropout;
  c.use_rslora = use_rslora;
  if (lora_target_modules.empty()) {
    c.target_modules = {"q_proj", "v_proj"};  // peft's default for qwen2 / llama / qwen3
  } else if (lora_target_modules == "all-linear" || lora_target_modules == "ALL-LINEAR") {
    c.target_modules = {"all-linear"};
    c.target_is_string = true;
  } else {
    c.target_modules = split_list(lora_target_modules, "--lora_target_modules");
  }
  if (!lora_modules_to_save.empty()) c.modules_to_save = split_list(lora_modules_to_save, "--lora_modules_to_save");
  return c;
}

std::string TrainConfig::to_json() const { return settings_to_json(*this); }

std::string TrainConfig::best_metric_name() const {
  if (!metric_for_best_model.empty()) return metric_for_best_model;
  return load_best_model_at_end ? "loss" : "";  // TrainingArguments.__post_init__
}

bool TrainConfig::best_metric_greater() const {
  if (greater_is_better >= 0) return greater_is_better == 1;
  const std::string m = best_metric_name();
  if (m.empty()) return false;  // nothing is compared
  return !(m.size() >= 4 && m.compare(m.size() - 4, 4, "loss") == 0);
}

bool TrainConfig::reports_to(std::string_view integration) const {
  size_t b = 0;
  while (b <= report_to.size()) {
    const size_t e = std::min(report_to.find(',', b), report_to.size());
    const std::string_view item = std::string_view(report_to).substr(b, e - b);
    if (item == integration || (item == "all" && integration == "tensorboard")) return true;  // "all" = installed ones
    b = e + 1;
  }
  return false;
}

}  // namespace sft::train
