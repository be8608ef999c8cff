// config.json parsing, and everything computed from a config that parsed: parameter counts, the weight list.
// UBSan turns any signed overflow in those sizes into a finding.
#include "fuzz_util.h"
#include "io/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  sft::fuzz::expect_clean([&] {
    const sft::io::ModelConfig c = sft::io::parse_model_config(text, "config.json");
    (void)c.num_parameters();
    (void)c.num_embedding_parameters();
    (void)c.q_dim();
    (void)c.kv_dim();
    // The layer count is bounded by the tensors present only at load time (io/weight_check); here a config with
    // thousands of layers would just make each execution slow, so the weight list is built for small ones.
    if (c.num_hidden_layers > 512) return;
    const auto specs = sft::io::hf_weight_specs(c);
    (void)sft::io::parse_model_config(sft::io::model_config_to_json(c), "roundtrip");
    (void)specs;
  });
  return 0;
}
