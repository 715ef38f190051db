// The emulated device itself, against hand-derived values: the execution model (thread and block indices, barriers,
// warp collectives), cub::BlockReduce, WMMA, the memory checks, the limits of sm_90 and sm_75, and the mutation
// checks: kernels with a deliberate bug (a removed __syncthreads, a missing __syncwarp, a barrier in divergent code,
// a host pointer as an argument, a reused TempStorage) must fault, naming what went wrong. A write past the end of
// an allocation is tests/emu/mutants/out_of_bounds.cpp (AddressSanitizer stops the process).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>
#include <mma.h>

#include "cram/cuda/launch.hpp"

namespace {

// Device memory for a test, freed at the end.
template <class T>
struct dev {
    T* p = nullptr;
    std::size_t n;
    explicit dev(std::size_t count) : n(count) { REQUIRE(cudaMalloc(&p, n * sizeof(T)) == cudaSuccess); }
    explicit dev(const std::vector<T>& v) : dev(v.size()) {
        REQUIRE(cudaMemcpy(p, v.data(), n * sizeof(T), cudaMemcpyHostToDevice) == cudaSuccess);
    }
    ~dev() { cudaFree(p); }
    std::vector<T> get() const {
        std::vector<T> h(n);
        REQUIRE(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost) == cudaSuccess);
        return h;
    }
};

// The launch just made must have faulted with this code and a message containing every fragment; the fault is
// then forgotten, so the next case starts on a clean device.
void expect_fault(cudaError_t code, std::initializer_list<const char*> fragments) {
    const cudaError_t e = cudaGetLastError();
    CHECK(e == code);
    const std::string message = cudaGetErrorString(e);
    for (const char* f : fragments) {
        INFO("message: " << message);
        CHECK(message.find(f) != std::string::npos);
    }
    cram::emu::reset_faults();
}
void expect_clean() {
    const cudaError_t e = cudaGetLastError();
    INFO(cudaGetErrorString(e));
    CHECK(e == cudaSuccess);
    cram::emu::reset_faults();
}

// ---- kernels -----------------------------------------------------------------------------------------
__global__ void coordinates_kernel(unsigned* out) {
    const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    const unsigned per_block = blockDim.x * blockDim.y * blockDim.z;
    out[block * per_block + thread] = (block << 16) | thread;
}

// Reverses each block's 64 values through shared memory; with `sync` false the barrier is missing.
__global__ void reverse_kernel(float* out, const float* in, bool sync) {
    CRAM_DYNAMIC_SHARED(float, s);
    const unsigned i = threadIdx.x, n = blockDim.x;
    s[i] = in[blockIdx.x * n + i];
    if (sync) __syncthreads();
    out[blockIdx.x * n + i] = s[n - 1 - i];
}

// Within one warp: lane i writes, lane 31 - i reads, with or without __syncwarp between.
__global__ void warp_exchange_kernel(float* out, bool sync) {
    using row = float[32];
    CRAM_SHARED(row, s);
    s[threadIdx.x] = float(threadIdx.x);
    if (sync) __syncwarp();
    out[threadIdx.x] = s[31 - threadIdx.x];
}

template <int B>
__global__ void block_sum_kernel(float* out, const float* in, int n, bool reuse_without_sync) {
    using reduce = cub::BlockReduce<float, B>;
    CRAM_SHARED(typename reduce::TempStorage, tmp);
    float s = 0.0f;
    for (int i = int(threadIdx.x); i < n; i += B) s += in[i];
    const float total = reduce(tmp).Sum(s);
    out[1 + threadIdx.x] = total;  // defined in thread 0 only
    if (reuse_without_sync) out[0] = reduce(tmp).Sum(s);
    if (threadIdx.x == 0) out[0] = total;
}

