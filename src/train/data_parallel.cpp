#include "train/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "backend/backend.h"
#include "parallel/communicator.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace sft::train {

DataParallelAdamW::DataParallelAdamW(parallel::Communicator& comm, backend::Backend& be,
                                     std::vector<model::ParamRef> params, AdamWHyper hyper, DataParallelOptions opts)
    : comm_(comm), be_(be), params_(std::move(params)), hyper_(hyper), opts_(opts) {
  SFT_CHECK(opts_.zero_stage == 0 || opts_.zero_stage == 1, "--zero_stage ", opts_.zero_stage,
            ": expected 0 (replicated optimizer state) or 1 (AdamW state sharded across ranks)");
  SFT_CHECK(opts_.bucket_floats > 0, "--ddp_bucket_cap_mb must be > 0");
  if (comm_.world_size() == 1) {
    single_ = std::make_unique<AdamW>(be_, params_, hyper_);
    single_->set_allow_nonfinite(opts_.allow_nonfinite);
    return;
  }
  const int64_t world = comm_.world_size(), rank = comm_.rank();
  int64_t total = 0;
  for (const auto& p : params_) {
    SFT_CHECK(p.value && p.grad && p.numel > 0, "optimizer: parameter ", p.name, " has no value/grad storage");
    param_flat_.push_back(total);
    total += p.numel;
  }
  int64_t max_part = 0;
  for (int64_t begin = 0; begin < total; begin += opts_.bucket_floats) {
    Bucket b;
    b.begin = begin;
    b.len = std::min(opts_.bucket_floats, total - begin);
    b.part = opts_.zero_stage == 1 ? (b.len + world - 1) / world : b.len;
    max_part = std::max(max_part, b.part);
    buckets_.push_back(b);
  }
  // Owned flat ranges: everything (ZeRO-0) or part `rank` of every bucket (ZeRO-1); cut at parameter boundaries.
  size_t pi = 0;
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    const Bucket& b = buckets_[bi];
    int64_t lo = b.begin, hi = b.begin + b.len;
    if (opts_.zero_stage == 1) {
      lo = std::min(b.begin + rank * b.part, hi);
      hi = std::min(lo + b.part, hi);
    }
    while (pi > 0 && param_flat_[pi] > lo) --pi;
    for (int64_t at = lo; at < hi;) {
      while (param_flat_[pi] + params_[pi].numel <= at) ++pi;
      const int64_t end = std::min(hi, param_flat_[pi] + params_[pi].numel);
      Segment s;
      s.param = pi;
      s.bucket = bi;
      s.param_off = at - param_flat_[pi];
      s.flat = at;
      s.state_off = state_n_;
      s.n = end - at;
      state_n_ += s.n;
      owned_.push_back(s);
      at = end;
    }
  }
  const auto alloc = [&](int64_t n) { return static_cast<float*>(be_.alloc(static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float))); };
  m_ = alloc(state_n_);
  v_ = alloc(state_n_);
  if (opts_.zero_stage == 1) gshard_ = alloc(state_n_ + max_part);  // + room for a reduce-scatter into a short part
  staging_ = alloc(opts_.zero_stage == 1 ? max_part * world : max_part);
}

DataParallelAdamW::~DataParallelAdamW() {
  for (float* p : {m_, v_, gshard_, staging_})
    if (p) be_.free(p);
}

int64_t DataParallelAdamW::steps_done() const { return single_ ? single_->steps_done() : step_; }

float* DataParallelAdamW::seg_grad(const Segment& s) const {
  return opts_.zero_stage == 1 ? gshard_ + s.state_off : params_[s.param].grad + s.param_off;
}

int64_t DataParallelAdamW::sole_param(const Bucket& b) const {
  const auto it = std::upper_bound(param_flat_.begin(), param_flat_.end(), b.begin);
  const size_t i = static_cast<size_t>(it - param_flat_.begin()) - 1;
  const bool inside = param_flat_[i] + params_[i].numel >= b.begin + b.len;
  const bool unpadded = opts_.zero_stage == 0 || b.part * comm_.world_size() == b.len;
  return inside && unpadded ? static_cast<int64_t>(i) : -1;
}

void DataParallelAdamW::pack(const Bucket& b, bool grads) {
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t lo = std::max(b.begin, param_flat_[i]), hi = std::min(b.begin + b.len, param_flat_[i] + params_[i].numel);
    if (lo >= hi) continue;
    const float* src = (grads ? params_[i].grad : params_[i].value) + (lo - param_flat_[i]);
    be_.copy(staging_ + (lo - b.begin), src, static_cast<size_t>(hi - lo) * sizeof(float));
  }
}

void DataParallelAdamW::unpack(const Bucket& b, bool grads) {
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t lo = std::max(b.begin, param_flat_[i]), hi = std::min(b.begin + b.len, param_flat_[i] + params_[i].numel);
    if (lo >= hi) continue;
    float* dst = (grads ? params_[i].grad : params_[i].value) + (lo - param_flat_[i]);
    be_.copy(dst, staging_ + (lo - b.begin), static_cast<size_t>(hi - lo) * sizeof(float));
  }
}

