// Helpers shared by the model-layer tests (model_test.cpp, lora_test.cpp, family_test.cpp, frozen_base_slow_test.cpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
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

// A Backend decorator that counts the bytes alive through alloc()/free() (and their peak); everything else forwards
// (the memory-plan tests compare the plan with what a real model allocates).
class CountingBackend final : public backend::ForwardingBackend {
 public:
  explicit CountingBackend(std::unique_ptr<backend::Backend> inner)
      : ForwardingBackend(*inner), owned_(std::move(inner)) {}
  int64_t live = 0, peak = 0;

  std::string name() const override { return "counting(" + inner().name() + ")"; }
  void* alloc(size_t n) override {
    void* p = inner().alloc(n);
    sizes_[p] = n;
    live += static_cast<int64_t>(n);
    peak = std::max(peak, live);
    return p;
  }
  void free(void* p) override {
    live -= static_cast<int64_t>(sizes_.at(p));
    sizes_.erase(p);
    inner().free(p);
  }

 private:
  std::unique_ptr<backend::Backend> owned_;
  std::map<void*, size_t> sizes_;
};

}  // namespace sft::model::test
