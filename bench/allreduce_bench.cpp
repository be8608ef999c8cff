// All-reduce bandwidth between the ranks of an MPI job (the data-parallel gradient reduction of sft train).
// usage: mpirun -np 2 build/bench/allreduce_bench [--max_mib 512] [--iters 5]
// Prints one line per message size: time (median of iters), algorithm bandwidth (bytes / time) and bus bandwidth
// (algbw * 2 (n-1) / n: what each rank's link carries in a ring all-reduce, comparable across rank counts), and the
// same for the reduce-scatter + all-gather pair of ZeRO-1. Run under a single process it reports world 1 and exits.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "parallel/communicator.h"

using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  double max_mib = 512;
  int iters = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--max_mib") max_mib = std::stod(argv[i + 1]);
    else if (k == "--iters") iters = std::stoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "allreduce_bench: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  auto comm = sft::parallel::make_communicator_from_environment();
  const int n = comm->world_size();
  if (comm->rank() == 0) std::printf("allreduce_bench: %d ranks (%s)\n", n, comm->name().c_str());
  if (n < 2) return 0;
  const size_t max_floats = static_cast<size_t>(max_mib * (1 << 20) / 4);
  std::vector<float> buf(max_floats + n, 1.0f), out(max_floats / n + 1);
  if (comm->rank() == 0)
    std::printf("%12s %12s %14s %14s %16s\n", "bytes", "ms", "algbw GB/s", "busbw GB/s", "rs+ag busbw GB/s");
  for (size_t floats = 1 << 10; floats <= max_floats; floats *= 4) {
    auto timed = [&](auto&& op) {
      std::vector<double> t;
      op();  // warm-up
      for (int i = 0; i < iters; ++i) {
        comm->barrier();
        const auto t0 = Clock::now();
        op();
        t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
      }
      std::sort(t.begin(), t.end());
      double med = t[t.size() / 2];
      comm->all_reduce_sum(&med, 1);  // the slowest rank's view, averaged
      return med / n;
    };
    const double ar = timed([&] { comm->all_reduce_sum(buf.data(), floats); });
    const size_t part = floats / n;
    const double rsag = timed([&] {
      comm->reduce_scatter_sum(buf.data(), out.data(), part);
      comm->all_gather_inplace(buf.data(), part);
    });
    const double bytes = static_cast<double>(floats) * 4;
    const double algbw = bytes / ar / 1e9, bus = algbw * 2.0 * (n - 1) / n;
    const double rsag_bus = bytes / rsag / 1e9 * 2.0 * (n - 1) / n;
    if (comm->rank() == 0)
      std::printf("%12.0f %12.3f %14.2f %14.2f %16.2f\n", bytes, ar * 1e3, algbw, bus, rsag_bus);
  }
  return 0;
}