__global__ void shuffle_kernel(int* out) {
    const int lane = int(threadIdx.x);
    out[0 * 32 + lane] = __shfl_xor_sync(0xffffffffu, lane * 10, 5);
    out[1 * 32 + lane] = __shfl_down_sync(0xffffffffu, lane * 10, 3);
    out[2 * 32 + lane] = __shfl_up_sync(0xffffffffu, lane * 10, 2, 8);  // segments of 8 lanes
    out[3 * 32 + lane] = __shfl_sync(0xffffffffu, lane * 10, 7);
    out[4 * 32 + lane] = int(__ballot_sync(0xffffffffu, lane % 3 == 0));
    out[5 * 32 + lane] = __any_sync(0xffffffffu, lane == 17) + 2 * __all_sync(0xffffffffu, lane < 31);
}

__global__ void divergent_barrier_kernel(float* out) {
    if (threadIdx.x < 40) __syncthreads();  // threads 40.. skip the barrier and exit
    out[threadIdx.x] = 1.0f;
}
__global__ void shuffle_after_exit_kernel(float* out) {
    if (threadIdx.x == 3) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}
__global__ void warp_then_block_kernel(float* out) {
    if (threadIdx.x % 32 == 0)
        __syncthreads();  // lane 0 of each warp at the barrier, the rest at a shuffle that names lane 0
    else
        out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}
__global__ void partial_warp_kernel(float* out) {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);  // a 48-thread block: warp 1 has 16 lanes
}
__global__ void scale_kernel(float* p, float s, int n) {
    for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x)) p[i] *= s;
}
__global__ void big_dynamic_kernel(float* out) {
    CRAM_DYNAMIC_SHARED(float, s);
    s[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = s[threadIdx.x];
}
__global__ void big_static_kernel(float* out) {
    using huge = float[13 * 1024];  // 52 KiB: over the 48 KiB of static shared memory a kernel may declare
    CRAM_SHARED(huge, s);
    s[threadIdx.x] = 1.0f;
    out[threadIdx.x] = s[threadIdx.x];
}
__global__ void trap_kernel(float*) { __trap(); }

// C[16x16] = A B + C with WMMA: A row-major, B column-major (that is, B^T row-major), C row-major.
__global__ void wmma_kernel(float* c, const __half* a, const __half* bt, int offset) {
    namespace w = nvcuda::wmma;
    w::fragment<w::matrix_a, 16, 16, 16, __half, w::row_major> fa;
    w::fragment<w::matrix_b, 16, 16, 16, __half, w::col_major> fb;
    w::fragment<w::accumulator, 16, 16, 16, float> acc;
    w::load_matrix_sync(fa, a + offset, 16);
    w::load_matrix_sync(fb, bt, 16);
    w::load_matrix_sync(acc, c, 16, w::mem_row_major);
    w::mma_sync(acc, fa, fb, acc);
    w::store_matrix_sync(c, acc, 16, w::mem_row_major);
}

}  // namespace

TEST_CASE("emulator: every thread of every block sees its own coordinates") {
    const dim3 grid(3, 2, 2), block(4, 3, 2);
    const unsigned blocks = 12, per_block = 24;
    dev<unsigned> out(blocks * per_block);
    CRAM_LAUNCH(grid, block, 0, nullptr, coordinates_kernel)(out.p);
    expect_clean();
    const std::vector<unsigned> h = out.get();
    for (unsigned b = 0; b < blocks; ++b)
        for (unsigned t = 0; t < per_block; ++t) CHECK(h[b * per_block + t] == ((b << 16) | t));
}

