#include "train/adamw.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/weight_check.h"
#include "util/error.h"

namespace sft::train {

AdamW::AdamW(backend::Backend& be, std::vector<model::ParamRef> params, AdamWHyper hyper)
    : be_(be), params_(std::move(params)), hyper_(hyper) {
  for (const auto& p : params_) {
    SFT_CHECK(p.value && p.grad && p.numel > 0, "optimizer: parameter ", p.name, " has no value/grad storage");
    m_.push_back(static_cast<float*>(be_.alloc(static_cast<size_t>(p.numel) * sizeof(float))));
    v_.push_back(static_cast<float*>(be_.alloc(static_cast<size_t>(p.numel) * sizeof(float))));
  }
}

AdamW::~AdamW() {
  for (float* p : m_) be_.free(p);
  for (float* p : v_) be_.free(p);
}

double AdamW::grad_norm() {
  double ss = 0.0;
  for (const auto& p : params_) ss += be_.sum_squares(p.grad, p.numel);
  return std::sqrt(ss);
}

double AdamW::clip_grad_norm(double max_norm) {
  const double norm = grad_norm();
  if (max_norm <= 0) return norm;
  // torch computes the coefficient on fp32 tensors: max_norm / (total_norm + 1e-6), clamp(max=1).
  const float total = static_cast<float>(norm);
  float coef = static_cast<float>(max_norm) / (total + 1e-6f);
  if (coef < 1.0f) {
    for (const auto& p : params_) be_.scale(p.grad, coef, p.numel);
  }
  return norm;
}

backend::AdamWArgs AdamWHyper::args(double lr, bool decay, int64_t step) const {
  backend::AdamWArgs a;
  a.lr = static_cast<float>(lr);
  a.beta1 = static_cast<float>(beta1);
  a.beta2 = static_cast<float>(beta2);
  a.eps = static_cast<float>(eps);
  a.weight_decay = decay ? static_cast<float>(weight_decay) : 0.0f;
  a.step = step;
  return a;
}

void AdamW::step(double lr) {
  ++step_;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    const backend::AdamWArgs a = hyper_.args(lr, p.decay, step_);
    be_.adamw_step(p.value, p.grad, m_[i], v_[i], p.numel, a);
  }
}

double AdamW::parameter_sum_squares() const {
  double ss = 0.0;
  for (const auto& p : params_) ss += be_.sum_squares(p.value, p.numel);
  return ss;
}

int64_t optimizer_state_step(const io::SafetensorsFile& f) {
  auto it = f.metadata().find("step");
  SFT_CHECK(it != f.metadata().end(), f.path().string(), ": optimizer state has no 'step' in __metadata__");
  const std::string& t = it->second;
  int64_t v = -1;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  SFT_CHECK(ec == std::errc() && end == t.data() + t.size() && v >= 0, f.path().string(),
            ": __metadata__ \"step\" must be a non-negative integer, got \"", t, "\"");
  return v;
}

void check_loaded_moment(const io::SafetensorsFile& f, const io::TensorInfo& t) {
  const uint8_t* data = f.data(t);
  const int64_t n = t.numel();
  const int64_t bad = model::first_nonfinite(t.dtype, data, n);
  SFT_CHECK(bad < 0, f.path().string(), ": tensor \"", t.name, "\" holds ", model::nonfinite_name(t.dtype, data, bad),
            " at element ", bad, " of ", io::shape_str(t.shape), "; a non-finite AdamW moment makes its parameter NaN at ",
            "the first update (pass ", model::kAllowNonfiniteFlag, " to resume from it anyway, for debugging)");
  if (t.name.rfind("exp_avg_sq.", 0) != 0 || t.dtype != io::DType::F32) return;
  for (int64_t i = 0; i < n; ++i) {
    float x;
    std::memcpy(&x, data + static_cast<size_t>(i) * sizeof(float), sizeof x);
    if (!(x < 0.0f)) continue;
    char v[32];
    std::snprintf(v, sizeof v, "%g", static_cast<double>(x));
    throw Error(detail::concat(f.path().string(), ": tensor \"", t.name, "\" holds ", v, " at element ", i, " of ",
                               io::shape_str(t.shape), "; a second moment (a running mean of squared gradients) is ",
                               "never negative, and its square root would make the parameter NaN (pass ",
                               model::kAllowNonfiniteFlag, " to resume from it anyway, for debugging)"));
  }
}

void check_moment_before_save(const std::string& name, const float* values, int64_t n, int64_t step) {
  const int64_t bad = model::first_nonfinite(values, n);
  SFT_CHECK(bad < 0, "optimizer step ", step, ": the AdamW state \"", name, "\" holds ",
            model::nonfinite_name(io::DType::F32, reinterpret_cast<const uint8_t*>(values), bad), " at element ", bad,
            "; a checkpoint holding it could not resume, so none is written (gradients beyond ~1.8e19 overflow the "
            "squared average in fp32: keep --max_grad_norm clipping on; pass ", model::kAllowNonfiniteFlag,
            " to save it anyway, for debugging)");
}

void AdamW::save_state(const std::filesystem::path& file) const {
  // Read in place where the device memory is the host's; otherwise download to host buffers that stay alive until
  // the file is written.
  be_.synchronize();
  std::vector<std::vector<float>> host(2 * params_.size());
  std::vector<io::TensorToWrite> tensors;
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    for (int k = 0; k < 2; ++k) {
      const float* dev = k == 0 ? m_[i] : v_[i];
      const void* data = be_.host_view(dev);
      if (!data) {
        auto& buf = host[2 * i + k];
        buf.resize(static_cast<size_t>(p.numel));
        be_.download(buf.data(), dev, buf.size() * sizeof(float));
        data = buf.data();
      }
      const std::string name = (k == 0 ? "exp_avg." : "exp_avg_sq.") + p.name;
      if (!allow_nonfinite_) check_moment_before_save(name, static_cast<const float*>(data), p.numel, step_);
      tensors.push_back({name, io::DType::F32, p.shape, data});
    }
  }
  io::write_safetensors(file, std::move(tensors), {{"step", std::to_string(step_)}, {"optimizer", "adamw"}});
}

void AdamW::load_state(const std::filesystem::path& file) {
  io::SafetensorsFile f(file);
  step_ = optimizer_state_step(f);
  for (size_t i = 0; i < params_.size(); ++i) {
    const auto& p = params_[i];
    for (int k = 0; k < 2; ++k) {
      const std::string name = (k == 0 ? "exp_avg." : "exp_avg_sq.") + p.name;
      const io::TensorInfo* t = f.find(name);
      SFT_CHECK(t != nullptr, file.string(), ": optimizer state lacks tensor ", name);
      SFT_CHECK(t->dtype == io::DType::F32 && t->shape == p.shape, file.string(), ": tensor ", name,
                " has the wrong dtype or shape for this model (expected F32 of the parameter's shape)");
      if (!allow_nonfinite_) check_loaded_moment(f, *t);
      be_.upload(k == 0 ? m_[i] : v_[i], f.data(*t), static_cast<size_t>(p.numel) * sizeof(float));
    }
  }
  SFT_CHECK(f.tensors().size() == 2 * params_.size(), file.string(), ": optimizer state has ", f.tensors().size(),
            " tensors, expected ", 2 * params_.size());
}

}  // namespace sft::train
