// Built instead of mpi_communicator.cpp when CMake finds no MPI: the factory explains what is missing.
#include "parallel/communicator.h"
#include "util/error.h"

namespace sft::parallel {

std::unique_ptr<Communicator> make_mpi_communicator() {
  throw Error("this sft was built without MPI: install libopenmpi-dev (scripts/setup.sh does) and rebuild");
}
bool mpi_available() { return false; }

}  // namespace sft::parallel
