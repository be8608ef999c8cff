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
namespace sft::io {
class SafetensorsFile;
struct TensorInfo;
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

  // Sum of squares of every parameter value: one read pass (the backend's sum_squares). NaN/inf when a parameter is
  // NaN/inf — the trainer's cheap test after each update — but also when finite values beyond ~1.8e19 overflow the
  // backend's fp32 partial sums, so a non-finite result is confirmed by an exact scan (train/finite_guard.h).
  double parameter_sum_squares() const;

  // Optimizer state file: safetensors with "exp_avg.<name>", "exp_avg_sq.<name>" (F32, parameter shape) and the step
  // count in the metadata. load_state checks names and shapes against the current parameters, and (unless
  // allow_nonfinite) that every moment is finite and every exp_avg_sq >= 0: a NaN moment turns its parameter into NaN
  // at the first update while the loss and gradient norm stay finite. save_state refuses non-finite moments too
  // (unless allow_nonfinite): such a checkpoint could not resume.
  void save_state(const std::filesystem::path& file) const;
  void load_state(const std::filesystem::path& file);
  void set_allow_nonfinite(bool allow) { allow_nonfinite_ = allow; }

 private:
  backend::Backend& be_;
  std::vector<model::ParamRef> params_;
  AdamWHyper hyper_;
  std::vector<float*> m_, v_;
  int64_t step_ = 0;
  bool allow_nonfinite_ = false;
};

// Shared with DataParallelAdamW (the same file format):
// __metadata__ "step" of an optimizer state file, a non-negative integer; throws naming the file otherwise.
int64_t optimizer_state_step(const io::SafetensorsFile& f);
// An exp_avg / exp_avg_sq tensor read from f: every value finite, and exp_avg_sq (a running mean of squares) never
// negative (its square root would be NaN). Throws naming the file, the tensor and the element.
void check_loaded_moment(const io::SafetensorsFile& f, const io::TensorInfo& t);
// Before a checkpoint is written: the moment `name` (its name in the file) holds only finite values.
void check_moment_before_save(const std::string& name, const float* values, int64_t n, int64_t step);

}  // namespace sft::train
