#!/usr/bin/env bash
# Compile/link-only check of the CUDA build (no GPU needed): configures build-cuda-ci with -DSFT_CUDA=ON and builds
# (the sft binary includes the NCCL communicator, src/parallel/nccl: NCCL must be found, see its CMakeLists.txt)
# the sft binary, the GPU tests (tests/gpu) and the GPU benchmark. Nothing is run: the GPU tests run on a GPU machine
# through scripts/gpu-check.sh. Exits 0 with "SKIPPED" when the machine has no CUDA toolkit (nvcc).
# Usage: scripts/build-cuda-check.sh    (env: SFT_CUDA_BUILD_DIR, SFT_BUILD_JOBS, SFT_CUDA_ARCHS)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${SFT_CUDA_BUILD_DIR:-$root/build-cuda-ci}"
nvcc=$(command -v nvcc || true)
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
if [ -z "$nvcc" ]; then
  echo "build-cuda-check: SKIPPED: no CUDA toolkit (nvcc) on this machine" >&2
  exit 0
fi
export CUDACXX="$nvcc"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DSFT_CUDA=ON -DSFT_TESTS=ON \
  -DSFT_CUDA_ARCHS="${SFT_CUDA_ARCHS:-90a-real;80}" ${SFT_NCCL_ROOT:+-DSFT_NCCL_ROOT="$SFT_NCCL_ROOT"} >/dev/null
targets=(sft test_gpu_kernels)
if grep -q "test_gpu_model" "$build/build.ninja"; then targets+=(test_gpu_model gpu_step_bench); fi
cmake --build "$build" -j "${SFT_BUILD_JOBS:-$(nproc)}" --target "${targets[@]}"
echo "build-cuda-check: OK: built ${targets[*]} with the CUDA backend in $build (compile/link only, nothing run)" >&2
