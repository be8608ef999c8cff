// `sft train` LoRA flags as TRL / peft spell them: comma or space-separated module lists, --config JSON arrays,
// TrainConfig::lora_config() defaults and validation. (train_flags.cpp is compiled into train_flags_test.cpp, which
// shares this binary, so only the public declarations are used here.)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/train_flags.h"
#include "util/error.h"

namespace sft::cli {
namespace {

const std::vector<std::string> kBase = {"--model_name_or_path", "m", "--dataset_path", "d.json", "--output_dir", "o"};

std::vector<std::string> with(std::vector<std::string> extra) {
  std::vector<std::string> a = kBase;
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

TEST(LoraFlags, TrlSpellingsAndDefaults) {
  auto p = parse_train_args(with({"--use_peft"}));
  EXPECT_TRUE(p.cfg.use_peft);
  io::LoraAdapterConfig c = p.cfg.lora_config();
  EXPECT_EQ(c.r, 16);  // TRL ModelConfig defaults
  EXPECT_EQ(c.lora_alpha, 32);
  EXPECT_DOUBLE_EQ(c.lora_dropout, 0.05);
  EXPECT_EQ(c.target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));  // peft's qwen2/llama default
  p = parse_train_args(with({"--use_peft", "True", "--lora_r", "8", "--lora_alpha", "16", "--lora_dropout", "0",
                             "--lora_target_modules", "q_proj", "k_proj", "v_proj", "--use_rslora",
                             "--lora_modules_to_save", "lm_head"}));
  c = p.cfg.lora_config();
  EXPECT_EQ(c.r, 8);
  EXPECT_TRUE(c.use_rslora);
  EXPECT_EQ(c.target_modules, (std::vector<std::string>{"q_proj", "k_proj", "v_proj"}));
  EXPECT_EQ(c.modules_to_save, (std::vector<std::string>{"lm_head"}));
  c = parse_train_args(with({"--use_peft", "--lora_target_modules=all-linear"})).cfg.lora_config();
  EXPECT_TRUE(c.all_linear());
  c = parse_train_args(with({"--use_peft", "--lora_target_modules", "q_proj,o_proj"})).cfg.lora_config();
  EXPECT_EQ(c.target_modules, (std::vector<std::string>{"q_proj", "o_proj"}));
}

TEST(LoraFlags, ConfigFileTakesTheSameKeys) {
  const auto path = std::filesystem::temp_directory_path() / "sft_lora_flags_test.json";
  std::ofstream(path) << R"({"use_peft": true, "lora_r": 4, "lora_target_modules": ["up_proj", "down_proj"],
                             "lora_modules_to_save": ["embed_tokens"]})";
  auto p = parse_train_args(with({"--config", path.string()}));
  const io::LoraAdapterConfig c = p.cfg.lora_config();
  EXPECT_EQ(c.r, 4);
  EXPECT_EQ(c.target_modules, (std::vector<std::string>{"up_proj", "down_proj"}));
  EXPECT_EQ(c.modules_to_save, (std::vector<std::string>{"embed_tokens"}));
  std::filesystem::remove(path);
}

