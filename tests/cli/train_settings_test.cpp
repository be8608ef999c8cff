// The settings table of `sft train` (src/train/train_settings.cpp) checked row by row: whatever a row says (type,
// values, range, aliases, ignored) is what parsing, validation, training_args.json and --help do. (train_flags.cpp is
// compiled into train_flags_test.cpp, which shares this binary, so only public declarations are used here.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "cli/train_flags.h"
#include "train/train_settings.h"
#include "util/error.h"

namespace sft::cli {
namespace {

using train::Setting;
using train::SettingType;
using train::TrainConfig;

// A config that validates: the required paths, --max_steps so that --num_train_epochs may be 0, and evaluation data
// with a metric so that the early-stopping rows' prerequisites hold.
TrainConfig valid_config() {
  TrainConfig c = parse_train_args({"--model_name_or_path", "m", "--dataset_path", "d", "--output_dir", "o",
                                    "--max_steps", "5", "--eval_strategy", "steps", "--validation_split", "0.1",
                                    "--metric_for_best_model", "eval_loss"}).cfg;
  c.validate();
  return c;
}

std::string validation_error(const TrainConfig& c) {
  try {
    c.validate();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::string number_text(double v, bool integer) {
  if (integer) return std::to_string(static_cast<int64_t>(v));
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

TEST(TrainSettings, NamesAndAliasesAreUnique) {
  std::set<std::string_view> seen;
  for (const Setting& s : train::train_settings()) {
    EXPECT_TRUE(seen.insert(s.name).second) << s.name;
    for (std::string_view a : s.aliases) EXPECT_TRUE(seen.insert(a).second) << a;
    EXPECT_EQ(train::find_setting(s.name), &s);
    EXPECT_FALSE(s.help.empty()) << s.name;
  }
  EXPECT_EQ(train::find_setting("evaluation_strategy"), train::find_setting("eval_strategy"));
  EXPECT_EQ(train::find_setting("no_such_flag"), nullptr);
}

TEST(TrainSettings, EveryEnumValueIsAcceptedAndOthersAreRefusedNamingThem) {
  int enums = 0;
  for (const Setting& s : train::train_settings()) {
    if (s.type != SettingType::Enum) continue;
    ++enums;
    SCOPED_TRACE(std::string(s.name));
    for (std::string_view v : s.choices) {
      TrainConfig c = valid_config();
      train::apply_setting(c, s, s.name, std::string(v));
      EXPECT_EQ(validation_error(c), "") << v;  // the parsers behind the row (lr schedule, template...) agree
    }
    TrainConfig c = valid_config();
    train::apply_setting(c, s, s.name, "not-a-value");
    const std::string msg = validation_error(c);
    EXPECT_EQ(msg.rfind("--" + std::string(s.name) + ": expected one of ", 0), 0u) << msg;
    for (std::string_view v : s.choices) EXPECT_NE(msg.find(v), std::string::npos) << msg;
    EXPECT_NE(msg.find("'not-a-value'"), std::string::npos) << msg;
  }
  EXPECT_GE(enums, 8);
}

TEST(TrainSettings, RangesAcceptTheirEdgesAndRefuseBeyondNamingTheFlag) {
  int ranges = 0;
  for (const Setting& s : train::train_settings()) {
    if (!s.range) continue;
    ++ranges;
    SCOPED_TRACE(std::string(s.name));
    const bool integer = s.type == SettingType::Int;
    const train::SettingRange& r = *s.range;
    auto outcome = [&](double v) {
      TrainConfig c = valid_config();
      train::apply_setting(c, s, s.name, number_text(v, integer));
      return validation_error(c);
    };
    const double below = r.lo_open ? r.lo : integer ? r.lo - 1 : std::nextafter(r.lo, -INFINITY);
    const double above = r.hi_open ? r.hi : integer ? r.hi + 1 : std::nextafter(r.hi, INFINITY);
    if (!r.lo_open) {
      EXPECT_EQ(outcome(r.lo), "");
    }
    if (!r.hi_open) {
      EXPECT_EQ(outcome(r.hi), "");
    }
    for (double bad : {below, above}) {
      const std::string msg = outcome(bad);
      EXPECT_EQ(msg.rfind("--" + std::string(s.name) + ": expected ", 0), 0u) << bad << ": " << msg;
    }
  }
  EXPECT_GE(ranges, 20);
}

TEST(TrainSettings, ListItemsAreCheckedAgainstTheirValues) {
  // A list row with values (as --report_to will be): each comma-separated item must be one of them.
  Setting s;
  s.name = "lora_target_modules";
  s.type = SettingType::List;
  s.field = &TrainConfig::lora_target_modules;
  s = std::move(s).one_of({"q_proj", "v_proj"});
  EXPECT_EQ(s.type, SettingType::List);
  TrainConfig c;
  c.lora_target_modules = "v_proj,q_proj";
  EXPECT_NO_THROW(train::check_setting(s, c));
  c.lora_target_modules = "q_proj,o_proj";
  try {
    train::check_setting(s, c);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "--lora_target_modules: expected one of q_proj, v_proj, got 'o_proj'");
  }
}

TEST(TrainSettings, TypedValuesAreParsedAndBadOnesNameTheSpelledFlag) {
  TrainConfig c;
  const Setting& drop_last = *train::find_setting("dataloader_drop_last");
  for (const char* v : {"True", "true", "1"}) {
    train::apply_setting(c, drop_last, "dataloader_drop_last", v);
    EXPECT_TRUE(c.data_loader_drop_last) << v;
    train::apply_setting(c, drop_last, "dataloader_drop_last", "False");
    EXPECT_FALSE(c.data_loader_drop_last);
  }
  try {
    train::apply_setting(c, drop_last, "dataloader_drop_last", "maybe");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "--dataloader_drop_last: expected True/False/true/false/1/0, got 'maybe'");
  }
  EXPECT_THROW(train::apply_setting(c, *train::find_setting("seed"), "seed", "1.5"), Error);
  train::apply_setting(c, *train::find_setting("seed"), "seed", "7");
  EXPECT_EQ(c.seed, 7u);
  // The tri-state bool: unset is JSON null, set is a bool.
  EXPECT_TRUE(nlohmann::json::parse(TrainConfig{}.to_json())["greater_is_better"].is_null());
  train::apply_setting(c, *train::find_setting("greater_is_better"), "greater_is_better", "True");
  EXPECT_EQ(nlohmann::json::parse(c.to_json())["greater_is_better"], true);
}

TEST(TrainSettings, IgnoredFlagsChangeNothingAndSayWhy) {
  int ignored = 0;
  for (const Setting& s : train::train_settings()) {
    if (!s.ignored() || s.act) continue;
    ++ignored;
    SCOPED_TRACE(std::string(s.name));
    TrainConfig c;
    const std::string value = s.is_bool() ? "False" : !s.choices.empty() ? std::string(s.choices[0]) : "x";
    const std::string note = train::apply_setting(c, s, s.name, value);
    EXPECT_EQ(c.to_json(), TrainConfig{}.to_json());
    EXPECT_EQ(note, "note: --" + std::string(s.name) + " " + value + " ignored: " + std::string(s.help));
    if (s.is_bool()) {
      EXPECT_THROW(train::apply_setting(c, s, s.name, "maybe"), Error);
    }
  }
  EXPECT_GE(ignored, 10);
  // --fp16 and --optim act: bf16 compute; only AdamW spellings.
  TrainConfig c;
  EXPECT_EQ(train::apply_setting(c, *train::find_setting("fp16"), "fp16", "0"), "");
  EXPECT_FALSE(c.bf16);
  EXPECT_NE(train::apply_setting(c, *train::find_setting("fp16"), "fp16", "1").find("--fp16 True"), std::string::npos);
  EXPECT_TRUE(c.bf16);
  EXPECT_THROW(train::apply_setting(c, *train::find_setting("optim"), "optim", "sgd"), Error);
}

TEST(TrainSettings, LoraSettingsChangedComparesWithTheDefaults) {
  TrainConfig c;
  EXPECT_FALSE(train::lora_settings_changed(c));
  c.lora_dropout = TrainConfig{}.lora_dropout;  // given but equal to the default: nothing to note
  EXPECT_FALSE(train::lora_settings_changed(c));
  for (const char* flag : {"lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "use_rslora"}) {
    TrainConfig d;
    const Setting& s = *train::find_setting(flag);
    const char* value = s.is_bool()                     ? "True"
                        : s.type == SettingType::List   ? "q_proj"
                        : s.type == SettingType::Int    ? "8"
                                                        : "0.5";
    train::apply_setting(d, s, flag, value);
    EXPECT_TRUE(train::lora_settings_changed(d)) << flag;
  }
}

TEST(TrainSettings, HelpIsGeneratedFromTheRows) {
  const std::string h = train_flags_help();
  EXPECT_NE(h.find("--lr_scheduler_type"), std::string::npos);
  EXPECT_NE(h.find("(one of: linear, cosine, constant, constant_with_warmup; default: linear)"), std::string::npos) << h;
  EXPECT_NE(h.find("also --dataloader_drop_last"), std::string::npos);
  EXPECT_NE(h.find("default: 5e-05"), std::string::npos);
  EXPECT_NE(h.find("Accepted and ignored: --remove_unused_columns, "), std::string::npos);
  EXPECT_NE(h.find("--fp16"), std::string::npos);
  for (const Setting& s : train::train_settings())
    EXPECT_NE(h.find("--" + std::string(s.name)), std::string::npos) << s.name;
}

// Issue 29's rules, each a one-line error naming the flag (transformers' checks where it has them).
TEST(TrainSettings, EarlyStoppingBestModelAndTrackerRules) {
  const std::vector<std::string> base = {"--model_name_or_path", "m", "--dataset_path", "d", "--output_dir", "o"};
  auto error_of = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = base;
    args.insert(args.end(), extra.begin(), extra.end());
    try {
      parse_train_args(args).cfg.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error_of({"--early_stopping_patience", "2"}),
            "--early_stopping_patience needs evaluation: --eval_strategy steps or epoch");
  EXPECT_EQ(error_of({"--early_stopping_patience", "2", "--eval_strategy", "steps"}),
            "--early_stopping_patience needs evaluation data: --eval_dataset_path or --validation_split");
  EXPECT_EQ(error_of({"--early_stopping_patience", "2", "--eval_strategy", "steps", "--validation_split", "3"}),
            "--early_stopping_patience needs --metric_for_best_model eval_loss (or --load_best_model_at_end True, which "
            "implies it), as transformers' EarlyStoppingCallback");
  EXPECT_EQ(error_of({"--early_stopping_patience", "2", "--eval_strategy", "steps", "--validation_split", "3",
                      "--metric_for_best_model", "loss"}), "");
  EXPECT_EQ(error_of({"--early_stopping_patience", "2", "--eval_strategy", "epoch", "--eval_dataset_path", "e.json",
                      "--save_strategy", "epoch", "--load_best_model_at_end", "True"}), "");
  EXPECT_EQ(error_of({"--early_stopping_patience", "-1"}), "--early_stopping_patience: expected an integer in [0, 1073741824], got -1");
  EXPECT_EQ(error_of({"--early_stopping_threshold", "-0.5"}),
            "--early_stopping_threshold: expected a finite number in [0, 1e+30], got -0.5");
  EXPECT_EQ(error_of({"--neftune_noise_alpha", "-1"}), "--neftune_noise_alpha: expected a finite number in [0, 1e+06], got -1");
  EXPECT_EQ(error_of({"--metric_for_best_model", "accuracy"}),
            "--metric_for_best_model: expected eval_loss or loss (the metric sft train computes), got 'accuracy'");
  // load_best_model_at_end: the save and eval strategies must match, save_steps a multiple of eval_steps.
  EXPECT_EQ(error_of({"--load_best_model_at_end", "True", "--eval_strategy", "steps", "--save_strategy", "epoch"}),
            "--load_best_model_at_end needs --save_strategy equal to --eval_strategy (steps), got --save_strategy epoch "
            "(as transformers)");
  EXPECT_EQ(error_of({"--load_best_model_at_end", "True", "--eval_strategy", "steps", "--eval_steps", "3",
                      "--save_steps", "10"}),
            "--load_best_model_at_end needs --save_steps (10) to be a multiple of --eval_steps (3) (as transformers)");
  EXPECT_EQ(error_of({"--load_best_model_at_end", "True", "--eval_strategy", "steps", "--logging_steps", "5",
                      "--save_steps", "10"}), "");  // eval_steps unset = logging_steps
  EXPECT_EQ(error_of({"--load_best_model_at_end", "True", "--eval_strategy", "no"}), "");  // the seed's list: a note
  // report_to: HF's integration names; none and all stand alone.
  EXPECT_EQ(error_of({"--report_to", "tensorboard", "wandb"}), "");
  EXPECT_EQ(error_of({"--report_to", "none,tensorboard"}), "--report_to: 'none' stands alone, got 'none,tensorboard'");
  EXPECT_EQ(error_of({"--report_to", "tensorboard,all"}), "--report_to: 'all' stands alone, got 'tensorboard,all'");
  EXPECT_NE(error_of({"--report_to", "tensorbord"}).find("--report_to: expected one of none, all, tensorboard"),
            std::string::npos);
  EXPECT_EQ(error_of({"--dataset_text_field", ""}), "--dataset_text_field: expected a field name, got ''");
  EXPECT_EQ(error_of({"--completion_only_loss=maybe"}), "--completion_only_loss: expected True/False/true/false/1/0, got 'maybe'");
}

TEST(TrainSettings, BestMetricAndReportToFollowTransformers) {
  TrainConfig c;
  EXPECT_EQ(c.best_metric_name(), "");  // HF's None: no best checkpoint is tracked
  c.load_best_model_at_end = true;
  EXPECT_EQ(c.best_metric_name(), "loss");
  EXPECT_FALSE(c.best_metric_greater());
  c.greater_is_better = 1;
  EXPECT_TRUE(c.best_metric_greater());
  c.greater_is_better = -1;
  c.metric_for_best_model = "eval_loss";
  EXPECT_FALSE(c.best_metric_greater());
  EXPECT_FALSE(c.reports_to("tensorboard"));  // default "none", as transformers 5
  c.report_to = "all";
  EXPECT_TRUE(c.reports_to("tensorboard"));
  EXPECT_FALSE(c.reports_to("wandb"));  // "all" = the integrations installed: TensorBoard's writer only
  c.report_to = "wandb,tensorboard";
  EXPECT_TRUE(c.reports_to("tensorboard"));
  EXPECT_TRUE(c.reports_to("wandb"));
  EXPECT_FALSE(c.reports_to("mlflow"));
}

}  // namespace
}  // namespace sft::cli
