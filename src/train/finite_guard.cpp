#include "train/finite_guard.h"

#include <cmath>
#include <cstdio>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/weight_check.h"
#include "train/data_parallel.h"
#include "util/bf16.h"
#include "util/error.h"

namespace sft::train {

namespace {

// Exact scan of one tensor on the host (in place where the backend's memory is the host's). bf16: what each value
// becomes when saved in bfloat16.
std::string scan_exactly(backend::Backend& be, const model::ParamRef& p, bool bf16) {
  be.synchronize();
  std::vector<float> copy;
  const float* host = static_cast<const float*>(be.host_view(p.value));
  if (!host) {
    copy.resize(static_cast<size_t>(p.numel));
    be.download(copy.data(), p.value, copy.size() * sizeof(float));
    host = copy.data();
  }
  const std::string where = "tensor \"" + p.name + "\" holds ";
  const auto at = [&](int64_t i) { return " at element " + std::to_string(i) + " of " + io::shape_str(p.shape); };
  const int64_t bad = model::first_nonfinite(host, p.numel);
  if (bad >= 0)
    return where + model::nonfinite_name(io::DType::F32, reinterpret_cast<const uint8_t*>(host), bad) + at(bad);
  for (int64_t i = 0; bf16 && i < p.numel; ++i) {
    const uint16_t h = float_to_bf16(host[i]);
    if ((h & 0x7F80u) != 0x7F80u) continue;
    char v[32];
    std::snprintf(v, sizeof v, "%g", static_cast<double>(host[i]));
    return where + v + at(i) + ", which rounds to " + (h & 0x8000u ? "-inf" : "inf") + " in bfloat16";
  }
  return "";  // finite values whose squares overflowed the filter's fp32 sums
}

}  // namespace

std::string first_nonfinite_parameter(backend::Backend& be, const std::vector<model::ParamRef>& params) {
  for (const model::ParamRef& p : params) {
    if (std::isfinite(be.sum_squares(p.value, p.numel))) continue;
    std::string found = scan_exactly(be, p, false);
    if (!found.empty()) return found;
  }
  return "";
}

void check_parameters_before_save(model::Model& m, const std::string& what, bool bf16_output) {
  std::string bad;
  if (!bf16_output) {
    bad = first_nonfinite_parameter(m.backend(), m.parameters());
  } else {  // no filter: a value can be finite (and its square too) yet round to inf
    for (const model::ParamRef& p : m.parameters())
      if (bad = scan_exactly(m.backend(), p, true); !bad.empty()) break;
  }
  SFT_CHECK(bad.empty(), what, ": ", bad, "; refusing to save non-finite weights (pass ", model::kAllowNonfiniteFlag,
            " to save them anyway, for debugging)");
}

void check_update_finite(DataParallelAdamW& opt, model::Model& m, int64_t step, double lr) {
  if (std::isfinite(opt.parameter_sum_squares())) return;
  const std::string bad = first_nonfinite_parameter(m.backend(), m.parameters());
  if (bad.empty()) return;  // huge but finite values: nothing non-finite to report
  char lr_text[32];
  std::snprintf(lr_text, sizeof lr_text, "%g", lr);
  throw Error("optimizer step " + std::to_string(step) + ": after the update " + bad +
              " although the loss and gradient norm were finite (learning rate " + lr_text +
              "; causes: a non-finite AdamW state, --adam_epsilon rounding to 0 in fp32 on a zero gradient, "
              "--learning_rate x --weight_decay overflowing); training stopped and no final model was saved "
              "(--skip_nonfinite_steps cannot skip an update already applied; pass " +
              model::kAllowNonfiniteFlag + " to train on anyway, for debugging)");
}

}  // namespace sft::train
