// Driver for tests/train/test_neftune.py: NEFTune's scale and noise (model/neftune.h) for Python to compare with
// transformers' formula and with its own transcription of the noise.
//   neftune_tool magnitude < lines of "alpha L hidden"      -> one line each: the float32 magnitude as %a (exact)
//   neftune_tool noise SEED N MAGNITUDE                      -> N lines: the noise values as %a (exact)
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "model/neftune.h"

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "magnitude") {
      double alpha = 0;
      long long L = 0, H = 0;
      while (std::cin >> alpha >> L >> H) std::printf("%a\n", sft::model::neftune_magnitude(alpha, L, H));
      return 0;
    }
    if (mode == "noise" && argc == 5) {
      const uint64_t seed = std::strtoull(argv[2], nullptr, 10);
      const long long n = std::atoll(argv[3]);
      std::vector<float> x(static_cast<size_t>(n));
      sft::model::neftune_noise(x.data(), n, std::strtof(argv[4], nullptr), seed);
      for (float v : x) std::printf("%a\n", v);
      return 0;
    }
    std::fprintf(stderr, "usage: neftune_tool magnitude | neftune_tool noise SEED N MAGNITUDE\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "neftune_tool: error: %s\n", e.what());
    return 1;
  }
}
