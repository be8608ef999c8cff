// Parity driver for tests/tokenizer/test_tokenizer_parity.py and bench/tokenizer_bench.py.
// Usage: tokenize_dump_tool MODEL_DIR CORPUS.bin OUT.bin [--add_special_tokens]
// CORPUS.bin: documents as (u32 little-endian byte length, bytes)*. OUT.bin, per document:
//   u32 n, n x i32 ids, u32 m, m bytes of decode(ids), u8 (1 if StreamDecoder fed id by id + flush == decode(ids)).
// The first line printed on stdout is "encode_seconds <s> bytes <n>" (one single-threaded pass over all documents).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file_util.h"

namespace {
uint32_t read_u32(const std::string& s, size_t& pos) {
  SFT_CHECK(pos + 4 <= s.size(), "corpus: truncated length at byte ", pos);
  uint32_t v;
  std::memcpy(&v, s.data() + pos, 4);
  pos += 4;
  return v;
}
void put_u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
}  // namespace

int main(int argc, char** argv) {
  try {
    SFT_CHECK(argc >= 4, "usage: tokenize_dump_tool MODEL_DIR CORPUS.bin OUT.bin [--add_special_tokens]");
    const bool add_special = argc > 4 && std::strcmp(argv[4], "--add_special_tokens") == 0;
    const auto tok = sft::tok::Tokenizer::load(argv[1]);
    const std::string corpus = sft::read_file(argv[2]);
    std::vector<std::string_view> docs;
    for (size_t pos = 0; pos < corpus.size();) {
      const uint32_t len = read_u32(corpus, pos);
      SFT_CHECK(pos + len <= corpus.size(), "corpus: truncated document at byte ", pos);
      docs.emplace_back(corpus.data() + pos, len);
      pos += len;
    }
    std::vector<std::vector<int32_t>> all_ids(docs.size());
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t d = 0; d < docs.size(); ++d) tok.encode_into(docs[d], add_special, all_ids[d]);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("encode_seconds %.6f bytes %zu\n", secs, corpus.size() - 4 * docs.size());

    std::string out;
    for (size_t d = 0; d < docs.size(); ++d) {
      const auto& ids = all_ids[d];
      put_u32(out, static_cast<uint32_t>(ids.size()));
      out.append(reinterpret_cast<const char*>(ids.data()), ids.size() * sizeof(int32_t));
      const std::string text = tok.decode(ids);
      put_u32(out, static_cast<uint32_t>(text.size()));
      out += text;
      sft::tok::StreamDecoder stream(tok, /*skip_special_tokens=*/false);
      std::string streamed;
      for (int32_t id : ids) streamed += stream.push(id);
      streamed += stream.flush();
      out.push_back(streamed == text ? 1 : 0);
    }
    sft::write_file_atomic(argv[3], out);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenize_dump_tool: %s\n", e.what());
    return 1;
  }
}
