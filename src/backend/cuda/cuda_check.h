// Error checking for the CUDA backend: every CUDA runtime / cuBLASLt call and every kernel launch goes through one of
// these macros, which throw sft::Error naming the call, the error and the source line.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <string>

#include "util/error.h"

namespace sft::backend::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t e, const char* call, const char* file, int line);
[[noreturn]] void throw_cublas_error(cublasStatus_t s, const char* call, const char* file, int line);

}  // namespace sft::backend::cuda

// CUDA runtime call: SFT_CUDA_CHECK(cudaMalloc(&p, n));
#define SFT_CUDA_CHECK(call)                                                              \
  do {                                                                                    \
    cudaError_t sft_cuda_err_ = (call);                                                   \
    if (sft_cuda_err_ != cudaSuccess)                                                     \
      ::sft::backend::cuda::throw_cuda_error(sft_cuda_err_, #call, __FILE__, __LINE__);   \
  } while (0)

// cuBLAS / cuBLASLt call.
#define SFT_CUBLAS_CHECK(call)                                                            \
  do {                                                                                    \
    cublasStatus_t sft_cublas_st_ = (call);                                               \
    if (sft_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                          \
      ::sft::backend::cuda::throw_cublas_error(sft_cublas_st_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: reports launch-configuration errors naming the kernel (execution errors surface at the next
// synchronising call, which is checked too).
#define SFT_CUDA_LAUNCH_CHECK(kernel_name)                                                 \
  do {                                                                                    \
    cudaError_t sft_cuda_err_ = cudaGetLastError();                                       \
    if (sft_cuda_err_ != cudaSuccess)                                                     \
      ::sft::backend::cuda::throw_cuda_error(sft_cuda_err_, "launch of " kernel_name, __FILE__, __LINE__); \
  } while (0)
