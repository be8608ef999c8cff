// Data-parallel AdamW of the trainer (train -> parallel): gradients reduced across ranks, optionally with the optimizer
// state sharded (ZeRO-1). Which rows each rank trains on: train/row_balance.h.
//
// Flat layout: the parameters (Model::parameters() order) form one flat index space of P values, cut into buckets of
// `bucket_floats` (HF --ddp_bucket_cap_mb). Each bucket's gradients are packed into one staging buffer and reduced in
// one collective (few large messages instead of one per tensor).
//   ZeRO-0: all-reduce of every bucket; every rank holds the full AdamW state and updates every parameter
//           (identical inputs -> identical results on every rank).
//   ZeRO-1: bucket of len L is split into world parts of ceil(L / world); rank r owns part r of every bucket:
//           reduce-scatter of the bucket's gradients gives each rank its part, it clips (global norm from an
//           all-reduce of the parts' sums of squares) and updates only its part (m and v exist only for it: 2P/world
//           floats of state instead of 2P), then an all-gather of the bucket's parameters gives everyone all weights.
// Checkpoints are world-size independent: optimizer.safetensors holds the full exp_avg / exp_avg_sq tensors by
// parameter name (the same file AdamW writes): saving gathers the state to rank 0, which writes it; loading reads it on
// rank 0 and broadcasts bucket by bucket, each rank keeping what it owns.
// World 1 delegates to AdamW unchanged (bit-identical to a run without this layer).
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "train/adamw.h"

namespace sft::parallel {
class Communicator;
}

namespace sft::train {

struct DataParallelOptions {
  int zero_stage = 0;                   // 0 or 1
  int64_t bucket_floats = 25 << 18;     // 25 MiB of fp32 (torch DDP's default bucket_cap_mb)
  bool allow_nonfinite = false;         // save / load NaN/inf AdamW moments (AdamW::set_allow_nonfinite)
};

class DataParallelAdamW {
 public:
  DataParallelAdamW(parallel::Communicator& comm, backend::Backend& be, std::vector<model::ParamRef> params,
                    AdamWHyper hyper, DataParallelOptions opts);
  ~DataParallelAdamW();
  DataParallelAdamW(const DataParallelAdamW&) = delete;
  DataParallelAdamW& operator=(const DataParallelAdamW&) = delete;

  // Every rank takes rank 0's parameter values (a fresh start from files that could differ between machines).
  void broadcast_parameters();
  // Sums the gradients of all ranks (ZeRO-0: into ParamRef::grad; ZeRO-1: this rank's part only).
  void reduce_gradients();
  // Global L2 norm of the reduced gradients; torch clip_grad_norm_ semantics (see AdamW::clip_grad_norm).
  double clip_grad_norm(double max_norm);
  // AdamW update (ZeRO-1: of this rank's part, then the all-gather of the parameters).
  void step(double lr);
  int64_t steps_done() const;
  // Sum of squares of every parameter value (AdamW::parameter_sum_squares; the same on every rank: ZeRO-1 sums the
  // owned parts and all-reduces them, a collective). Call after step().
  double parameter_sum_squares();

  // Collective. Rank 0 writes the full state file; the others only take part in the gather.
  void save_state(const std::filesystem::path& file);
  // Collective. Only rank 0 reads the file (the others may not see it).
  void load_state(const std::filesystem::path& file);

  int zero_stage() const { return opts_.zero_stage; }
  int64_t state_floats() const { return state_n_; }  // m (or v) values held by this rank

 private:
  struct Bucket {
    int64_t begin = 0, len = 0, part = 0;  // flat range, part = ceil(len / world) (ZeRO-1) or len
  };
  struct Segment {  // a piece of one parameter inside one bucket, owned (updated) by this rank
    size_t param = 0, bucket = 0;
    int64_t param_off = 0, flat = 0, state_off = 0, n = 0;
  };
  // The parameter holding the whole bucket (then collectives run in place on its buffers, no staging copies), or -1.
  int64_t sole_param(const Bucket& b) const;
  void pack(const Bucket& b, bool grads);        // staging[0, len) <- grads or values of the bucket's range
  void unpack(const Bucket& b, bool grads);      // the reverse
  float* seg_grad(const Segment& s) const;

  parallel::Communicator& comm_;
  backend::Backend& be_;
  std::vector<model::ParamRef> params_;
  std::vector<int64_t> param_flat_;  // flat offset of each parameter
  AdamWHyper hyper_;
  DataParallelOptions opts_;
  std::unique_ptr<AdamW> single_;  // world 1
  std::vector<Bucket> buckets_;
  std::vector<Segment> owned_;
  int64_t state_n_ = 0;
  float* m_ = nullptr;
  float* v_ = nullptr;
  float* gshard_ = nullptr;  // ZeRO-1: the reduced gradients of the owned parts
  float* staging_ = nullptr;
  int64_t step_ = 0;
};

}  // namespace sft::train
