// TRL's dataset formats: detection by fields, the dataset_format / dataset_text_field options, bad rows (missing
// text field, a completion that is not a string, mixed formats) as one-line errors naming file, row and field, the
// CSV columns, the empty-response rule; and the tokenisation rules with hand-checkable encoders (EOS text appended
// once, BOS, the common-prefix completion start, completion_only_loss / assistant_only_loss). Parity with TRL's own
// SFTTrainer on real tokenizers and templates: test_trl_formats.py.
#include <gtest/gtest.h>

#include "data/dataset.h"
#include "data/prepare.h"
#include "data/template.h"
#include "fake_encoder.h"
#include "temp_dir.h"
#include "util/error.h"

using namespace sft::data;
using sft::data::testing::FakeEncoder;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const sft::Error& e) {
    return e.what();
  }
  return "(no error)";
}

ReadResult jsonl(const std::string& text, ReadOptions o = {}) {
  o.keep_empty_responses = true;
  return parse_jsonl(text, "f.jsonl", o);
}

// The fake byte encoder, plus the eos written as text ("<eos>") split out as the eos id, as HF's added-token
// splitting does; optionally ":T" merged into one token (id 999), a BPE-like merge across a prompt/completion boundary.
class EosTextEncoder : public FakeEncoder {
 public:
  explicit EosTextEncoder(bool bos = false, bool merge = false) : FakeEncoder(true, true, bos), merge_(merge) {}
  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (size_t i = 0; i < text.size();) {
      if (text.substr(i, 5) == "<eos>") {
        ids.push_back(kEos);
        i += 5;
      } else if (merge_ && text.substr(i, 2) == ":T") {
        ids.push_back(999);
        i += 2;
      } else {
        ids.push_back(100 + static_cast<unsigned char>(text[i++]));
      }
    }
    return ids;
  }
  std::optional<std::string> eos_token() const override { return "<eos>"; }

 private:
  bool merge_;
};

std::vector<int32_t> concat(std::initializer_list<std::vector<int32_t>> parts) {
  std::vector<int32_t> out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::vector<int32_t> masked_before(const std::vector<int32_t>& ids, size_t first_target) {
  std::vector<int32_t> labels(ids.size(), kIgnoreIndex);
  for (size_t k = std::max<size_t>(first_target, 1); k < ids.size(); ++k) labels[k] = ids[k];
  return labels;
}

}  // namespace

// ---- reading ------------------------------------------------------------------------------------------------------

TEST(TrlFormats, DetectedByFields) {
  auto r = jsonl(R"({"text":"hello"})" "\n" R"({"text":"","extra":1})" "\n");
  ASSERT_EQ(r.examples.size(), 2u);
  EXPECT_EQ(r.examples[0].format, RowFormat::Text);
  EXPECT_EQ(r.examples[0].text, "hello");
  EXPECT_EQ(r.examples[1].text, "");  // an empty string is a value

  r = jsonl(R"({"prompt":"p","completion":"c"})");
  ASSERT_EQ(r.examples.size(), 1u);
  EXPECT_EQ(r.examples[0].format, RowFormat::PromptCompletion);
  EXPECT_EQ(r.examples[0].prompt, "p");
  EXPECT_EQ(r.examples[0].completion, "c");
  EXPECT_FALSE(r.examples[0].is_chat());

  r = jsonl(R"({"prompt":[{"role":"system","content":"S"},{"role":"user","content":"U"}],)"
            R"("completion":[{"role":"assistant","content":"A"}]})");
  ASSERT_EQ(r.examples.size(), 1u);
  const Example& cpc = r.examples[0];
  EXPECT_EQ(cpc.format, RowFormat::ConversationalPromptCompletion);
  ASSERT_EQ(cpc.prompt_messages.size(), 2u);
  EXPECT_EQ(cpc.prompt_messages[1].content, "U");
  ASSERT_EQ(cpc.completion_messages.size(), 1u);
  EXPECT_EQ(cpc.completion_messages[0].role, "assistant");
  EXPECT_FALSE(cpc.is_chat());

  r = jsonl(R"({"messages":[{"role":"user","content":"u"},{"role":"assistant","content":"a"}]})" "\n"
            R"({"instruction":"i","output":"o"})" "\n");
  ASSERT_EQ(r.examples.size(), 2u);  // alpaca and conversational rows may share a file, as before TRL's formats
  EXPECT_EQ(r.examples[0].format, RowFormat::Conversational);
  EXPECT_EQ(r.examples[1].format, RowFormat::Instruction);

  // TRL's order: "prompt" before "messages" before the text field; alpaca before the text field (an alpaca file
  // with a "text" column of pre-formatted rows stays alpaca unless language modelling is asked for).
  r = jsonl(R"({"instruction":"i","output":"o","text":"t"})");
  EXPECT_EQ(r.examples[0].format, RowFormat::Instruction);
  ReadOptions lm;
  lm.dataset_format = DatasetFormat::LanguageModeling;
  r = jsonl(R"({"instruction":"i","output":"o","text":"t"})", lm);
  EXPECT_EQ(r.examples[0].format, RowFormat::Text);
  EXPECT_EQ(r.examples[0].text, "t");
}

