// AdamW over the model's fp32 master parameters (torch.optim.AdamW semantics, via Backend::adamw_step), global
// gradient-norm clipping (torch.nn.utils.clip_grad_norm_), and the optimizer state file of a checkpoint.
#pragma once
#include <cstdint>
#include <filesystem>
#include <vector>

#include "model/model.h"

namespace sft::backend {
struct AdamWArgs;
class Backend;
}

namespace sft::train {

struct AdamWHyper {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  // The backend's per-call arguments for one parameter (weight decay only where the parameter takes it).
  backend::AdamWArgs args(double lr, bool decay, int64_t step) const;
};

class AdamW {
 public:
  // m and v (fp32, zeroed) are allocated on the backend for every parameter.
  AdamW(backend::Backend& be, std::vector<model::ParamRef> params, AdamWHyper hyper);
  ~AdamW();
  AdamW(const AdamW&) = delete;
  AdamW& operator=(const AdamW&) = delete;

  // L2 norm over all gradients together (sum of squares accumulated in double), as clip_grad_norm_(norm_type=2).
  double grad_norm();
  // torch clip_grad_norm_: coef = max_norm / (norm + 1e-6) computed in fp32, clamped to <= 1, grads *= coef.
  // Returns the norm before clipping. max_norm <= 0: no clipping (the norm is still returned).
  double clip_grad_norm(double max_norm);
  // One update with this lr; the step counter (bias correction) advances first, like torch.
  // Parameters with decay == false (norms, biases) get no weight decay.
  void step(double lr);
  int64_t steps_done() const { return step_; }

  // Optimizer state file: safetensors with "exp_avg.<name>", "exp_avg_sq.<name>" (F32, parameter shape) and the step
  // count in the metadata. load_state checks names and shapes against the current parameters.
  void save_state(const std::filesystem::path& file) const;
  void load_state(const std::filesystem::path& file);

 private:
  backend::Backend& be_;
  std::vector<model::ParamRef> params_;
  AdamWHyper hyper_;
  std::vector<float*> m_, v_;
  int64_t step_ = 0;
};

}  // namespace sft::train
