// Templates byte-exact against the brief / stanford_alpaca, and label masks with a byte-level fake encoder.
#include <gtest/gtest.h>

#include "data/template.h"
#include "fake_encoder.h"
#include "util/error.h"

namespace sft::data {
namespace {

using testing::FakeEncoder;

Example row(std::string instruction, std::string input, std::string output) {
  Example e;
  e.instruction = std::move(instruction);
  e.input = std::move(input);
  e.output = std::move(output);
  e.origin = "test row 1";
  return e;
}

TemplateOptions with(Template t, bool train_on_inputs = false, std::string system = "") {
  TemplateOptions o;
  o.tmpl = t;
  o.train_on_inputs = train_on_inputs;
  o.system_prompt = std::move(system);
  return o;
}

// The exact strings from the brief (tatsu-lab/stanford_alpaca PROMPT_DICT), written out in full here on purpose.
const std::string kBriefWithInput =
    "Below is an instruction that describes a task, paired with an input that provides further context. Write a "
    "response that appropriately completes the request.\n\n### Instruction:\nINS\n\n### Input:\nINP\n\n### Response:";
const std::string kBriefNoInput =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\nINS\n\n### Response:";

TEST(Template, AlpacaByteExact) {
  auto segs = render(row("INS", "INP", "OUT"), with(Template::Alpaca));
  ASSERT_EQ(segs.size(), 2u);
  EXPECT_EQ(segs[0].text, kBriefWithInput);
  EXPECT_FALSE(segs[0].target);
  EXPECT_EQ(segs[1].text, "OUT");
  EXPECT_TRUE(segs[1].target);
  EXPECT_TRUE(segs[1].append_eos);
  EXPECT_EQ(render_text(render(row("INS", "", "OUT"), with(Template::Alpaca))), kBriefNoInput + "OUT");
  EXPECT_EQ(inference_prompt("INS", "INP", with(Template::Alpaca)), kBriefWithInput);
  EXPECT_EQ(inference_prompt("INS", "", with(Template::Alpaca)), kBriefNoInput);
  // Placeholders inside user text stay literal (single-pass substitution).
  EXPECT_EQ(inference_prompt("use {input} here", "x", with(Template::Alpaca)).find("use {input} here") !=
                std::string::npos,
            true);
}

TEST(Template, ChatmlByteExactAndSystemPolicy) {
  // Instruction rows: one user turn (instruction + "\n\n" + input) and one assistant turn; no default system block.
  EXPECT_EQ(render_text(render(row("Q", "", "A"), with(Template::ChatML))),
            "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n");
  EXPECT_EQ(render_text(render(row("Q", "ctx", "A"), with(Template::ChatML))),
            "<|im_start|>user\nQ\n\nctx<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n");
  // The brief's ChatML string, with a system prompt supplied by the option.
  EXPECT_EQ(render_text(render(row("q", "", "a"), with(Template::ChatML, false, "SYS"))),
            "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n");
  // A row's own system message wins over the option.
  Example chat;
  chat.origin = "c.jsonl line 1";
  chat.messages = {{"system", "ROW"}, {"user", "u"}, {"assistant", "a"}};
  EXPECT_EQ(render_text(render(chat, with(Template::ChatML, false, "OPT"))),
            "<|im_start|>system\nROW<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n");
  EXPECT_EQ(inference_prompt("q", "", with(Template::ChatML)), "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(inference_chat_prompt({{"user", "u"}}, with(Template::ChatML, false, "S")),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nu<|im_end|>\n<|im_start|>assistant\n");
}

TEST(Template, PlainConcatenation) {
  EXPECT_EQ(render_text(render(row("I", "N", "O"), with(Template::Plain))), "I\nN\nO");
  EXPECT_EQ(render_text(render(row("I", "", "O"), with(Template::Plain))), "I\nO");
  EXPECT_EQ(inference_prompt("I", "N", with(Template::Plain)), "I\nN\n");
}

TEST(Template, ParseNames) {
  EXPECT_EQ(parse_template("alpaca"), Template::Alpaca);
  EXPECT_EQ(parse_template("chatml"), Template::ChatML);
  EXPECT_EQ(parse_template("plain"), Template::Plain);
  EXPECT_EQ(parse_template("model"), Template::Model);
  try {
    parse_template("vicuna");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown template \"vicuna\" (expected alpaca, chatml, plain, model or auto)");
  }
}

TEST(Masks, AlpacaPromptMaskedResponseAndEosTargets) {
  FakeEncoder enc;
  Example ex = row("Say hi", "", "Hi!");
  Sample s = tokenize_example(ex, with(Template::Alpaca), enc);
  const std::string prompt = inference_prompt("Say hi", "", with(Template::Alpaca));
  std::vector<int32_t> expect_ids = FakeEncoder::bytes(prompt);
  const size_t np = expect_ids.size();
  for (int32_t id : FakeEncoder::bytes("Hi!")) expect_ids.push_back(id);
  expect_ids.push_back(FakeEncoder::kEos);
  ASSERT_EQ(s.ids, expect_ids);
  for (size_t i = 0; i < s.ids.size(); ++i) EXPECT_EQ(s.labels[i], i < np ? kIgnoreIndex : s.ids[i]) << i;
  EXPECT_EQ(s.targets, 4);  // "Hi!" + EOS
  // train_on_inputs: everything is a target except the first token (nothing predicts it).
  Sample all = tokenize_example(ex, with(Template::Alpaca, true), enc);
  EXPECT_EQ(all.ids, s.ids);
  EXPECT_EQ(all.labels[0], kIgnoreIndex);
  for (size_t i = 1; i < all.ids.size(); ++i) EXPECT_EQ(all.labels[i], all.ids[i]);
  EXPECT_EQ(all.targets, static_cast<int64_t>(all.ids.size()) - 1);
}

TEST(Masks, EmptyOutputStillTrainsEos) {
  Sample s = tokenize_example(row("x", "", ""), with(Template::Plain), FakeEncoder());
  EXPECT_EQ(s.targets, 1);
  EXPECT_EQ(s.ids.back(), FakeEncoder::kEos);
  EXPECT_EQ(s.labels.back(), FakeEncoder::kEos);
}

TEST(Masks, BosPrependedAndMasked) {
  Sample s = tokenize_example(row("x", "", "y"), with(Template::Plain), FakeEncoder(true, true, true));
  EXPECT_EQ(s.ids[0], FakeEncoder::kBos);
  EXPECT_EQ(s.labels[0], kIgnoreIndex);
  EXPECT_EQ(s.ids[1], 100 + 'x');
}

TEST(Masks, ChatmlMultiTurnEveryAssistantTurnIsTarget) {
  Example chat;
  chat.origin = "c.jsonl line 1";
  chat.messages = {{"system", "S"}, {"user", "u1"}, {"assistant", "a1"}, {"user", "u2"}, {"assistant", "a2"}};
  Sample s = tokenize_example(chat, with(Template::ChatML), FakeEncoder());
  // Reconstruct the targets: exactly "a1" <|im_end|> "a2" <|im_end|>, in order.
  std::vector<int32_t> targets;
  for (size_t i = 0; i < s.ids.size(); ++i)
    if (s.labels[i] != kIgnoreIndex) {
      EXPECT_EQ(s.labels[i], s.ids[i]);
      targets.push_back(s.ids[i]);
    }
  std::vector<int32_t> expect = FakeEncoder::bytes("a1");
  expect.push_back(FakeEncoder::kImEnd);
  for (int32_t id : FakeEncoder::bytes("a2")) expect.push_back(id);
  expect.push_back(FakeEncoder::kImEnd);
  EXPECT_EQ(targets, expect);
  EXPECT_EQ(s.targets, 6);
  // No EOS (<|endoftext|>-style) anywhere: ChatML ends targets with <|im_end|>.
  EXPECT_EQ(std::count(s.ids.begin(), s.ids.end(), FakeEncoder::kEos), 0);
  // The "\n" after each assistant <|im_end|> is masked.
  for (size_t i = 0; i + 1 < s.ids.size(); ++i) {
    if (s.ids[i] == FakeEncoder::kImEnd && s.labels[i] != kIgnoreIndex) {
      EXPECT_EQ(s.labels[i + 1], kIgnoreIndex);
    }
  }
  // Special tokens are ids, never their text bytes.
  EXPECT_EQ(std::count(s.ids.begin(), s.ids.end(), FakeEncoder::kImStart), 5);
}

TEST(Masks, ErrorsNameTheRow) {
  Example chat;
  chat.origin = "c.jsonl line 7";
  chat.messages = {{"user", "u"}, {"assistant", "a"}};
  try {
    tokenize_example(chat, with(Template::Alpaca), FakeEncoder());
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "c.jsonl line 7: a chat row (\"messages\") needs --template chatml, not alpaca");
  }
  try {
    tokenize_example(row("q", "", "a"), with(Template::Alpaca), FakeEncoder(true, false));
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "test row 1: the tokenizer has no eos_token (tokenizer_config.json) to end targets");
  }
  try {
    tokenize_example(row("q", "", "a"), with(Template::ChatML), FakeEncoder(false));
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(),
                 "test row 1: the chatml template needs the token <|im_start|> but the tokenizer has no such token");
  }
}

}  // namespace
}  // namespace sft::data