TEST(TrlFormats, TextFieldOption) {
  ReadOptions o;
  o.dataset_text_field = "content";
  auto r = jsonl(R"({"content":"abc","text":"ignored"})", o);
  ASSERT_EQ(r.examples.size(), 1u);
  EXPECT_EQ(r.examples[0].format, RowFormat::Text);
  EXPECT_EQ(r.examples[0].text, "abc");
  o.dataset_format = DatasetFormat::LanguageModeling;
  EXPECT_EQ(error_of([&] { jsonl(R"({"text":"abc"})", o); }), "f.jsonl line 1: missing \"content\"");
}

TEST(TrlFormats, BadRowsNameFileRowAndField) {
  ReadOptions lm;
  lm.dataset_format = DatasetFormat::LanguageModeling;
  EXPECT_EQ(error_of([&] { jsonl(R"({"txt":"a"})", lm); }), "f.jsonl line 1: missing \"text\"");
  EXPECT_EQ(error_of([&] { jsonl(R"({"text":["a"]})", lm); }), "f.jsonl line 1: \"text\" must be a string, got array");
  EXPECT_EQ(error_of([] { jsonl(R"({"prompt":"p","completion":"c"})" "\n" R"({"prompt":"p","completion":5})"); }),
            "f.jsonl line 2: \"completion\" must be a string, got number");
  EXPECT_EQ(error_of([] { jsonl(R"({"prompt":"p"})"); }), "f.jsonl line 1: missing \"completion\"");
  EXPECT_EQ(error_of([] { jsonl(R"({"prompt":"p","completion":null})"); }), "f.jsonl line 1: missing \"completion\"");
  // Mixed formats: the row, its fields, and the row that set the file's format.
  EXPECT_EQ(error_of([] { jsonl(R"({"prompt":"p","completion":"c"})" "\n\n" R"({"text":"t"})"); }),
            "f.jsonl line 3: mixed formats: this row has \"text\" (language modelling) but f.jsonl line 1 has "
            "\"prompt\" and \"completion\" strings (prompt-completion); one file holds one format");
  EXPECT_EQ(error_of([] {
              jsonl(R"({"prompt":"p","completion":"c"})" "\n"
                    R"({"prompt":[{"role":"user","content":"u"}],"completion":[{"role":"assistant","content":"a"}]})");
            }),
            "f.jsonl line 2: mixed formats: this row has \"prompt\" and \"completion\" message lists (conversational "
            "prompt-completion) but f.jsonl line 1 has \"prompt\" and \"completion\" strings (prompt-completion); one "
            "file holds one format");
  EXPECT_NE(error_of([] { jsonl(R"({"instruction":"i","output":"o"})" "\n" R"({"text":"t"})"); })
                .find("f.jsonl line 2: mixed formats: this row has \"text\""),
            std::string::npos);
  // A row with no field of the file's format says what is missing.
  EXPECT_EQ(error_of([] { jsonl(R"({"text":"a"})" "\n" R"({"other":"b"})"); }), "f.jsonl line 2: missing \"text\"");
  EXPECT_NE(error_of([] { jsonl(R"({"other":"b"})"); }).find("f.jsonl line 1: no known fields: expected"),
            std::string::npos);
  // Conversational prompt-completion: message lists validated like "messages".
  EXPECT_EQ(error_of([] { jsonl(R"({"prompt":[{"role":"user","content":"u"}],"completion":"a"})"); }),
            "f.jsonl line 1: \"completion\" must be a non-empty array of messages, got a string");
  EXPECT_EQ(error_of([] {
              jsonl(R"({"prompt":[{"role":"user","content":"u"}],"completion":[{"role":"system","content":"a"}]})");
            }),
            "f.jsonl line 1: \"completion\" message 2: a system message must come first");
  EXPECT_EQ(error_of([] { jsonl(R"({"prompt":[{"role":"user"}],"completion":[{"role":"assistant","content":"a"}]})"); }),
            "f.jsonl line 1: \"prompt\" message 1: missing \"content\"");
  // Forcing a format.
  ReadOptions conv;
  conv.dataset_format = DatasetFormat::Conversational;
  EXPECT_EQ(error_of([&] { jsonl(R"({"instruction":"i","output":"o"})", conv); }), "f.jsonl line 1: missing \"messages\"");
}