TEST_CASE("emulator: __syncthreads orders shared memory; removing it is a race the detector names") {
    std::vector<float> in(128);
    for (int i = 0; i < 128; ++i) in[std::size_t(i)] = float(i);
    dev<float> din(in), out(128);
    CRAM_LAUNCH(2, 64, 64 * sizeof(float), nullptr, reverse_kernel)(out.p, din.p, true);
    expect_clean();
    const std::vector<float> h = out.get();
    for (int i = 0; i < 128; ++i) CHECK(h[std::size_t(i)] == float((i / 64) * 64 + 63 - i % 64));
    // the mutant: no barrier between the writes and the reads of other threads' values
    CRAM_LAUNCH(2, 64, 64 * sizeof(float), nullptr, reverse_kernel)(out.p, din.p, false);
    expect_fault(cudaErrorLaunchFailure, {"racecheck", "reverse_kernel", "block (0,0,0)", "dynamic shared 's'",
                                          "no __syncthreads() or __syncwarp() between"});
}

TEST_CASE("emulator: __syncwarp orders a warp's shared memory; without it the exchange races") {
    dev<float> out(32);
    CRAM_LAUNCH(1, 32, 0, nullptr, warp_exchange_kernel)(out.p, true);
    expect_clean();
    const std::vector<float> h = out.get();
    for (int i = 0; i < 32; ++i) CHECK(h[std::size_t(i)] == float(31 - i));
    CRAM_LAUNCH(1, 32, 0, nullptr, warp_exchange_kernel)(out.p, false);
    expect_fault(cudaErrorLaunchFailure, {"racecheck", "__shared__ 's'", "lane"});
}

TEST_CASE("emulator: cub::BlockReduce sums in thread 0, leaves the others undefined, and needs a barrier to reuse "
          "its storage") {
    std::vector<float> in(1000);
    double expect = 0;
    for (int i = 0; i < 1000; ++i) {
        in[std::size_t(i)] = float(i % 17) * 0.5f;
        expect += in[std::size_t(i)];
    }
    dev<float> din(in), out(1 + 128);
    CRAM_LAUNCH(1, 128, 0, nullptr, block_sum_kernel<128>)(out.p, din.p, 1000, false);
    expect_clean();
    const std::vector<float> h = out.get();
    CHECK(h[0] == doctest::Approx(expect));
    CHECK(h[1] == doctest::Approx(expect));
    CHECK(std::isnan(h[2]));  // thread 1's copy of the aggregate: undefined, so NaN here
    CRAM_LAUNCH(1, 128, 0, nullptr, block_sum_kernel<128>)(out.p, din.p, 1000, true);
    expect_fault(cudaErrorLaunchFailure, {"TempStorage", "__syncthreads()"});
    // a BlockReduce for 128 threads in a block of 64
    CRAM_LAUNCH(1, 64, 0, nullptr, block_sum_kernel<128>)(out.p, din.p, 1000, false);
    expect_fault(cudaErrorLaunchFailure, {"cub::BlockReduce for 128 threads called by a block of 64"});
}

TEST_CASE("emulator: warp shuffles and votes, hand-derived") {
    dev<int> out(6 * 32);
    CRAM_LAUNCH(1, 32, 0, nullptr, shuffle_kernel)(out.p);
    expect_clean();
    const std::vector<int> h = out.get();
    unsigned ballot = 0;
    for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
    for (int l = 0; l < 32; ++l) {
        CHECK(h[std::size_t(l)] == (l ^ 5) * 10);
        CHECK(h[std::size_t(32 + l)] == (l + 3 < 32 ? (l + 3) * 10 : l * 10));
        CHECK(h[std::size_t(64 + l)] == (l % 8 >= 2 ? (l - 2) * 10 : l * 10));
        CHECK(h[std::size_t(96 + l)] == 70);
        CHECK(unsigned(h[std::size_t(128 + l)]) == ballot);
        CHECK(h[std::size_t(160 + l)] == 1);  // any: lane 17 is true; all: lane 31 is false
    }
}

