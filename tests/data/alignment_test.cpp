// The mask/alignment properties on the real Qwen tokenizer (tests/fixtures/tokenizers/qwen3, the tokenizer layer's
// fixture) over the 300 bundled demo rows:
//  - ids == encode(prompt) ++ encode(output) ++ [eos]; every unmasked label is a response token (or the EOS);
//  - the first response token is the label right after the last prompt token (the model predicts it from there);
//  - the EOS is a target; decoding the targets gives back the output text exactly;
//  - and why separate encoding is needed: full-text encoding changes the prompt/response boundary on many rows.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "source_dir.h"
#include "data/dataset.h"
#include "data/prepare.h"
#include "data/template.h"
#include "tokenizer/tokenizer.h"

namespace sft::data {
namespace {

namespace fs = std::filesystem;

// Materialises a tokenizer fixture of the tokenizer layer (compressed in the repo) into a temp folder.
fs::path fixture_tokenizer_dir(const std::string& which) {
  {
    const fs::path src = fs::path(sft::test::source_dir()) / "tests" / "fixtures" / "tokenizers" / which;
    const fs::path out = fs::temp_directory_path() / ("sft_data_" + which + "_" + std::to_string(::getpid()));
    fs::create_directories(out);
    for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
      const fs::path plain = src / name;
      if (fs::exists(plain)) {
        fs::copy_file(plain, out / name, fs::copy_options::overwrite_existing);
        continue;
      }
      for (auto [ext, tool] : {std::pair{".zst", "zstd -dc"}, {".xz", "xz -dc"}, {".gz", "gzip -dc"}}) {
        const fs::path packed = src / (std::string(name) + ext);
        if (!fs::exists(packed)) continue;
        const std::string cmd = std::string(tool) + " '" + packed.string() + "' > '" + (out / name).string() + "'";
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
        break;
      }
    }
    return out;
  }
}

class QwenAlignment : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const fs::path dir = fixture_tokenizer_dir("qwen3");
    const bool ok = fs::exists(dir / "tokenizer.json");
    if (ok) tok_ = new tok::Tokenizer(tok::Tokenizer::load(dir));
    fs::remove_all(dir);
    if (!ok) return;
    rows_ = new std::vector<Example>(read_dataset(fs::path(sft::test::source_dir()) / "data" / "alpaca_demo.json").examples);
  }
  static void TearDownTestSuite() {
    delete tok_;
    delete rows_;
    tok_ = nullptr;
    rows_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(tok_, nullptr) << "missing tokenizer fixture tests/fixtures/tokenizers/qwen3/tokenizer.json[.zst|.xz]";
  }
  static tok::Tokenizer* tok_;
  static std::vector<Example>* rows_;
};
tok::Tokenizer* QwenAlignment::tok_ = nullptr;
std::vector<Example>* QwenAlignment::rows_ = nullptr;

TEST_F(QwenAlignment, AlpacaResponseOnlyLabelsAreExact) {
  TokenizerEncoder enc(*tok_);
  ASSERT_TRUE(enc.eos_id().has_value());
  EXPECT_FALSE(enc.bos_id().has_value());  // Qwen adds no BOS
  const int32_t eos = *enc.eos_id();
  TemplateOptions opts;  // alpaca, response-only
  ASSERT_EQ(rows_->size(), 300u);
  for (const Example& ex : *rows_) {
    SCOPED_TRACE(ex.origin);
    const Sample s = tokenize_example(ex, opts, enc);
    const std::vector<int32_t> prompt = tok_->encode(inference_prompt(ex.instruction, ex.input, opts));
    const std::vector<int32_t> response = tok_->encode(ex.output);
    const size_t np = prompt.size();
    ASSERT_EQ(s.ids.size(), np + response.size() + 1);
    ASSERT_TRUE(std::equal(prompt.begin(), prompt.end(), s.ids.begin()));
    ASSERT_TRUE(std::equal(response.begin(), response.end(), s.ids.begin() + np));
    // Prompt masked; every unmasked label is a response token or the final EOS, at its own position.
    for (size_t i = 0; i < np; ++i) ASSERT_EQ(s.labels[i], kIgnoreIndex) << i;
    for (size_t i = np; i < s.ids.size(); ++i) ASSERT_EQ(s.labels[i], s.ids[i]) << i;
    // The model predicts labels[t+1] from position t: the first response token from the last prompt token.
    ASSERT_EQ(s.labels[np - 1], kIgnoreIndex);
    ASSERT_EQ(s.labels[np], response.front());
    ASSERT_EQ(s.ids[np - 1], prompt.back());
    // The EOS is a target and the last one.
    ASSERT_EQ(s.ids.back(), eos);
    ASSERT_EQ(s.labels.back(), eos);
    ASSERT_EQ(s.targets, static_cast<int64_t>(response.size()) + 1);
    // Decoding the targets (without the EOS) gives back the response text byte for byte.
    std::vector<int32_t> targets;
    for (size_t i = 0; i + 1 < s.ids.size(); ++i)
      if (s.labels[i] != kIgnoreIndex) targets.push_back(s.labels[i]);
    ASSERT_EQ(tok_->decode(targets), ex.output);
  }
}