TEST(TrlFormats, SkipBadRowsCountsThem) {
  ReadOptions o;
  o.skip_bad_rows = true;
  auto r = jsonl(R"({"prompt":"p","completion":"c"})" "\n" R"({"text":"t"})" "\n" R"({"prompt":"q","completion":3})" "\n"
                 R"({"prompt":"r","completion":"d"})",
                 o);
  EXPECT_EQ(r.examples.size(), 2u);
  EXPECT_EQ(r.rows_skipped, 2);
  EXPECT_EQ(r.rows_seen, 4);
}

TEST(TrlFormats, EmptyResponsesAreExcludedByDefault) {
  ReadOptions o;  // keep_empty_responses false
  auto r = parse_jsonl(R"({"prompt":"p","completion":" "})" "\n" R"({"prompt":"q","completion":"c"})", "f.jsonl", o);
  EXPECT_EQ(r.examples.size(), 1u);
  EXPECT_EQ(r.rows_empty_response, 1);
  r = parse_jsonl(R"({"text":""})" "\n" R"({"text":"x"})", "f.jsonl", o);
  EXPECT_EQ(r.rows_empty_response, 1);
  r = parse_jsonl(R"({"prompt":[{"role":"user","content":"u"}],"completion":[{"role":"assistant","content":""}]})",
                  "f.jsonl", o);
  EXPECT_EQ(r.rows_empty_response, 1);
}

TEST(TrlFormats, CsvColumns) {
  ReadOptions o;
  o.keep_empty_responses = true;
  auto r = parse_csv("text,id\n\"a, b\",1\n,2\n", "d.csv", o);
  ASSERT_EQ(r.examples.size(), 2u);
  EXPECT_EQ(r.examples[0].format, RowFormat::Text);
  EXPECT_EQ(r.examples[0].text, "a, b");
  EXPECT_EQ(r.examples[1].text, "");  // an empty field is an empty string
  r = parse_csv(" prompt ,completion\n\"x\",\"y\"\n", "d.csv", o);
  ASSERT_EQ(r.examples.size(), 1u);
  EXPECT_EQ(r.examples[0].format, RowFormat::PromptCompletion);
  EXPECT_EQ(r.examples[0].completion, "y");
  EXPECT_EQ(error_of([&] { parse_csv("prompt,answer\nx,y\n", "d.csv", o); }),
            "d.csv record 1 (line 2): missing \"completion\"");
  EXPECT_NE(error_of([&] { parse_csv("question,answer\nx,y\n", "d.csv", o); })
                .find("d.csv header (line 1): expected columns named instruction and output"),
            std::string::npos);
  o.dataset_format = DatasetFormat::LanguageModeling;
  o.dataset_text_field = "body";
  r = parse_csv("instruction,output,body\ni,o,the body\n", "d.csv", o);
  ASSERT_EQ(r.examples.size(), 1u);
  EXPECT_EQ(r.examples[0].text, "the body");
}