TEST_CASE("emulator: barriers and collectives that can never complete are faults, not hangs") {
    dev<float> out(64);
    CRAM_LAUNCH(1, 64, 0, nullptr, divergent_barrier_kernel)(out.p);
    expect_fault(cudaErrorLaunchFailure, {"divergent_barrier_kernel", "__syncthreads()", "exited"});
    CRAM_LAUNCH(1, 32, 0, nullptr, shuffle_after_exit_kernel)(out.p);
    expect_fault(cudaErrorLaunchFailure, {"__shfl_xor_sync()", "exited"});
    CRAM_LAUNCH(1, 64, 0, nullptr, warp_then_block_kernel)(out.p);
    expect_fault(cudaErrorLaunchFailure, {"deadlock"});
    CRAM_LAUNCH(1, 48, 0, nullptr, partial_warp_kernel)(out.p);
    expect_fault(cudaErrorIllegalInstruction, {"does not have", "block of 48 threads"});
    CRAM_LAUNCH(1, 32, 0, nullptr, trap_kernel)(out.p);
    expect_fault(cudaErrorIllegalInstruction, {"__trap()"});
}

TEST_CASE("emulator: a pointer argument outside a live device allocation is a fault naming kernel and argument") {
    std::vector<float> host(64, 1.0f);
    CRAM_LAUNCH(1, 64, 0, nullptr, scale_kernel)(host.data(), 2.0f, 64);
    expect_fault(cudaErrorIllegalAddress, {"scale_kernel", "argument 0", "not inside a live device allocation"});
    CHECK(host[0] == 1.0f);  // the kernel never ran
    float* freed = nullptr;
    REQUIRE(cudaMalloc(&freed, 64 * sizeof(float)) == cudaSuccess);
    REQUIRE(cudaFree(freed) == cudaSuccess);
    CRAM_LAUNCH(1, 64, 0, nullptr, scale_kernel)(freed, 2.0f, 64);
    expect_fault(cudaErrorIllegalAddress, {"argument 0"});
    float* pinned = nullptr;
    REQUIRE(cudaMallocHost(&pinned, 64 * sizeof(float)) == cudaSuccess);
    CRAM_LAUNCH(1, 64, 0, nullptr, scale_kernel)(pinned, 2.0f, 64);
    expect_fault(cudaErrorIllegalAddress, {"pinned host memory"});
    cudaFreeHost(pinned);
    // a fault is sticky until reset, as on a GPU: every later call reports it
    dev<float> d(4);
    CRAM_LAUNCH(1, 64, 0, nullptr, scale_kernel)(host.data(), 2.0f, 64);
    CHECK(cudaDeviceSynchronize() == cudaErrorIllegalAddress);
    CHECK(cudaMemset(d.p, 0, 16) == cudaErrorIllegalAddress);
    cram::emu::reset_faults();
    CHECK(cudaMemset(d.p, 0, 16) == cudaSuccess);
}

