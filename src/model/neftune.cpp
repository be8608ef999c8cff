// NEFTune's scale and noise (model/neftune.h), and Model's default for models without it.
#include "model/neftune.h"

#include <cmath>

#include "model/model.h"
#include "util/error.h"

namespace sft::model {

float neftune_magnitude(double alpha, int64_t seq_len, int64_t hidden) {
  SFT_CHECK(seq_len > 0 && hidden > 0, "NEFTune: sequence length ", seq_len, " and hidden size ", hidden,
            " must be positive");
  // alpha / torch.sqrt(torch.tensor(L * hidden)): the int64 product promoted to float32, its float32 square root, and a
  // Python number divided by a tensor, which torch computes as tensor.reciprocal() * number in float32.
  const float root = std::sqrt(static_cast<float>(seq_len * hidden));
  return (1.0f / root) * static_cast<float>(alpha);
}

void neftune_noise(float* out, int64_t n, float magnitude, uint64_t seed) {
  for (int64_t i = 0; i < n; ++i) out[i] = magnitude * neftune_unit(seed, static_cast<uint64_t>(i));
}

void Model::set_embedding_noise(const EmbeddingNoise& noise) {
  SFT_CHECK(noise.alpha == 0, "this model does not implement NEFTune embedding noise");
}

}  // namespace sft::model
