// tokenizer.json (+ tokenizer_config.json after a "\n----\n" line) loading; a tokenizer that loads must then encode
// and decode a fixed text without failing.
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = sft::fuzz::split2(std::string_view(reinterpret_cast<const char*>(data), size));
  const std::string_view tj = parts.first, cfg = parts.second;  // plain variables: lambdas may capture them
  sft::fuzz::expect_clean([&] {
    std::optional<std::string> cfg_text;
    if (!cfg.empty()) cfg_text = std::string(cfg);
    auto tok = sft::tok::Tokenizer::from_json_text(std::string(tj), cfg_text);
    const auto ids = tok.encode("Hello, world! 12345 <|endoftext|> caf\xc3\xa9 \xf0\x9f\x98\x80\n\n  x", true);
    for (int32_t id : ids)
      if (id < 0 || id >= tok.vocab_size()) std::abort();  // an id outside the vocabulary is a bug
    (void)tok.decode(ids);
    (void)tok.decode({0, 1, 2, -1, 1 << 30});
  });
  return 0;
}