TEST_F(QwenAlignment, FullTextEncodingWouldMisalignTheBoundary) {
  // Why separate encoding: the Qwen pre-tokenizer joins ':' with the response's first word. Masking "the prompt's
  // token count" of the full-text ids would then mask the merged ':The' and lose the first response token.
  const std::vector<int32_t> prompt = tok_->encode("### Response:");
  const std::vector<int32_t> full = tok_->encode("### Response:The car");
  ASSERT_EQ(tok_->id_to_token(prompt.back()), ":");
  ASSERT_EQ(tok_->id_to_token(full[prompt.size() - 1]), ":The");
  TemplateOptions opts;
  int64_t boundary_changed = 0;
  for (const Example& ex : *rows_) {
    const std::string p = inference_prompt(ex.instruction, ex.input, opts);
    std::vector<int32_t> concat = tok_->encode(p), r = tok_->encode(ex.output);
    concat.insert(concat.end(), r.begin(), r.end());
    boundary_changed += tok_->encode(p + ex.output) != concat;
  }
  // Measured with HF tokenizers 0.23.3 on this file: 118 of 300 rows (':The', ':A', ':I', ':"', ...).
  EXPECT_EQ(boundary_changed, 118);
}

TEST_F(QwenAlignment, ChatmlTargetsAreAssistantTurnsAndImEnd) {
  TokenizerEncoder enc(*tok_);
  Example chat;
  chat.origin = "chat row";
  chat.messages = {{"system", "Be brief."},
                   {"user", "What is 2+2?"},
                   {"assistant", "4."},
                   {"user", "And 3+3?"},
                   {"assistant", "It is 6."}};
  TemplateOptions opts;
  opts.tmpl = Template::ChatML;
  const Sample s = tokenize_example(chat, opts, enc);
  const int32_t im_start = *tok_->token_to_id("<|im_start|>"), im_end = *tok_->token_to_id("<|im_end|>");
  EXPECT_EQ(im_start, 151644);
  EXPECT_EQ(im_end, 151645);
  // The ids are exactly what HF gives for the rendered transcript (specials matched in the text): for ChatML the
  // separate encoding coincides with full-text encoding because "\n" always ends a Qwen pre-token before a letter.
  EXPECT_EQ(s.ids, tok_->encode(render_text(render(chat, opts))));
  std::vector<int32_t> targets;
  for (size_t i = 0; i < s.ids.size(); ++i)
    if (s.labels[i] != kIgnoreIndex) targets.push_back(s.labels[i]);
  EXPECT_EQ(tok_->decode(targets), "4.<|im_end|>It is 6.<|im_end|>");
  // The prediction of each reply's first token happens at the "\n" of "<|im_start|>assistant\n".
  for (size_t i = 1; i < s.ids.size(); ++i) {
    if (s.labels[i] != kIgnoreIndex && s.labels[i - 1] == kIgnoreIndex) {
      EXPECT_EQ(tok_->decode({s.ids[i - 1]}), "\n");
    }
  }
}

TEST_F(QwenAlignment, PrepareDatasetIsIdenticalOnSeveralThreads) {
  TokenizerEncoder enc(*tok_);
  PrepareOptions po;
  po.dataset_path = fs::path(sft::test::source_dir()) / "data" / "alpaca_demo.json";
  po.max_seq_length = 256;
  po.validation_split = parse_validation_split("0.1");
  po.num_threads = 1;
  const PreparedData one = prepare_dataset(po, enc);
  po.num_threads = 4;
  const PreparedData four = prepare_dataset(po, enc);
  ASSERT_EQ(one.train->size(), four.train->size());
  for (size_t i = 0; i < one.train->size(); ++i) {
    ASSERT_EQ((*one.train)[i].ids, (*four.train)[i].ids) << i;
    ASSERT_EQ((*one.train)[i].labels, (*four.train)[i].labels) << i;
  }
  EXPECT_EQ(one.eval->size(), 30u);
  EXPECT_EQ(one.train_report.samples + one.eval_report.samples, 300);
  EXPECT_EQ(one.train_report.p99, four.train_report.p99);
  EXPECT_GT(one.train_report.over_length, 0);  // some demo answers are longer than 256 tokens
}

TEST(Llama3Alignment, BosFollowsThePostProcessorEosEndsTargets) {
  const fs::path dir = fixture_tokenizer_dir("llama3");
  ASSERT_TRUE(fs::exists(dir / "tokenizer.json")) << "missing tests/fixtures/tokenizers/llama3";
  const tok::Tokenizer tok = tok::Tokenizer::load(dir);
  TokenizerEncoder enc(tok);
  // This fixture's post_processor is ByteLevel only: HF tokenizers' encode("a") is [64] with or without special
  // tokens, so no BOS is added (as HF does); BOS prepending itself is tested with the fake encoder.
  ASSERT_EQ(enc.bos_id(), std::nullopt);
  ASSERT_EQ(enc.eos_id(), std::optional<int32_t>(128001));  // <|end_of_text|> (base model config)
  Example ex;
  ex.instruction = "Name a colour.";
  ex.output = "Blue.";
  ex.origin = "llama row";
  TemplateOptions opts;
  const Sample s = tokenize_example(ex, opts, enc);
  std::vector<int32_t> expect;
  for (int32_t id : tok.encode(inference_prompt(ex.instruction, ex.input, opts))) expect.push_back(id);
  const size_t np = expect.size();
  for (int32_t id : tok.encode(ex.output)) expect.push_back(id);
  expect.push_back(128001);
  ASSERT_EQ(s.ids, expect);
  for (size_t i = 0; i < s.ids.size(); ++i) EXPECT_EQ(s.labels[i], i < np ? kIgnoreIndex : s.ids[i]) << i;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sft::data
