// Helpers shared by the model-layer tests (model_test.cpp, lora_test.cpp).
#pragma once
#include <cmath>
#include <vector>

#include "model/model.h"

namespace sft::model::test {

// Every trainable parameter's gradient, concatenated in parameters() order.
inline std::vector<float> grads_of(Model& m) {
  std::vector<float> out;
  for (const ParamRef& p : m.parameters()) {
    std::vector<float> h(p.numel);
    m.backend().download(h.data(), p.grad, p.numel * sizeof(float));
    out.insert(out.end(), h.begin(), h.end());
  }
  return out;
}

// ||a - b|| / ||b|| (L2, accumulated in double).
inline double rel(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * double(a[i] - b[i]), den += double(b[i]) * b[i];
  return std::sqrt(num / den);
}

}  // namespace sft::model::test