void DataParallelAdamW::broadcast_parameters() {
  if (single_) return;
  be_.synchronize();
  for (const auto& p : params_) comm_.broadcast(p.value, static_cast<size_t>(p.numel), 0);
}

void DataParallelAdamW::reduce_gradients() {
  if (single_) return;
  be_.synchronize();
  const int64_t world = comm_.world_size();
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    const Bucket& b = buckets_[bi];
    const int64_t sole = sole_param(b);
    float* in_place = sole >= 0 ? params_[sole].grad + (b.begin - param_flat_[sole]) : nullptr;
    if (opts_.zero_stage == 0) {
      if (in_place) {  // large tensors: no staging copies (they would double the memory traffic)
        comm_.all_reduce_sum(in_place, static_cast<size_t>(b.len));
        continue;
      }
      pack(b, true);
      comm_.all_reduce_sum(staging_, static_cast<size_t>(b.len));
      unpack(b, true);
      continue;
    }
    if (!in_place) pack(b, true);
    const int64_t padded = b.part * world;
    if (padded > b.len) be_.zero(staging_ + b.len, static_cast<size_t>(padded - b.len) * sizeof(float));
    // This rank's part lands at the state offset of its first owned segment of the bucket (parts are contiguous).
    int64_t off = state_n_;  // a rank owning nothing of this bucket (tiny last bucket) writes into the spare room
    for (const auto& s : owned_)
      if (s.bucket == bi) {
        off = s.state_off;
        break;
      }
    // A short last part receives b.part values: the spill lands in the next bucket's part (written after this one)
    // or in the spare room after the state (gshard_ has max_part extra values), and is zero padding anyway.
    comm_.reduce_scatter_sum(in_place ? in_place : staging_, gshard_ + off, static_cast<size_t>(b.part));
  }
}

double DataParallelAdamW::clip_grad_norm(double max_norm) {
  if (single_) return single_->clip_grad_norm(max_norm);
  double ss = 0.0;
  for (const auto& s : owned_) ss += be_.sum_squares(seg_grad(s), s.n);
  if (opts_.zero_stage == 1) comm_.all_reduce_sum(&ss, 1);
  const double norm = std::sqrt(ss);
  if (max_norm <= 0) return norm;
  const float coef = static_cast<float>(max_norm) / (static_cast<float>(norm) + 1e-6f);  // as AdamW::clip_grad_norm
  if (coef < 1.0f)
    for (const auto& s : owned_) be_.scale(seg_grad(s), coef, s.n);
  return norm;
}

void DataParallelAdamW::step(double lr) {
  if (single_) return single_->step(lr);
  ++step_;
  for (const auto& s : owned_) {
    const auto& p = params_[s.param];
    const backend::AdamWArgs a = hyper_.args(lr, p.decay, step_);
    be_.adamw_step(p.value + s.param_off, seg_grad(s), m_ + s.state_off, v_ + s.state_off, s.n, a);
  }
  if (opts_.zero_stage == 0) return;
  be_.synchronize();
  for (size_t bi = 0; bi < buckets_.size(); ++bi) {
    const Bucket& b = buckets_[bi];
    if (const int64_t sole = sole_param(b); sole >= 0) {  // the updated part is already in place in the tensor
      comm_.all_gather_inplace(params_[sole].value + (b.begin - param_flat_[sole]), static_cast<size_t>(b.part));
      continue;
    }
    for (const auto& s : owned_)
      if (s.bucket == bi)
        be_.copy(staging_ + (s.flat - b.begin), params_[s.param].value + s.param_off, static_cast<size_t>(s.n) * sizeof(float));
    comm_.all_gather_inplace(staging_, static_cast<size_t>(b.part));
    unpack(b, false);
  }
}

double DataParallelAdamW::parameter_sum_squares() {
  if (single_) return single_->parameter_sum_squares();
  double ss = 0.0;  // ZeRO-0: every rank holds (and owns) every value, all equal; ZeRO-1: this rank's parts
  for (const auto& s : owned_) ss += be_.sum_squares(params_[s.param].value + s.param_off, s.n);
  if (opts_.zero_stage == 1) comm_.all_reduce_sum(&ss, 1);
  return ss;
}

