// adapter_config.json: peft's keys and defaults, round trip, and the one-line errors for configs this program cannot
// run as peft would.
#include <gtest/gtest.h>

#include <cmath>

#include "io/peft_adapter.h"
#include "util/error.h"

namespace sft::io {
namespace {

std::string err(const std::string& json) {
  try {
    parse_adapter_config(json, "a/adapter_config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PeftAdapter, ParsesPeftFileAndDefaults) {
  const LoraAdapterConfig c = parse_adapter_config(
      R"({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 16, "lora_alpha": 32, "lora_dropout": 0.05,
          "target_modules": ["v_proj", "q_proj"], "modules_to_save": null, "use_rslora": false, "bias": "none",
          "use_dora": false, "rank_pattern": {}, "alpha_pattern": {}, "layers_to_transform": null,
          "base_model_name_or_path": "Qwen/Qwen2.5-0.5B", "fan_in_fan_out": false, "peft_version": "0.21.2"})",
      "x");
  EXPECT_EQ(c.r, 16);
  EXPECT_EQ(c.lora_alpha, 32);
  EXPECT_DOUBLE_EQ(c.lora_dropout, 0.05);
  EXPECT_EQ(c.target_modules, (std::vector<std::string>{"v_proj", "q_proj"}));
  EXPECT_FALSE(c.target_is_string);
  EXPECT_TRUE(c.modules_to_save.empty());
  EXPECT_EQ(c.base_model_name_or_path, "Qwen/Qwen2.5-0.5B");
  EXPECT_DOUBLE_EQ(c.scaling(), 2.0);
  const LoraAdapterConfig d = parse_adapter_config(R"({"peft_type": "LORA", "target_modules": "all-linear",
      "use_rslora": true, "r": 4, "lora_alpha": 6})", "x");
  EXPECT_TRUE(d.all_linear());
  EXPECT_DOUBLE_EQ(d.scaling(), 3.0);  // alpha / sqrt(r)
}

TEST(PeftAdapter, RoundTrip) {
  LoraAdapterConfig c;
  c.base_model_name_or_path = "base";
  c.r = 8;
  c.lora_alpha = 12.5;
  c.lora_dropout = 0.1;
  c.use_rslora = true;
  c.target_modules = {"model.layers.0.mlp.up_proj", "k_proj"};
  c.modules_to_save = {"lm_head"};
  const LoraAdapterConfig d = parse_adapter_config(adapter_config_to_json(c), "x");
  EXPECT_EQ(d.base_model_name_or_path, "base");
  EXPECT_EQ(d.r, 8);
  EXPECT_EQ(d.lora_alpha, 12.5);
  EXPECT_EQ(d.lora_dropout, 0.1);
  EXPECT_TRUE(d.use_rslora);
  EXPECT_EQ(d.target_modules, c.target_modules);
  EXPECT_EQ(d.modules_to_save, c.modules_to_save);
  EXPECT_NE(adapter_config_to_json(c).find("\"peft_type\": \"LORA\""), std::string::npos);
}

TEST(PeftAdapter, OneLineErrorsNameFileAndKey) {
  EXPECT_NE(err(R"({"peft_type": "IA3", "target_modules": ["q_proj"]})").find("a/adapter_config.json: \"peft_type\""),
            std::string::npos);
  EXPECT_NE(err(R"({"peft_type": "LORA", "r": 0, "target_modules": ["q_proj"]})").find("\"r\" must be a positive"),
            std::string::npos);
  EXPECT_NE(err(R"({"peft_type": "LORA", "r": -2, "target_modules": ["q_proj"]})").find("\"r\""), std::string::npos);
  EXPECT_NE(err(R"({"peft_type": "LORA"})").find("\"target_modules\" is missing"), std::string::npos);
  EXPECT_NE(err(R"({"peft_type": "LORA", "target_modules": ["q"], "use_dora": true})").find("DoRA"), std::string::npos);
  EXPECT_NE(err(R"({"peft_type": "LORA", "target_modules": ["q"], "rank_pattern": {"q": 4}})").find("rank_pattern"),
            std::string::npos);
  EXPECT_NE(err(R"({"peft_type": "LORA", "target_modules": ["q"], "bias": "all"})").find("\"bias\""), std::string::npos);
  EXPECT_NE(err(R"({"peft_type": "LORA", "target_modules": [1]})").find("target_modules"), std::string::npos);
  EXPECT_NE(err("{not json").find("not valid JSON"), std::string::npos);
  for (const char* bad : {R"({"peft_type": "IA3", "target_modules": ["q_proj"]})", "{not json"})
    EXPECT_EQ(err(bad).find('\n'), std::string::npos);  // one line
}

}  // namespace
}  // namespace sft::io
