// Non-finite state never reaches a saved model (docs/arch/hardening.md, "Non-finite state in training").
//
// Where training checks, and what each check costs:
//   load     base model / checkpoint weights, the adapter, optimizer.safetensors: every stored value (train::Job,
//            AdamW::load_state), once per run, on files the load reads anyway.
//   update   after every applied AdamW step: one read pass over the trainable parameters (the backend's sum of
//            squares; DataParallelAdamW::parameter_sum_squares), because a finite loss and gradient norm do not
//            guarantee finite parameters: a NaN moment, an epsilon that rounds to 0 in fp32 (0/0 on a zero gradient),
//            an overflowing learning rate x weight decay. The loss would catch most of these one step later, but not
//            all (an embedding row of a token absent from the next batches stays NaN, silently). Measured with
//            bench/nonfinite_guard_bench: a fraction of the AdamW step's own memory traffic (docs).
//   save     before every checkpoint, final model, adapter and best model is written: the parameters (and, in
//            checkpoints, the AdamW moments, AdamW::save_state), so nothing written could not be loaded again.
// A non-finite result of the cheap pass is confirmed by an exact scan that names the tensor and the element.
// --allow_nonfinite_weights turns every one of these checks off (debugging).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace sft::backend {
class Backend;
}

namespace sft::train {

class DataParallelAdamW;

// The first NaN/inf among the values of params, as `tensor "<name>" holds NaN at element i of [shape]`, or "" when
// every value is finite. Each tensor is filtered by the backend's sum of squares (on the device); only a tensor whose
// sum is not finite is scanned exactly on the host.
std::string first_nonfinite_parameter(backend::Backend& be, const std::vector<model::ParamRef>& params);

// Before writing `what` (a checkpoint folder, the final model): throws "<what>: tensor ... holds NaN ...; refusing to
// save non-finite weights" naming --allow_nonfinite_weights. bf16_output (a final model saved with --torch_dtype
// bfloat16): every value is scanned for what it becomes in bf16 — a finite float beyond 3.39e38 rounds to inf.
void check_parameters_before_save(model::Model& m, const std::string& what, bool bf16_output = false);

// After the AdamW update of optimizer step `step` (1-based) at learning rate lr: the cheap pass (a collective under
// ZeRO-1, so every rank calls it), and when it is not finite the exact scan; throws naming the tensor, the step and
// the settings that can cause it. --skip_nonfinite_steps cannot help here: the update is already applied.
void check_update_finite(DataParallelAdamW& opt, model::Model& m, int64_t step, double lr);

}  // namespace sft::train
