// MPI implementation of the communicator (host buffers; CPU ranks). Compiled only when CMake finds MPI.
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "parallel/communicator.h"
#include "util/error.h"

namespace sft::parallel {

namespace {

using Clock = std::chrono::steady_clock;

int g_rank = 0;  // for the error handler (MPI calls it without our object)

void on_mpi_error(MPI_Comm*, int* code, ...) {
  char text[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(*code, text, &len);
  std::fflush(stdout);
  std::fprintf(stderr, "sft: error: rank %d: MPI error: %s (a peer rank has probably died; the job is aborted)\n",
               g_rank, text);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int inited = 0;
    MPI_Initialized(&inited);
    SFT_CHECK(!inited, "MPI is already initialised in this process");
    int provided = 0;
    // FUNNELED: only the main thread calls MPI (OpenMP workers never do; the watchdog thread never does).
    SFT_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS, "MPI_Init failed");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
    g_rank = rank_;
    MPI_Errhandler eh;
    MPI_Comm_create_errhandler(on_mpi_error, &eh);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, eh);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &local_rank_);
    MPI_Comm_size(local, &local_size_);
    MPI_Comm_free(&local);
    watchdog_ = std::thread([this] { watch(); });
  }
  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }

  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }

  void all_reduce_sum(double* x, size_t n) override {
    Op op(this, "all-reduce (f64)");
    chunked(n, [&](size_t off, int c) { MPI_Allreduce(MPI_IN_PLACE, x + off, c, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD); });
  }
  void all_reduce_sum(int64_t* x, size_t n) override {
    Op op(this, "all-reduce (i64)");
    chunked(n, [&](size_t off, int c) { MPI_Allreduce(MPI_IN_PLACE, x + off, c, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD); });
  }
  void broadcast_host(void* p, size_t bytes, int root) override {
    Op op(this, "broadcast");
    auto* b = static_cast<char*>(p);
    chunked(bytes, [&](size_t off, int c) { MPI_Bcast(b + off, c, MPI_BYTE, root, MPI_COMM_WORLD); });
  }
  void barrier() override {
    Op op(this, "barrier");
    MPI_Barrier(MPI_COMM_WORLD);
  }
  void all_reduce_sum(float* x, size_t n) override {
    Op op(this, "all-reduce (f32)");
    chunked(n, [&](size_t off, int c) { MPI_Allreduce(MPI_IN_PLACE, x + off, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); });
  }
  void reduce_scatter_sum(const float* in, float* out, size_t n) override {
    SFT_CHECK(n <= static_cast<size_t>(INT_MAX), "reduce-scatter of ", n, " values per rank: too large for MPI");
    Op op(this, "reduce-scatter (f32)");
    MPI_Reduce_scatter_block(in, out, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
  }
  void all_gather_inplace(float* buf, size_t n) override {
    SFT_CHECK(n <= static_cast<size_t>(INT_MAX), "all-gather of ", n, " values per rank: too large for MPI");
    Op op(this, "all-gather (f32)");
    MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, static_cast<int>(n), MPI_FLOAT, MPI_COMM_WORLD);
  }
  void broadcast(float* x, size_t n, int root) override {
    Op op(this, "broadcast (f32)");
    chunked(n, [&](size_t off, int c) { MPI_Bcast(x + off, c, MPI_FLOAT, root, MPI_COMM_WORLD); });
  }
  [[noreturn]] void abort(int code) override {
    std::fflush(stdout);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }
  void set_timeout(double seconds) override { timeout_s_.store(seconds); }
  double comm_seconds() const override { return comm_seconds_; }

 private:
  // Marks the span of one collective for the watchdog and the communication-time counter.
  struct Op {
    Op(MpiCommunicator* c, const char* what) : c_(c), t0_(Clock::now()) {
      c_->op_name_.store(what);
      c_->op_start_ns_.store(t0_.time_since_epoch().count());
    }
    ~Op() {
      c_->op_start_ns_.store(0);
      c_->comm_seconds_ += std::chrono::duration<double>(Clock::now() - t0_).count();
    }
    MpiCommunicator* c_;
    Clock::time_point t0_;
  };

  template <class F>
  static void chunked(size_t n, F&& f) {
    constexpr size_t kMax = size_t{1} << 30;  // MPI counts are int
    for (size_t off = 0; off < n; off += kMax) f(off, static_cast<int>(std::min(kMax, n - off)));
  }

  // A collective that blocks past the timeout means a peer is gone or the ranks diverged: MPI itself would wait
  // forever. Print which operation and end this process; the launcher (mpirun / srun --kill-on-bad-exit) then
  // ends the others.
  void watch() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!stop_) {
      cv_.wait_for(lk, std::chrono::milliseconds(500));
      const int64_t start = op_start_ns_.load();
      const double limit = timeout_s_.load();
      if (stop_ || start == 0 || limit <= 0) continue;
      const double waited =
          std::chrono::duration<double>(Clock::now().time_since_epoch() - Clock::duration(start)).count();
      if (waited > limit) {
        std::fprintf(stderr,
                     "sft: error: rank %d: %s waited %.0f s for the other ranks (--ddp_timeout %.0f): a rank died, hangs "
                     "or runs different settings; giving up\n",
                     rank_, op_name_.load(), waited, limit);
        std::fflush(stderr);
        std::_Exit(1);
      }
    }
  }

  int rank_ = 0, world_ = 1, local_rank_ = 0, local_size_ = 1;
  double comm_seconds_ = 0.0;
  std::atomic<int64_t> op_start_ns_{0};
  std::atomic<const char*> op_name_{""};
  std::atomic<double> timeout_s_{1800.0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }
bool mpi_available() { return true; }

}  // namespace sft::parallel
