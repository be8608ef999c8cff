// Unit tests of the tokenizer internals. Whole-pipeline parity with HF `tokenizers` is in test_tokenizer_parity.py and
// test_tokenizer_variants.py; here: UTF-8 repair, the heap BPE against a plain quadratic reference on random words,
// the word cache against the uncached path, StreamDecoder on split characters, special-token ids, load errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <atomic>
#include <random>
#include <thread>
#include <string>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "source_dir.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/file_util.h"

namespace fs = std::filesystem;
using sft::tok::Tokenizer;

namespace {

// Decompresses tests/fixtures/tokenizers/<name> into a temp folder once per process.
fs::path fixture_dir(const std::string& name) {
  static std::map<std::string, fs::path> done;
  if (auto it = done.find(name); it != done.end()) return it->second;
  const fs::path src = fs::path(sft::test::source_dir()) / "tests/fixtures/tokenizers" / name;
  static const fs::path root = [] {
    fs::path p = fs::temp_directory_path() / ("sft_tok_test_" + std::to_string(::getpid()));
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(fs::temp_directory_path() / ("sft_tok_test_" + std::to_string(::getpid())), ec);
    });
    return p;
  }();
  const fs::path dst = root / name;
  fs::create_directories(dst);
  const std::string cmd = "zstd -q -d -f '" + (src / "tokenizer.json.zst").string() + "' -o '" +
                          (dst / "tokenizer.json").string() + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  fs::copy_file(src / "tokenizer_config.json", dst / "tokenizer_config.json", fs::copy_options::overwrite_existing);
  done[name] = dst;
  return dst;
}

const Tokenizer& qwen() {
  static const Tokenizer t = Tokenizer::load(fixture_dir("qwen3"));
  return t;
}

// Plain reference BPE on strings: repeatedly merge the adjacent pair of lowest rank (leftmost on ties).
std::vector<std::string> reference_bpe(const std::vector<std::string>& symbols,
                                       const std::map<std::pair<std::string, std::string>, int>& ranks) {
  std::vector<std::string> s = symbols;
  for (;;) {
    int best = -1, best_rank = 0;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      const auto it = ranks.find({s[i], s[i + 1]});
      if (it != ranks.end() && (best < 0 || it->second < best_rank)) {
        best = static_cast<int>(i);
        best_rank = it->second;
      }
    }
    if (best < 0) return s;
    s[static_cast<size_t>(best)] += s[static_cast<size_t>(best) + 1];
    s.erase(s.begin() + best + 1);
  }
}

}  // namespace

