// NEFTune (Jain et al. 2023; transformers' neftune_post_forward_hook): uniform noise U(-m, m) added to the input
// embeddings of training forward passes only, m = alpha / sqrt(L * hidden).
//
// The noise is a pure function of (seed, element index): generated on the host by a counter-based hash and uploaded
// (the decoder then adds it with the backend's `add`), so every backend sees the same values bit for bit and a
// resumed run draws the same noise as an uninterrupted one (the trainer derives the seed from the run's seed, the
// optimizer step and the micro-batch, as for LoRA dropout). A host buffer rather than a kernel: the cost is one hash
// per embedding element (n x hidden, small next to a training step) and, on CUDA, one upload of that size per
// micro-batch; in exchange no backend needs a random-number kernel of its own.
//
// Typical use (train/trainer.cpp, per micro-batch):
//   model.set_embedding_noise({alpha, seed_of(step, micro), L});   // then forward_backward(batch, ...)
#pragma once
#include <cstdint>

namespace sft::model {

struct EmbeddingNoise {
  double alpha = 0;     // 0 = off
  uint64_t seed = 0;    // noise of element i of the [n x hidden] embedded batch = neftune_unit(seed, i) * m
  int64_t seq_len = 0;  // L of the scale (the trainer decides it: the batch's T, as transformers' hook; > 0 when on)
};

// m as transformers computes it: alpha / torch.sqrt(torch.tensor(L * hidden)), all in float32 (the int64 product
// converted to float32, its correctly rounded sqrt s, then (1 / s) * alpha: torch evaluates number / tensor as
// reciprocal(tensor) * number). torch's own float32 sqrt on x86 CPUs is off by one ulp for ~0.6% of the products, so m
// can differ from transformers' by up to two ulps there (tests/train/test_neftune.py measures it).
float neftune_magnitude(double alpha, int64_t seq_len, int64_t hidden);

// Element i's draw in [-1, 1): a splitmix64 hash of (seed, i), 24 bits k, (2k - 2^24) / 2^24 (exact in float32).
// The noise is magnitude * neftune_unit: uniform on [-m, m) in steps of m / 2^23, the resolution of torch's
// float32 uniform_ on [0, 1).
inline float neftune_unit(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const int64_t k = static_cast<int64_t>(z >> 40);
  return static_cast<float>(2 * k - (int64_t{1} << 24)) * (1.0f / 16777216.0f);
}

// out[i] = magnitude * neftune_unit(seed, i) for i in [0, n).
void neftune_noise(float* out, int64_t n, float magnitude, uint64_t seed);

}  // namespace sft::model
