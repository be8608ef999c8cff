// The data-parallel communication layer (train -> parallel): who am I (rank, world size, rank on this machine) and the
// collectives data-parallel training needs. Implementations: single process (world 1, no MPI), MPI (CPU ranks,
// OpenMPI from Debian) and NCCL (GPU ranks; built only with -DSFT_CUDA=ON, bootstrapped over MPI).
//
// Two kinds of memory:
//   - host: small values (target counts, loss sums, norms) and bytes (a checkpoint's trainer_state.json);
//   - "bulk" fp32 buffers living where the training backend keeps tensors (host memory for the CPU backend + MPI,
//     device memory for the CUDA backend + NCCL): gradients, parameters, optimizer state.
// Every call is collective: all ranks call it in the same order with the same sizes. A call blocked for longer than
// the timeout (a peer died or diverged) ends the process with an error naming the operation (see set_timeout).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace sft::parallel {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;  // "single", "mpi", "nccl"
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual int local_rank() const = 0;  // rank among the processes of this machine (selects the GPU)
  virtual int local_size() const = 0;  // processes of this job on this machine

  // ---- host memory ----
  virtual void all_reduce_sum(double* host, size_t n) = 0;
  virtual void all_reduce_sum(int64_t* host, size_t n) = 0;
  virtual void broadcast_host(void* host, size_t bytes, int root) = 0;
  virtual void barrier() = 0;

  // ---- bulk fp32 buffers in the backend's memory ----
  virtual void all_reduce_sum(float* buf, size_t n) = 0;  // in place
  // in: world * n values; out (n values, must not overlap in): rank r gets the sum of every rank's block r.
  virtual void reduce_scatter_sum(const float* in, float* out, size_t n) = 0;
  // buf: world * n values; block r (buf + r * n) of rank r is sent to everyone, in place.
  virtual void all_gather_inplace(float* buf, size_t n) = 0;
  virtual void broadcast(float* buf, size_t n, int root) = 0;

  // Ends every process of the job (exit code `code`); the caller has printed why.
  [[noreturn]] virtual void abort(int code) = 0;

  // Seconds a collective may block before the process gives up with an error (HF's --ddp_timeout; default 1800).
  // <= 0 disables the watchdog.
  virtual void set_timeout(double seconds) { (void)seconds; }
  // Total seconds spent inside collectives since construction (benchmarks: communication time per step).
  virtual double comm_seconds() const { return 0.0; }
};

// How this process was launched, from the launcher's own environment variables:
//   Open MPI mpirun/mpiexec: OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE}
//   Slurm srun (PMIx / PMI2): PMIX_RANK, PMI_RANK/PMI_SIZE, SLURM_PROCID/SLURM_NTASKS/SLURM_LOCALID
// A plain `sft train` finds none of them: world 1, no MPI initialisation.
struct LaunchInfo {
  bool distributed = false;  // launched as one of several ranks
  int rank = 0, world_size = 1, local_rank = 0, local_size = 1;
  std::string launcher;  // "none", "mpirun (Open MPI)", "srun (Slurm)", "PMI"
};
LaunchInfo detect_launch();

// World 1: every collective is the identity (bulk calls use host memcpy, so only host buffers).
std::unique_ptr<Communicator> make_single_process_communicator();
// MPI_Init (thread level FUNNELED) + MPI_COMM_WORLD; MPI_Finalize in the destructor. Throws sft::Error in a build
// without MPI. Bulk buffers are host memory.
std::unique_ptr<Communicator> make_mpi_communicator();
// detect_launch().distributed ? MPI : single process.
std::unique_ptr<Communicator> make_communicator_from_environment();
// The communicator training on a device uses (as backend/device.h chooses backends, this chooses communicators, so
// callers never name NCCL): `host` itself for CPU ranks (cuda_device < 0) or one process; for CUDA ranks NCCL over
// host, which must be the job's MPI communicator (cuda_device = this rank's GPU). A build without CUDA has no NCCL:
// several CUDA ranks are then an error naming --device.
std::unique_ptr<Communicator> make_device_communicator(std::unique_ptr<Communicator> host, int cuda_device);
bool mpi_available();  // this build has the MPI implementation

// Root's string on every rank (collective): a file only rank 0 reads, e.g. a checkpoint's trainer_state.json.
std::string broadcast_string(Communicator& comm, std::string s, int root = 0);

}  // namespace sft::parallel