TEST(TrlFormats, FormatNames) {
  EXPECT_EQ(parse_dataset_format("language_modeling"), DatasetFormat::LanguageModeling);
  EXPECT_EQ(parse_dataset_format("prompt-completion"), DatasetFormat::PromptCompletion);
  EXPECT_EQ(parse_dataset_format("text"), DatasetFormat::LanguageModeling);
  for (auto f : {DatasetFormat::Auto, DatasetFormat::Alpaca, DatasetFormat::LanguageModeling,
                 DatasetFormat::PromptCompletion, DatasetFormat::Conversational})
    EXPECT_EQ(parse_dataset_format(dataset_format_name(f)), f);
  EXPECT_EQ(error_of([] { parse_dataset_format("sharegpt"); }),
            "unknown dataset format \"sharegpt\" (expected auto, alpaca, language_modeling, prompt_completion or "
            "conversational)");
}

// ---- tokenisation -------------------------------------------------------------------------------------------------

TEST(TrlTokenize, TextGetsEosOnceAndEveryTokenTrains) {
  EosTextEncoder enc;
  Example ex;
  ex.format = RowFormat::Text;
  ex.text = "ab";
  Sample s = tokenize_example(ex, {}, enc);
  const auto want = concat({FakeEncoder::bytes("ab"), {FakeEncoder::kEos}});
  EXPECT_EQ(s.ids, want);
  EXPECT_EQ(s.labels, masked_before(want, 0));
  EXPECT_EQ(s.targets, 2);
  ex.text = "ab<eos>";  // already ends with the eos text: not appended again
  EXPECT_EQ(tokenize_example(ex, {}, enc).ids, want);
  ex.text = "a<eos>b";  // inside: kept, and the eos still ends the row
  EXPECT_EQ(tokenize_example(ex, {}, enc).ids,
            concat({FakeEncoder::bytes("a"), {FakeEncoder::kEos}, FakeEncoder::bytes("b"), {FakeEncoder::kEos}}));
  // The tokenizer's BOS (post-processor) comes first, masked.
  EosTextEncoder with_bos(true);
  ex.text = "ab";
  s = tokenize_example(ex, {}, with_bos);
  EXPECT_EQ(s.ids, concat({{FakeEncoder::kBos}, want}));
  EXPECT_EQ(s.targets, 3);
  // No eos in the tokenizer: the row cannot end.
  EXPECT_EQ(error_of([&] {
              Example e = ex;
              e.origin = "f.jsonl line 4";
              tokenize_example(e, {}, FakeEncoder(true, false));
            }),
            "f.jsonl line 4: the tokenizer has no eos_token (tokenizer_config.json); language modelling rows end with "
            "it, as TRL's SFTTrainer appends it");
}

TEST(TrlTokenize, PromptCompletionMasksThePromptByCommonPrefix) {
  Example ex;
  ex.format = RowFormat::PromptCompletion;
  ex.prompt = "x:";
  ex.completion = "Tz";
  TemplateOptions opts;
  EosTextEncoder enc;
  Sample s = tokenize_example(ex, opts, enc);
  auto want = concat({FakeEncoder::bytes("x:Tz"), {FakeEncoder::kEos}});
  EXPECT_EQ(s.ids, want);
  EXPECT_EQ(s.labels, masked_before(want, 2));
  // A token merged across the boundary (":T") belongs to the completion: the prompt ends where the ids part.
  EosTextEncoder merging(false, true);
  s = tokenize_example(ex, opts, merging);
  want = concat({FakeEncoder::bytes("x"), {999}, FakeEncoder::bytes("z"), {FakeEncoder::kEos}});
  EXPECT_EQ(s.ids, want);
  EXPECT_EQ(s.labels, masked_before(want, 1));
  // completion_only_loss false (or train_on_inputs): every token.
  opts.completion_only_loss = false;
  EXPECT_EQ(tokenize_example(ex, opts, merging).labels, masked_before(want, 0));
  opts.completion_only_loss = true;
  opts.train_on_inputs = true;
  EXPECT_EQ(tokenize_example(ex, opts, merging).labels, masked_before(want, 0));
  // BOS: on both encodings, so the prefix still lines up.
  EosTextEncoder with_bos(true);
  opts.train_on_inputs = false;
  s = tokenize_example(ex, opts, with_bos);
  want = concat({{FakeEncoder::kBos}, FakeEncoder::bytes("x:Tz"), {FakeEncoder::kEos}});
  EXPECT_EQ(s.ids, want);
  EXPECT_EQ(s.labels, masked_before(want, 3));
  // The template does not apply to TRL's string formats.
  opts.tmpl = Template::Plain;
  EXPECT_EQ(tokenize_example(ex, opts, with_bos).ids, want);
}

