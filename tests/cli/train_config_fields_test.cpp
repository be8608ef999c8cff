// One source for TrainConfig's fields, checked: the flag table (cli/train_flags.cpp), the struct
// (train/train_config.h) and training_args.json (TrainConfig::to_json) must agree.
//  - every flag lands in a field that training_args.json records (setting it to a non-default value changes the JSON);
//  - every key of training_args.json is a flag name (so a field added to the JSON without a flag, or renamed on one
//    side only, fails here).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "cli/train_flags.h"
#include "train/train_config.h"

namespace sft::cli {
namespace {

TEST(TrainConfigFields, EveryFlagIsRecordedInTrainingArgs) {
  const std::string base = train::TrainConfig{}.to_json();
  for (const std::string& name : train_flag_names()) {
    SCOPED_TRACE(name);
    bool changed = false;
    // A value of each kind; at least one parses and differs from the default for every flag.
    for (const char* v : {"value_for_test", "12345", "0.123", "true", "false"}) {
      try {
        const ParsedTrainArgs p = parse_train_args({"--" + name, v});
        if (p.cfg.to_json() != base) changed = true;
      } catch (const std::exception&) {
      }
    }
    EXPECT_TRUE(changed) << "--" << name << " changes no key of training_args.json (TrainConfig::to_json)";
  }
}

TEST(TrainConfigFields, EveryTrainingArgsKeyIsAFlag) {
  const auto names = train_flag_names();
  const std::set<std::string> flags(names.begin(), names.end());
  const auto j = nlohmann::json::parse(train::TrainConfig{}.to_json());
  for (const auto& [key, value] : j.items()) EXPECT_TRUE(flags.count(key)) << "training_args.json key " << key;
}

}  // namespace
}  // namespace sft::cli
