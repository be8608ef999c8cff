// Built instead of nccl/nccl_communicator.cpp without -DSFT_CUDA=ON: GPU ranks need NCCL, which comes with CUDA builds.
#include "parallel/nccl/nccl_communicator.h"
#include "util/error.h"

namespace sft::parallel {

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<Communicator>, int device) {
  throw Error("--device cuda:" + std::to_string(device) +
              " with several ranks needs a CUDA build (NCCL): reconfigure with -DSFT_CUDA=ON");
}

}  // namespace sft::parallel
