// Tokenizer throughput, our side of bench/tokenizer_bench.py (which runs HF `tokenizers` as the peer).
// Usage: tokenizer_bench MODEL_DIR CORPUS.bin [warm_passes=3]
// CORPUS.bin: documents as (u32 little-endian length, bytes)*. Single thread. Times are process CPU seconds (the
// build machine is shared, so wall time mostly measures other people's jobs). Prints one line:
//   load_s <s> cold_s <first pass, empty word cache> warm_s <best later pass> bytes <n> tokens <n>
#include <algorithm>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/file_util.h"

int main(int argc, char** argv) {
  try {
    SFT_CHECK(argc >= 3, "usage: tokenizer_bench MODEL_DIR CORPUS.bin [warm_passes]");
    const int warm_passes = argc > 3 ? std::max(1, std::atoi(argv[3])) : 3;
    auto cpu_now = [] {
      timespec ts;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
      return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
    };
    auto secs = [&](double since) { return cpu_now() - since; };
    double t = cpu_now();
    const auto tok = sft::tok::Tokenizer::load(argv[1]);
    const double load_s = secs(t);
    const std::string corpus = sft::read_file(argv[2]);
    std::vector<std::string_view> docs;
    size_t bytes = 0;
    for (size_t pos = 0; pos + 4 <= corpus.size();) {
      uint32_t len;
      std::memcpy(&len, corpus.data() + pos, 4);
      pos += 4;
      SFT_CHECK(pos + len <= corpus.size(), "corpus truncated at byte ", pos);
      docs.emplace_back(corpus.data() + pos, len);
      pos += len;
      bytes += len;
    }
    std::vector<int32_t> ids;
    size_t tokens = 0;
    auto pass = [&] {
      tokens = 0;
      const double t0 = cpu_now();
      for (auto d : docs) {
        ids.clear();
        tok.encode_into(d, false, ids);
        tokens += ids.size();
      }
      return secs(t0);
    };
    const double cold = pass();
    double warm = 1e300;
    for (int i = 0; i < warm_passes; ++i) warm = std::min(warm, pass());
    std::printf("load_s %.4f cold_s %.4f warm_s %.4f bytes %zu tokens %zu\n", load_s, cold, warm, bytes, tokens);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
}
