// parallel::make_device_communicator (communicator.h). NCCL comes from parallel/nccl in CUDA builds and from
// nccl_unavailable.cpp (a clear error) otherwise: CMake picks the file, no #ifdef.
#include "parallel/communicator.h"
#include "parallel/nccl/nccl_communicator.h"

namespace sft::parallel {

std::unique_ptr<Communicator> make_device_communicator(std::unique_ptr<Communicator> host, int cuda_device) {
  if (cuda_device < 0 || host->world_size() == 1) return host;
  return make_nccl_communicator(std::move(host), cuda_device);
}

}  // namespace sft::parallel