TEST(Utf8, RepairUsesMaximalSubparts) {
  // Unicode 15 ch. 3, "U+FFFD Substitution of Maximal Subparts" (Table 3-8 example).
  const std::string in = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(sft::tok::utf8::repair_lossy(in), "a" + r + r + r + "b" + r + "c" + r + r + "d");
  EXPECT_EQ(sft::tok::utf8::repair_lossy("\xED\xA0\x80"), r + r + r);  // surrogate: each byte is its own subpart
  EXPECT_EQ(sft::tok::utf8::repair_lossy("\xF0\x9F\x98"), r);          // truncated 4-byte sequence
  EXPECT_TRUE(sft::tok::utf8::is_valid("caf\xC3\xA9 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(sft::tok::utf8::is_valid("\xC0\xAF"));  // overlong
}

TEST(Utf8, ByteLevelTableIsGpt2Mapping) {
  const auto& t = sft::tok::utf8::byte_level_table();
  EXPECT_EQ(t.byte_to_cp[' '], 0x120u);   // 'Ġ'
  EXPECT_EQ(t.byte_to_cp['\n'], 0x10Au);  // 'Ċ'
  EXPECT_EQ(t.byte_to_cp['A'], static_cast<uint32_t>('A'));
  EXPECT_EQ(t.byte_to_cp[0xAD], 0x143u);
  for (int b = 0; b < 256; ++b) EXPECT_EQ(t.cp_to_byte[t.byte_to_cp[b]], b);
}

TEST(Bpe, HeapMergeAgreesWithQuadraticReferenceOnRandomWords) {
  const auto j = nlohmann::json::parse(sft::read_file(fixture_dir("qwen3") / "tokenizer.json"));
  const auto model = sft::tok::BpeModel::from_json(j.at("model"), /*byte_level=*/true);
  std::map<std::pair<std::string, std::string>, int> ranks;
  int r = 0;
  for (const auto& m : j.at("model").at("merges")) ranks.emplace(std::make_pair(m[0].get<std::string>(), m[1].get<std::string>()), r++);
  const auto& table = sft::tok::utf8::byte_level_table();

  std::mt19937 rng(1234);
  const std::vector<std::string> alphabet = {"e", "t", "a", "o", "n", " ", "s", "h", "r", "'", "1", "0", "\n", "\xE4\xB8\xAD",
                                             "\xE6\x96\x87", "\xF0\x9F\x98\x80", "\xC3\xA9", "ing", "the", "  ", "\t"};
  for (int trial = 0; trial < 3000; ++trial) {
    std::string word;
    const int len = 1 + static_cast<int>(rng() % 24);
    for (int k = 0; k < len; ++k) {
      if (rng() % 10 == 0) word.push_back(static_cast<char>(rng() % 256));  // any byte, valid UTF-8 or not
      else word += alphabet[rng() % alphabet.size()];
    }
    std::vector<std::string> symbols;
    for (unsigned char c : word) symbols.push_back(table.byte_to_utf8[c]);
    std::vector<int32_t> want;
    for (const auto& piece : reference_bpe(symbols, ranks)) want.push_back(model.vocab().at(piece));

    std::vector<int32_t> uncached, cached_first, cached_second;
    model.encode_word_uncached(word, uncached);
    model.encode_word(word, cached_first);   // fills the cache
    model.encode_word(word, cached_second);  // served from the cache
    ASSERT_EQ(uncached, want) << "word bytes: " << word;
    ASSERT_EQ(cached_first, want);
    ASSERT_EQ(cached_second, want);
  }
}

TEST(Tokenizer, SpecialTokenIdsFromTokenizerConfig) {
  const auto& q = qwen();
  EXPECT_EQ(q.eos_id(), q.token_to_id("<|im_end|>"));
  EXPECT_EQ(q.eos_id(), 151645);
  EXPECT_EQ(q.pad_id(), 151643);
  EXPECT_FALSE(q.bos_id().has_value());
  EXPECT_TRUE(q.is_special(151643));
  EXPECT_FALSE(q.is_special(151667));  // <think>: an added token that is not special
  EXPECT_EQ(q.vocab_size(), 151669);
  EXPECT_TRUE(q.special_prefix().empty());

  const auto l = Tokenizer::load(fixture_dir("llama3"));
  EXPECT_EQ(l.bos_id(), 128000);
  EXPECT_EQ(l.eos_id(), 128001);
  EXPECT_FALSE(l.pad_id().has_value());
}

TEST(Tokenizer, DecodeSkipsSpecialTokensOnRequest) {
  const auto& q = qwen();
  const auto ids = q.encode("<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(ids.front(), 151644);
  EXPECT_EQ(q.decode(ids), "<|im_start|>user\nhi<|im_end|>");
  EXPECT_EQ(q.decode(ids, /*skip_special_tokens=*/true), "user\nhi");
}

TEST(StreamDecoder, HoldsBackPartialCharactersAndReplacesInvalidBytes) {
  const auto& q = qwen();
  const auto& table = sft::tok::utf8::byte_level_table();
  auto byte_token = [&](unsigned char b) { return *q.token_to_id(table.byte_to_utf8[b]); };
  sft::tok::StreamDecoder s(q);
  EXPECT_EQ(s.push(byte_token(0xF0)), "");
  EXPECT_EQ(s.push(byte_token(0x9F)), "");
  EXPECT_EQ(s.push(byte_token(0x98)), "");
  EXPECT_EQ(s.push(byte_token(0x80)), "\xF0\x9F\x98\x80");
  EXPECT_EQ(s.push(byte_token(0xFF)), "\xEF\xBF\xBD");      // can never start a character
  EXPECT_EQ(s.push(byte_token(0xE4)), "");
  EXPECT_EQ(s.push(byte_token('a')), "\xEF\xBF\xBD" "a");  // interrupted sequence
  EXPECT_EQ(s.push(byte_token(0xE4)), "");
  EXPECT_EQ(s.flush(), "\xEF\xBF\xBD");                     // incomplete at the end
  EXPECT_EQ(s.push(151645), "");                            // special tokens skipped by default

  const std::string text = "naïve 中文 👩‍💻 done";
  std::string streamed;
  sft::tok::StreamDecoder s2(q);
  for (int32_t id : q.encode(text)) streamed += s2.push(id);
  streamed += s2.flush();
  EXPECT_EQ(streamed, text);
}

TEST(Tokenizer, LoadErrorsNameTheProblem) {
  const fs::path dir = fs::temp_directory_path() / ("sft_tok_bad_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  try {
    Tokenizer::load(dir);
    FAIL() << "expected an error";
  } catch (const sft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
  }
  sft::write_file_atomic(dir / "tokenizer.json", R"({"model": {"type": "WordPiece", "vocab": {}}})");
  try {
    Tokenizer::load(dir);
    FAIL() << "expected an error";
  } catch (const sft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("WordPiece"), std::string::npos) << e.what();
  }
  // Ids that are not small non-negative integers (a fuzz finding: a float id of 2e108 was undefined behaviour in the
  // integer conversion; a huge id would size the id -> piece table): one error naming the entry, never a conversion.
  const std::vector<std::pair<std::string, std::string>> bad_ids = {
      {R"({"model": {"type": "BPE", "vocab": {"a": 2.18e108}, "merges": []}})", "vocab entry 'a'"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 1.5}, "merges": []}})", "vocab entry 'a'"},
      {R"({"model": {"type": "BPE", "vocab": {"a": 4000000000}, "merges": []}})", "out of range"},
      {R"({"model": {"type": "BPE", "vocab": {"a": -3}, "merges": []}})", "out of range"},
      {R"({"added_tokens": [{"content": "<x>", "id": 1e300}], "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}})",
       "added token '<x>'"},
  };
  for (const auto& [json, want] : bad_ids) {
    sft::write_file_atomic(dir / "tokenizer.json", json);
    try {
      Tokenizer::load(dir);
      ADD_FAILURE() << "expected an error for " << json;
    } catch (const sft::Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("tokenizer.json"), std::string::npos) << e.what();
    }
  }
  fs::remove_all(dir);
}

