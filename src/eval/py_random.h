// CPython's random.Random, as far as lm-eval's few-shot sampler uses it: Random(seed) with an int seed (MT19937
// init_by_array over the 32-bit words of |seed|), getrandbits(k <= 32), _randbelow and sample(population, k).
// lm-eval draws ARC/HellaSwag few-shot examples with random.Random(fewshot_seed).sample(docs, n), one call per test
// document in document order, so reproducing the exact stream is what makes our few-shot prompts identical.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

namespace sft::eval {

class PyRandom {
 public:
  explicit PyRandom(uint64_t seed);
  uint32_t genrand_uint32();
  uint32_t getrandbits(int k);            // 0 <= k <= 32
  uint64_t randbelow(uint64_t n);         // _randbelow_with_getrandbits, n >= 1, n < 2^32
  // random.sample(range(n), k): the indices sample() would pick, in its order.
  std::vector<int64_t> sample_indices(int64_t n, int64_t k);

 private:
  std::array<uint32_t, 624> mt_{};
  int mti_ = 625;
};

}  // namespace sft::eval
