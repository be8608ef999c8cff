#include "parallel/nccl/nccl_communicator.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>

#include "util/error.h"

namespace sft::parallel {

namespace {

#define SFT_NCCL_CHECK(call)                                                                            \
  do {                                                                                                  \
    ncclResult_t r_ = (call);                                                                           \
    SFT_CHECK(r_ == ncclSuccess, "NCCL: ", #call, " failed: ", ncclGetErrorString(r_));                \
  } while (0)
#define SFT_CUDART_CHECK(call)                                                                          \
  do {                                                                                                  \
    cudaError_t e_ = (call);                                                                            \
    SFT_CHECK(e_ == cudaSuccess, "CUDA: ", #call, " failed: ", cudaGetErrorString(e_));                \
  } while (0)

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> boot, int device) : boot_(std::move(boot)), device_(device) {
    SFT_CUDART_CHECK(cudaSetDevice(device_));
    SFT_CUDART_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ncclUniqueId id{};
    if (boot_->rank() == 0) SFT_NCCL_CHECK(ncclGetUniqueId(&id));
    boot_->broadcast_host(&id, sizeof id, 0);
    SFT_NCCL_CHECK(ncclCommInitRank(&comm_, boot_->world_size(), id, boot_->rank()));
  }
  ~NcclCommunicator() override {
    if (comm_) ncclCommDestroy(comm_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "nccl"; }
  int rank() const override { return boot_->rank(); }
  int world_size() const override { return boot_->world_size(); }
  int local_rank() const override { return boot_->local_rank(); }
  int local_size() const override { return boot_->local_size(); }

  void all_reduce_sum(double* x, size_t n) override { boot_->all_reduce_sum(x, n); }
  void all_reduce_sum(int64_t* x, size_t n) override { boot_->all_reduce_sum(x, n); }
  void broadcast_host(void* p, size_t bytes, int root) override { boot_->broadcast_host(p, bytes, root); }
  void barrier() override { boot_->barrier(); }

  void all_reduce_sum(float* x, size_t n) override {
    run([&] { return ncclAllReduce(x, x, n, ncclFloat32, ncclSum, comm_, stream_); });
  }
  void reduce_scatter_sum(const float* in, float* out, size_t n) override {
    run([&] { return ncclReduceScatter(in, out, n, ncclFloat32, ncclSum, comm_, stream_); });
  }
  void all_gather_inplace(float* buf, size_t n) override {
    const float* mine = buf + static_cast<size_t>(rank()) * n;  // NCCL's in-place form: send = recv + rank * n
    run([&] { return ncclAllGather(mine, buf, n, ncclFloat32, comm_, stream_); });
  }
  void broadcast(float* x, size_t n, int root) override {
    run([&] { return ncclBroadcast(x, x, n, ncclFloat32, root, comm_, stream_); });
  }
  [[noreturn]] void abort(int code) override {
    if (comm_) ncclCommAbort(comm_);
    comm_ = nullptr;
    boot_->abort(code);
  }
  void set_timeout(double seconds) override { boot_->set_timeout(seconds); }
  double comm_seconds() const override { return comm_seconds_ + boot_->comm_seconds(); }

 private:
  // The backend's kernels run on its own stream: wait for the device first, so the collective sees finished
  // gradients, and return only when the collective is done (the next kernel then reads reduced values).
  template <class F>
  void run(F&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    SFT_CUDART_CHECK(cudaDeviceSynchronize());
    SFT_NCCL_CHECK(f());
    SFT_CUDART_CHECK(cudaStreamSynchronize(stream_));
    comm_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

  std::unique_ptr<Communicator> boot_;
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  double comm_seconds_ = 0.0;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, int device) {
  SFT_CHECK(bootstrap && bootstrap->name() == "mpi", "NCCL needs the MPI communicator of the job to start");
  return std::make_unique<NcclCommunicator>(std::move(bootstrap), device);
}

}  // namespace sft::parallel
