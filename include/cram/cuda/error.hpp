// Error macros for the CUDA runtime and cuBLAS(Lt): a failed call throws cram::error carrying the
// file:line of the call, the expression, and the library's own name and description of the error.
#pragma once

#include <cublasLt.h>
#include <cublas_api.h>
#include <cuda_runtime.h>

#include "cram/core/error.hpp"

namespace cram::cuda::detail {

inline const char* cublas_status_name(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
        default: return "unknown cublasStatus_t";
    }
}

}  // namespace cram::cuda::detail

#define CRAM_CUDA_CHECK(expr)                                                                            \
    do {                                                                                                 \
        const cudaError_t cram_cuda_err_ = (expr);                                                       \
        if (cram_cuda_err_ != cudaSuccess)                                                               \
            CRAM_THROW("CUDA call failed: " #expr ": ", cudaGetErrorName(cram_cuda_err_), " (",          \
                       cudaGetErrorString(cram_cuda_err_), ")");                                         \
    } while (0)

#define CRAM_CUBLAS_CHECK(expr)                                                                          \
    do {                                                                                                 \
        const cublasStatus_t cram_cublas_st_ = (expr);                                                   \
        if (cram_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                    \
            CRAM_THROW("cuBLAS call failed: " #expr ": ", ::cram::cuda::detail::cublas_status_name(cram_cublas_st_), \
                       " (status ", static_cast<int>(cram_cublas_st_), ")");                             \
    } while (0)

// After a kernel launch: catches bad launch configurations at the launch site (no synchronisation).
#define CRAM_CUDA_CHECK_LAUNCH() CRAM_CUDA_CHECK(cudaGetLastError())
