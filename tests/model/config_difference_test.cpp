// model::config_difference (model/weight_check.h): the resume check's "same model" rule. Every published config of a
// supported family equals itself, a bf16 copy and one with other token ids; each field that shapes the weights or the
// computation, changed alone, is the key reported with both values.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "model/family.h"
#include "model/weight_check.h"
#include "source_dir.h"
#include "util/file_util.h"

namespace sft::model {
namespace {

namespace fs = std::filesystem;

nlohmann::json fixture_json(const std::string& name) {
  return nlohmann::json::parse(
      read_file(fs::path(sft::test::source_dir()) / "tests" / "fixtures" / "io" / "configs" / name));
}

io::ModelConfig parsed(const nlohmann::json& j) { return parse_config(j.dump(), "cfg.json"); }

std::vector<std::string> fixtures() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(fs::path(sft::test::source_dir()) / "tests/fixtures/io/configs"))
    if (e.path().extension() == ".json") out.push_back(e.path().filename().string());
  return out;
}

TEST(ConfigDifference, AConfigEqualsItselfInAnyDtypeAndWithOtherTokenIds) {
  ASSERT_GE(fixtures().size(), 3u);
  for (const std::string& name : fixtures()) {
    SCOPED_TRACE(name);
    nlohmann::json j = fixture_json(name);
    const io::ModelConfig a = parsed(j);
    EXPECT_FALSE(config_difference(a, a));
    // Written back (as a checkpoint's config.json is) and read again: still the same model.
    EXPECT_FALSE(config_difference(a, parse_config(config_to_json(a), "ckpt.json")));
    j["torch_dtype"] = "bfloat16";
    j["eos_token_id"] = 7;
    j["bos_token_id"] = 3;
    j["transformers_version"] = "9.9.9";
    EXPECT_FALSE(config_difference(a, parsed(j)));
  }
}

TEST(ConfigDifference, EachWeightShapingFieldIsReportedWithBothValues) {
  const nlohmann::json base = fixture_json("qwen2.5-0.5b.json");
  const io::ModelConfig ours = parsed(base);
  const struct {
    const char* key;
    nlohmann::json value;
  } changes[] = {{"hidden_size", 1792},       {"intermediate_size", 4096},  {"num_hidden_layers", 12},
                 {"num_attention_heads", 28}, {"num_key_value_heads", 1},   {"vocab_size", 151000},
                 {"rope_theta", 10000.0},      {"rms_norm_eps", 1e-5},       {"tie_word_embeddings", false},
                 {"max_position_embeddings", 4096}};
  for (const auto& c : changes) {
    SCOPED_TRACE(c.key);
    nlohmann::json j = base;
    j[c.key] = c.value;
    const auto d = config_difference(ours, parsed(j));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->key, c.key);
    EXPECT_EQ(d->ours, base[c.key].dump());
    EXPECT_EQ(d->theirs, c.value.dump());
  }
}

TEST(ConfigDifference, FamilyFeaturesAndRopeScalingCount) {
  // qwen2 vs qwen3 of the same sizes: the family (q/k norms, o_proj bias rules) differs.
  nlohmann::json q2 = fixture_json("qwen2.5-0.5b.json"), q3 = q2;
  q3["model_type"] = "qwen3";
  q3["architectures"] = {"Qwen3ForCausalLM"};
  q3["head_dim"] = 64;
  const auto d = config_difference(parsed(q2), parsed(q3));
  ASSERT_TRUE(d);
  EXPECT_NE(d->ours, d->theirs);
  // Llama 3 RoPE scaling: a different factor is a different model.
  for (const std::string& name : fixtures()) {
    nlohmann::json j = fixture_json(name);
    if (!j.contains("rope_scaling") || !j["rope_scaling"].is_object()) continue;
    nlohmann::json k = j;
    k["rope_scaling"]["factor"] = 4.0 + j["rope_scaling"]["factor"].get<double>();
    const auto r = config_difference(parsed(j), parsed(k));
    ASSERT_TRUE(r) << name;
    EXPECT_TRUE(r->key == "rope_scaling" || r->key == "rope_parameters") << r->key;
  }
}

}  // namespace
}  // namespace sft::model