void DataParallelAdamW::save_state(const std::filesystem::path& file) {
  if (single_) return single_->save_state(file);
  const bool root = comm_.rank() == 0;
  std::vector<std::vector<float>> host(root ? 2 * params_.size() : 0);
  for (size_t i = 0; root && i < params_.size(); ++i)
    for (int k = 0; k < 2; ++k) host[2 * i + k].resize(static_cast<size_t>(params_[i].numel));
  be_.synchronize();
  std::vector<float> bucket_host;
  for (int k = 0; k < 2; ++k) {
    const float* state = k == 0 ? m_ : v_;
    for (size_t bi = 0; bi < buckets_.size(); ++bi) {
      const Bucket& b = buckets_[bi];
      for (const auto& s : owned_)
        if (s.bucket == bi)
          be_.copy(staging_ + (s.flat - b.begin), state + s.state_off, static_cast<size_t>(s.n) * sizeof(float));
      if (opts_.zero_stage == 1) comm_.all_gather_inplace(staging_, static_cast<size_t>(b.part));
      if (!root) continue;
      bucket_host.resize(static_cast<size_t>(b.len));
      be_.download(bucket_host.data(), staging_, bucket_host.size() * sizeof(float));
      for (size_t i = 0; i < params_.size(); ++i) {
        const int64_t lo = std::max(b.begin, param_flat_[i]);
        const int64_t hi = std::min(b.begin + b.len, param_flat_[i] + params_[i].numel);
        if (lo < hi)
          std::copy(bucket_host.begin() + (lo - b.begin), bucket_host.begin() + (hi - b.begin),
                    host[2 * i + k].begin() + (lo - param_flat_[i]));
      }
    }
  }
  if (!root) return;
  std::vector<io::TensorToWrite> tensors;
  for (size_t i = 0; i < params_.size(); ++i)
    for (int k = 0; k < 2; ++k) {
      const std::string name = (k == 0 ? "exp_avg." : "exp_avg_sq.") + params_[i].name;
      if (!opts_.allow_nonfinite) check_moment_before_save(name, host[2 * i + k].data(), params_[i].numel, step_);
      tensors.push_back({name, io::DType::F32, params_[i].shape, host[2 * i + k].data()});
    }
  io::write_safetensors(file, std::move(tensors), {{"step", std::to_string(step_)}, {"optimizer", "adamw"}});
}

void DataParallelAdamW::load_state(const std::filesystem::path& file) {
  if (single_) return single_->load_state(file);
  const bool root = comm_.rank() == 0;
  std::unique_ptr<io::SafetensorsFile> f;
  int64_t step = 0;
  // Rank 0 validates; an invalid file is a one-line error there, and every rank must stop: the outcome is broadcast.
  std::string error;
  if (root) {
    try {
      f = std::make_unique<io::SafetensorsFile>(file);
      step = optimizer_state_step(*f);  // strict (std::stoll threw a non-sft exception past this catch on "abc")
      for (const auto& p : params_)
        for (int k = 0; k < 2; ++k) {
          const std::string name = (k == 0 ? "exp_avg." : "exp_avg_sq.") + p.name;
          const io::TensorInfo* t = f->find(name);
          SFT_CHECK(t != nullptr, file.string(), ": optimizer state lacks tensor ", name);
          SFT_CHECK(t->dtype == io::DType::F32 && t->shape == p.shape, file.string(), ": tensor ", name,
                    " has the wrong dtype or shape for this model (expected F32 of the parameter's shape)");
          if (!opts_.allow_nonfinite) check_loaded_moment(*f, *t);
        }
      SFT_CHECK(f->tensors().size() == 2 * params_.size(), file.string(), ": optimizer state has ",
                f->tensors().size(), " tensors, expected ", 2 * params_.size());
    } catch (const Error& e) {
      error = e.what();
    }
  }
  int64_t header[2] = {step, static_cast<int64_t>(error.size())};
  comm_.broadcast_host(header, sizeof header, 0);
  if (header[1] > 0) {
    error.resize(static_cast<size_t>(header[1]));
    comm_.broadcast_host(error.data(), error.size(), 0);
    throw Error(error);
  }
  step_ = header[0];
  for (int k = 0; k < 2; ++k) {
    float* state = k == 0 ? m_ : v_;
    for (size_t bi = 0; bi < buckets_.size(); ++bi) {
      const Bucket& b = buckets_[bi];
      if (root) {
        for (size_t i = 0; i < params_.size(); ++i) {
          const int64_t lo = std::max(b.begin, param_flat_[i]);
          const int64_t hi = std::min(b.begin + b.len, param_flat_[i] + params_[i].numel);
          if (lo >= hi) continue;
          const io::TensorInfo* t = f->find((k == 0 ? "exp_avg." : "exp_avg_sq.") + params_[i].name);
          be_.upload(staging_ + (lo - b.begin), f->data(*t) + (lo - param_flat_[i]) * sizeof(float),
                     static_cast<size_t>(hi - lo) * sizeof(float));
        }
      }
      comm_.broadcast(staging_, static_cast<size_t>(b.len), 0);
      for (const auto& s : owned_)
        if (s.bucket == bi)
          be_.copy(state + s.state_off, staging_ + (s.flat - b.begin), static_cast<size_t>(s.n) * sizeof(float));
    }
  }
  be_.synchronize();
}

}  // namespace sft::train