TEST(TrlTokenize, ConversationalPromptCompletionWithChatml) {
  Example ex;
  ex.format = RowFormat::ConversationalPromptCompletion;
  ex.origin = "f.jsonl line 1";
  ex.prompt_messages = {{"user", "u"}};
  ex.completion_messages = {{"assistant", "a"}};
  TemplateOptions opts;
  opts.tmpl = Template::ChatML;
  const FakeEncoder enc;
  using F = FakeEncoder;
  const auto prompt = concat({{F::kImStart}, F::bytes("user\nu"), {F::kImEnd}, F::bytes("\n"), {F::kImStart},
                              F::bytes("assistant\n")});
  const auto ids = concat({prompt, F::bytes("a"), {F::kImEnd}, F::bytes("\n")});
  // completion_only_loss (TRL's default): everything after the generation prompt, the trailing "\n" included.
  Sample s = tokenize_example(ex, opts, enc);
  EXPECT_EQ(s.ids, ids);
  EXPECT_EQ(s.labels, masked_before(ids, prompt.size()));
  // + assistant_only_loss: the reply and its <|im_end|> only.
  opts.assistant_only_loss = true;
  s = tokenize_example(ex, opts, enc);
  auto labels = masked_before(ids, prompt.size());
  labels.back() = kIgnoreIndex;
  EXPECT_EQ(s.labels, labels);
  // completion_only_loss false, assistant_only_loss false: every token.
  opts.assistant_only_loss = false;
  opts.completion_only_loss = false;
  EXPECT_EQ(tokenize_example(ex, opts, enc).labels, masked_before(ids, 0));
  // Only the templated outputs can render messages.
  opts.tmpl = Template::Alpaca;
  EXPECT_EQ(error_of([&] { tokenize_example(ex, opts, enc); }),
            "f.jsonl line 1: a conversational prompt-completion row needs --template chatml or model, not alpaca");
}

TEST(TrlTokenize, AssistantOnlyLossOnMessagesRows) {
  Example ex;
  ex.format = RowFormat::Conversational;
  ex.messages = {{"user", "u"}, {"assistant", "a"}};
  TemplateOptions opts;
  opts.tmpl = Template::ChatML;
  const FakeEncoder enc;
  const Sample assistant_only = tokenize_example(ex, opts, enc);  // unset: !train_on_inputs (sft's default)
  EXPECT_EQ(assistant_only.targets, 2);                          // "a" and <|im_end|>
  opts.assistant_only_loss = false;                              // TRL's default: every token
  const Sample all = tokenize_example(ex, opts, enc);
  EXPECT_EQ(all.targets, static_cast<int64_t>(all.ids.size()) - 1);
  opts.assistant_only_loss = true;
  EXPECT_EQ(tokenize_example(ex, opts, enc).labels, assistant_only.labels);
}

TEST(TrlTokenize, CommonPrefixLength) {
  EXPECT_EQ(common_prefix_length({1, 2, 3}, {1, 2, 4, 5}), 2u);
  EXPECT_EQ(common_prefix_length({1, 2}, {1, 2, 3}), 2u);
  EXPECT_EQ(common_prefix_length({}, {1}), 0u);
  EXPECT_EQ(common_prefix_length({7}, {8}), 0u);
}

TEST(TrlPrepare, ReadsAndTokenisesAFile) {
  sft::data::testing::TempDir tmp;
  PrepareOptions po;
  po.dataset_path = tmp.write("pc.jsonl", R"({"prompt":"x:","completion":"Tz"})" "\n" R"({"prompt":"q","completion":"r"})");
  PreparedData d = prepare_dataset(po, EosTextEncoder());
  ASSERT_EQ(d.train->size(), 2u);
  EXPECT_EQ((*d.train)[1].ids, concat({FakeEncoder::bytes("qr"), {FakeEncoder::kEos}}));
  EXPECT_EQ((*d.train)[1].targets, 2);
}
