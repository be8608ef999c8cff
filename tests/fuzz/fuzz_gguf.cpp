// GGUF reader: the input is a whole .gguf file. Everything sft derives from one runs on it: the container checks,
// block decoding of every small tensor, the tokenizer.json rebuilt from the vocabulary metadata (and the tokenizer
// loading it), and the model mapping (config from the metadata, tensors mapped, Llama q/k permutation undone).
#include "fuzz_util.h"
#include "io/gguf.h"
#include "io/gguf_tokenizer.h"
#include "model/gguf_mapping.h"
#include "tokenizer/tokenizer.h"

#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = sft::fuzz::scratch_dir() / "model.gguf";
  sft::fuzz::write_bytes(path, std::string_view(reinterpret_cast<const char*>(data), size));
  constexpr int64_t kSmall = 1 << 16;
  sft::fuzz::expect_clean([&] {
    const sft::io::GgufFile f(path);
    std::vector<float> out;
    for (const auto& t : f.tensors()) {
      if (!sft::io::ggml_type_readable(t.type) || t.numel > kSmall) continue;
      out.resize(static_cast<size_t>(t.numel));
      f.read_f32(t, out.data());
    }
    sft::fuzz::expect_clean([&] {
      const sft::io::HfTokenizerFiles files = sft::io::hf_tokenizer_files(f);
      (void)sft::tok::Tokenizer::from_json_text(files.tokenizer_json, files.tokenizer_config_json);
    });
    const sft::model::GgufModel m = sft::model::open_gguf_model(path);
    for (const auto& name : m.weights.names()) {
      const int64_t n = m.weights.info(name).numel();
      if (n > kSmall) continue;
      out.resize(static_cast<size_t>(n));
      m.weights.read_f32(name, out.data());
    }
  });
  return 0;
}