TEST_CASE("emulator: copies must match their kind, and frees their allocation") {
    dev<float> d(16);
    std::vector<float> h(16, 0.0f);
    CHECK(cudaMemcpy(d.p, h.data(), 64, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    CHECK(std::string(cudaGetErrorString(cudaErrorInvalidValue)).find("cudaMemcpyDeviceToHost") != std::string::npos);
    CHECK(cudaMemcpy(h.data(), d.p, 65, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);  // past the end
    CHECK(cudaMemcpy(d.p, d.p + 8, 32, cudaMemcpyDeviceToDevice) == cudaSuccess);
    CHECK(cudaFree(d.p + 1) == cudaErrorInvalidValue);
    CHECK(cudaFree(h.data()) == cudaErrorInvalidValue);
    std::size_t free_b = 0, total_b = 0;
    CHECK(cudaMemGetInfo(&free_b, &total_b) == cudaSuccess);
    void* huge = nullptr;
    CHECK(cudaMalloc(&huge, total_b + 1) == cudaErrorMemoryAllocation);
    cram::emu::reset_faults();
}

TEST_CASE("emulator: shared memory within the architecture's limits (sm_90, then sm_75)") {
    const cram::emu::profile saved = cram::emu::device().prof();  // the suite may run at sm_75 (CRAM_EMU_ARCH)
    cram::emu::device().set_profile(cram::emu::profile_for(90));
    dev<float> out(128);
    const std::size_t over48 = 50 * 1024, over64 = 70 * 1024;
    CRAM_LAUNCH(1, 128, over48, nullptr, big_dynamic_kernel)(out.p);
    expect_fault(cudaErrorInvalidValue, {"dynamic shared memory", "48 KiB"});  // refused: no opt-in yet
    REQUIRE(cudaFuncSetAttribute(big_dynamic_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(over64)) ==
            cudaSuccess);
    CRAM_LAUNCH(1, 128, over64, nullptr, big_dynamic_kernel)(out.p);
    expect_clean();
    CHECK(out.get()[127] == 1.0f);
    CRAM_LAUNCH(1, 128, 0, nullptr, big_static_kernel)(out.p);
    expect_fault(cudaErrorLaunchOutOfResources, {"static shared memory"});

    cram::emu::device().set_profile(cram::emu::profile_for(75));
    cudaDeviceProp p{};
    REQUIRE(cudaGetDeviceProperties(&p, 0) == cudaSuccess);
    CHECK(p.major == 7);
    CHECK(p.minor == 5);
    CHECK(p.sharedMemPerBlockOptin == 64 * 1024);
    CHECK(cudaFuncSetAttribute(big_dynamic_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(over64)) ==
          cudaErrorInvalidValue);
    cram::emu::device().set_profile(saved);
    cram::emu::reset_faults();
}

TEST_CASE("emulator: WMMA 16x16x16 against a hand product, and its alignment rule") {
    std::vector<__half> a(16 * 16 + 8), bt(16 * 16);
    std::vector<float> c(16 * 16);
    for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 16; ++j) {
            a[std::size_t(i * 16 + j)] = __half(float((i + 2 * j) % 7 - 3));
            bt[std::size_t(j * 16 + i)] = __half(float((3 * i + j) % 5 - 2));  // B[i][j], stored as B^T
            c[std::size_t(i * 16 + j)] = float(i - j);
        }
    dev<__half> da(a), db(bt);
    dev<float> dc(c);
    CRAM_LAUNCH(1, 32, 0, nullptr, wmma_kernel)(dc.p, da.p, db.p, 0);
    expect_clean();
    const std::vector<float> h = dc.get();
    for (int i = 0; i < 16; ++i)
        for (int j = 0; j < 16; ++j) {
            float s = float(i - j);
            for (int k = 0; k < 16; ++k) s += float(a[std::size_t(i * 16 + k)]) * float(bt[std::size_t(j * 16 + k)]);
            CHECK(h[std::size_t(i * 16 + j)] == s);
        }
    CRAM_LAUNCH(1, 32, 0, nullptr, wmma_kernel)(dc.p, da.p, db.p, 8);  // 16 bytes off: not 256-bit aligned
    expect_fault(cudaErrorMisalignedAddress, {"wmma::load_matrix_sync", "256-bit"});
}

TEST_CASE("emulator: events time on the host clock, always positive") {
    cudaStream_t s = nullptr;
    REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
    cudaEvent_t a = nullptr, b = nullptr;
    REQUIRE(cudaEventCreate(&a) == cudaSuccess);
    REQUIRE(cudaEventCreate(&b) == cudaSuccess);
    REQUIRE(cudaEventRecord(a, s) == cudaSuccess);
    REQUIRE(cudaEventRecord(b, s) == cudaSuccess);
    float ms = -1;
    CHECK(cudaEventElapsedTime(&ms, a, b) == cudaSuccess);
    CHECK(ms > 0.0f);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    CHECK(cudaStreamDestroy(s) == cudaSuccess);
    CHECK(cudaStreamDestroy(s) == cudaErrorInvalidResourceHandle);
    cram::emu::reset_faults();
}
