// MPI implementation of the communicator (host buffers; CPU ranks). Compiled only when CMake finds MPI.
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/heartbeat.h"
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
    start_heartbeats();
    watchdog_ = std::thread([this] { watch(); });
  }
  ~MpiCommunicator() override {
    stop_.store(true);
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

  // Every rank's heartbeat address, exchanged once (parallel/heartbeat.h). A rank that cannot open its socket
  // still takes part in the exchange (port 0: nobody sends to it) and trains; only the diagnosis is poorer.
  void start_heartbeats() {
    uint64_t nonce = 0;
    if (rank_ == 0) {
      std::random_device rd;
      nonce = (uint64_t{rd()} << 32) ^ rd() ^ static_cast<uint64_t>(Clock::now().time_since_epoch().count());
    }
    MPI_Bcast(&nonce, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    PeerAddress me;
    try {
      heartbeat_ = std::make_unique<Heartbeat>(rank_, nonce);
      me = heartbeat_->local_address();
    } catch (const Error& e) {
      std::fprintf(stderr, "sft: warning: %s; a lost rank will not be named on a timeout\n", e.what());
    }
    std::vector<PeerAddress> all(static_cast<size_t>(world_));
    MPI_Allgather(&me, sizeof me, MPI_BYTE, all.data(), sizeof me, MPI_BYTE, MPI_COMM_WORLD);
    if (heartbeat_) heartbeat_->set_peers(all);
    host_ = me.host[0] ? me.host : "?";
  }

  // A collective that blocks past the timeout means a peer is gone or the ranks diverged: MPI itself would wait
  // forever. Print which operation, which ranks went silent (heartbeats) and end this process; the launcher
  // (mpirun / srun --kill-on-bad-exit) then ends the others. The thread never calls MPI (FUNNELED).
  void watch() {
    Clock::time_point last_turn = Clock::now();
    double longest_pause = 0;  // this process not running at all (SIGSTOP, a stalled machine): the loop's own gaps
    while (!stop_.load()) {
      if (heartbeat_) heartbeat_->pump(std::chrono::milliseconds(250));
      else std::this_thread::sleep_for(std::chrono::milliseconds(250));
      const Clock::time_point now = Clock::now();
      const double gap = std::chrono::duration<double>(now - last_turn).count();
      last_turn = now;
      const int64_t start = op_start_ns_.load();
      if (start == 0) longest_pause = 0;
      else longest_pause = std::max(longest_pause, gap);
      const double limit = timeout_s_.load();
      if (stop_.load() || start == 0 || limit <= 0) continue;
      const double waited =
          std::chrono::duration<double>(Clock::now().time_since_epoch() - Clock::duration(start)).count();
      if (waited > limit) {
        // A live peer beats every 0.5 s; one silent for half the timeout (1.5-10 s) is lost.
        const double threshold = std::clamp(limit / 2, 1.5, 10.0);
        std::string who = heartbeat_ ? heartbeat_->describe(threshold)
                                     : std::string("a rank died, hangs or runs different settings");
        // A rank that was itself stopped sees live peers when it runs again, but they have timed out on it.
        if (longest_pause > threshold)
          who = "this rank itself was not running for " + std::to_string(static_cast<int>(longest_pause)) +
                " s (stopped, or its machine stalled), so the others gave up on it";
        std::fprintf(stderr,
                     "sft: error: rank %d: %s waited %.0f s for the other ranks (--ddp_timeout %.0f); %s; giving up "
                     "(this is rank %d of %d on host %s)\n",
                     rank_, op_name_.load(), waited, limit, who.c_str(), rank_, world_, host_.c_str());
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
  std::atomic<bool> stop_{false};
  std::unique_ptr<Heartbeat> heartbeat_;  // used by the watchdog thread only, after construction
  std::string host_;
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }
bool mpi_available() { return true; }

}  // namespace sft::parallel