TEST(LoraFlags, BadValuesNameTheFlag) {
  auto msg = [](std::vector<std::string> extra) {
    try {
      parse_train_args(with(extra)).cfg.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg({"--use_peft", "--lora_r", "0"}).find("--lora_r"), std::string::npos);
  EXPECT_NE(msg({"--use_peft", "--lora_r", "-4"}).find("--lora_r"), std::string::npos);
  EXPECT_NE(msg({"--use_peft", "--lora_dropout", "1.5"}).find("--lora_dropout"), std::string::npos);
  EXPECT_NE(msg({"--lora_r", "x"}).find("--lora_r"), std::string::npos);
  EXPECT_NE(msg({"--adapter_name_or_path", "a"}).find("--use_peft"), std::string::npos);
  EXPECT_NE(msg({"--lora_rr", "4"}).find("did you mean --lora_r"), std::string::npos);
}

// peft 0.21 refuses target_modules=[] and '' ("No `target_modules` passed ..."); leaving the flag out is its default.
// training_args.json writes the unset list as null (TRL's None), and --config reads null back as "not given".
TEST(LoraFlags, AnEmptyTargetListIsRefusedLeavingItOutIsTheDefault) {
  auto msg = [](std::vector<std::string> extra) {
    try {
      parse_train_args(with(extra));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  for (const auto& form : {std::vector<std::string>{"--lora_target_modules", ""},
                           std::vector<std::string>{"--lora_target_modules="}}) {
    std::vector<std::string> extra = {"--use_peft"};
    extra.insert(extra.end(), form.begin(), form.end());
    const std::string m = msg(extra);
    EXPECT_NE(m.find("--lora_target_modules: an empty list adapts no module"), std::string::npos) << m;
  }
  const auto path = std::filesystem::temp_directory_path() / "sft_lora_flags_empty.json";
  std::ofstream(path) << R"({"use_peft": true, "lora_target_modules": []})";
  EXPECT_NE(msg({"--config", path.string()}).find("--lora_target_modules: an empty list"), std::string::npos);
  // An unset list round-trips through training_args.json: null there, the default again when read back.
  const train::TrainConfig unset = parse_train_args(with({"--use_peft"})).cfg;
  const auto j = nlohmann::json::parse(unset.to_json());
  EXPECT_TRUE(j["lora_target_modules"].is_null());
  EXPECT_TRUE(j["greater_is_better"].is_null());
  std::ofstream(path, std::ios::trunc) << unset.to_json();
  const train::TrainConfig again = parse_train_args({"--config", path.string()}).cfg;
  EXPECT_EQ(again.to_json(), unset.to_json());
  EXPECT_EQ(again.lora_config().target_modules, (std::vector<std::string>{"q_proj", "v_proj"}));
  // null for an unknown key is still an unknown key.
  std::ofstream(path, std::ios::trunc) << R"({"lora_rank": null})";
  EXPECT_NE(msg({"--config", path.string()}).find("unknown flag --lora_rank"), std::string::npos);
  std::filesystem::remove(path);
}

// QLoRA: transformers' BitsAndBytesConfig names, TRL's True/False spelling, and the refusals (one line, the flag).
TEST(LoraFlags, QloraFlagsAndRefusals) {
  auto p = parse_train_args(with({"--use_peft", "--load_in_4bit", "True", "--bnb_4bit_quant_type", "fp4",
                                  "--bnb_4bit_use_double_quant", "True", "--bnb_4bit_compute_dtype", "bfloat16"}));
  p.cfg.validate();
  EXPECT_TRUE(p.cfg.load_in_4bit);
  EXPECT_EQ(p.cfg.bnb_4bit_quant_type, "fp4");
  EXPECT_TRUE(p.cfg.bnb_4bit_use_double_quant);
  EXPECT_EQ(p.cfg.bnb_4bit_compute_dtype, "bfloat16");
  p = parse_train_args(with({"--use_peft", "--load_in_4bit"}));
  EXPECT_EQ(p.cfg.bnb_4bit_quant_type, "nf4");  // transformers' defaults
  EXPECT_FALSE(p.cfg.bnb_4bit_use_double_quant);
  EXPECT_EQ(p.cfg.bnb_4bit_compute_dtype, "float32");
  auto msg = [](std::vector<std::string> extra) {
    try {
      parse_train_args(with(extra)).cfg.validate();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  const std::string no_peft = msg({"--load_in_4bit", "True"});
  EXPECT_NE(no_peft.find("--load_in_4bit"), std::string::npos) << no_peft;
  EXPECT_NE(no_peft.find("--use_peft"), std::string::npos) << no_peft;
  EXPECT_EQ(no_peft.find('\n'), std::string::npos);
  EXPECT_NE(msg({"--use_peft", "--load_in_4bit", "--bnb_4bit_quant_type", "int4"}).find("--bnb_4bit_quant_type"),
            std::string::npos);
  EXPECT_NE(msg({"--use_peft", "--load_in_4bit", "--bnb_4bit_compute_dtype", "float16"}).find("--bnb_4bit_compute_dtype"),
            std::string::npos);
  EXPECT_NE(msg({"--use_peft", "--load_in_4bit", "--save_gguf", "q8_0"}).find("--save_gguf"), std::string::npos);
}

}  // namespace
}  // namespace sft::cli