TEST(Tokenizer, ConcurrentEncodeMatchesSingleThreaded) {
  // encode() is const and shared by data-loader threads: the word cache is locked, scratch buffers are per thread.
  const auto& q = qwen();
  std::vector<std::string> texts;
  std::mt19937 rng(99);
  const std::vector<std::string> words = {"the", " quick", " brown", " fox", "'s", " 12345", " 中文", "😀", "\n", "  ",
                                          "<|im_end|>", " naïve", " jumps", " über", "\t", " lazy", " dog."};
  for (int i = 0; i < 400; ++i) {
    std::string t;
    for (int k = 0, n = 5 + static_cast<int>(rng() % 60); k < n; ++k) t += words[rng() % words.size()];
    texts.push_back(t);
  }
  std::vector<std::vector<int32_t>> want;
  for (const auto& t : texts) want.push_back(q.encode(t));
  // A fresh tokenizer, so the threads also race on filling the word cache, not only on reading it.
  const auto fresh = Tokenizer::load(fixture_dir("qwen3"));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int th = 0; th < 4; ++th)
    threads.emplace_back([&, th] {
      for (size_t i = static_cast<size_t>(th); i < texts.size() * 3; i += 4)
        if (fresh.encode(texts[i % texts.size()]) != want[i % texts.size()]) ++mismatches;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}
