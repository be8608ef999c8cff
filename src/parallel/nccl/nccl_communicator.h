// NCCL communicator: bulk fp32 collectives on device memory between GPU ranks (one rank per GPU); host-side values
// (counts, loss sums, bytes) and the NCCL bootstrap go through the MPI communicator it wraps.
#pragma once
#include <memory>

#include "parallel/communicator.h"

namespace sft::parallel {

// `bootstrap` must be the MPI communicator of the same job; `device` the CUDA device of this rank (its local rank).
// Rank 0 creates the NCCL unique id and broadcasts it over MPI.
std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator> bootstrap, int device);

}  // namespace sft::parallel
