// A mutant the emulated device must catch: a kernel whose index is off by one writes one float past the end of its
// device allocation. cudaMalloc gives exactly the bytes asked for, so AddressSanitizer stops the process at that
// store with a heap-buffer-overflow naming the kernel's frame; ctest passes when it does (tests/CMakeLists.txt).
#include <cstdio>

#include <cuda_runtime.h>

#include "cram/cuda/launch.hpp"

namespace {
// The deliberate bug: i + 1 where i was meant.
__global__ void shifted_copy_kernel(float* out, const float* in, int n) {
    const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) out[i + 1] = in[i];
}
}  // namespace

int main() {
    constexpr int n = 64;
    float *in = nullptr, *out = nullptr;
    if (cudaMalloc(&in, n * sizeof(float)) != cudaSuccess || cudaMalloc(&out, n * sizeof(float)) != cudaSuccess)
        return 2;
    CRAM_LAUNCH(2, 32, 0, nullptr, shifted_copy_kernel)(out, in, n);
    std::printf("the out-of-bounds write went unnoticed\n");
    return 1;
}
