// config.json parsing, and everything computed from a config that parsed: parameter counts, the weight list.
// UBSan turns any signed overflow in those sizes into a finding.
#include "fuzz_util.h"
#include "model/family.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  sft::fuzz::expect_clean([&] {
    const sft::io::ModelConfig c = sft::model::parse_config(text, "config.json");
    (void)sft::model::num_parameters(c);
    (void)sft::model::num_embedding_parameters(c);
    (void)c.q_dim();
    (void)c.kv_dim();
    // The layer count is bounded by the tensors present only at load time (io/weight_check); here a config with
    // thousands of layers would just make each execution slow, so the weight list is built for small ones.
    if (c.num_hidden_layers > 512) return;
    const auto specs = sft::model::tensor_table(c);
    (void)sft::model::parse_config(sft::model::config_to_json(c), "roundtrip");
    (void)specs;
  });
  return 0;
}
