// The CUDA runtime API and the device intrinsics on the emulated device (cram/emu/runtime.hpp): the calls cram
// makes, with the toolkit's names and error codes, and the checks a GPU or compute-sanitizer would make (a copy
// whose pointers do not match its kind, a free of a pointer that is no allocation, a launch after a fault).
#pragma once

#include <cmath>
#include <cstring>
#include <limits>

#include "cram/emu/half.hpp"
#include "cram/emu/runtime.hpp"
#include "cram/emu/types.hpp"

// ---- the CUDA C++ keywords, for the host compiler ---------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __align__(n) alignas(n)
#define __launch_bounds__(...)
#define __constant__

// threadIdx, blockIdx, blockDim, gridDim: the running fiber's (runtime.hpp); warpSize is 32.
#define threadIdx (::cram::emu::this_thread().idx)
#define blockIdx (::cram::emu::this_block().block_idx)
#define blockDim (::cram::emu::this_block().block_dim)
#define gridDim (::cram::emu::this_block().grid_dim)
inline constexpr int warpSize = 32;

namespace cram::emu::detail {
inline device_state& locked_device(std::unique_lock<std::recursive_mutex>& lock) {
    device_state& d = device();
    lock = std::unique_lock<std::recursive_mutex>(d.lock());
    return d;
}
// A call's result: the error, remembered for cudaGetLastError unless it is success.
inline cudaError_t result(device_state& d, cudaError_t e, const std::string& why = {}) {
    if (e != cudaSuccess) d.raise(e, why.empty() ? "error " + std::to_string(int(e)) : why, false);
    return e;
}
inline std::string ptr_str(const void* p) {
    char s[32];
    std::snprintf(s, sizeof s, "%p", p);
    return s;
}
// What [p, p + n) is: a device range, pinned host memory, or other host memory.
enum class space { device, pinned, host, bad_device };
inline space space_of(const device_state& d, const void* p, std::size_t n) {
    if (d.find(p, n)) return space::device;
    if (d.find(p, n, true)) return space::pinned;
    if (d.find(p, 0)) return space::bad_device;  // starts in an allocation, runs past its end
    return space::host;
}
inline const char* space_name(space s) {
    switch (s) {
        case space::device: return "device memory";
        case space::pinned: return "pinned host memory";
        case space::host: return "host memory";
        case space::bad_device: return "a range running past the end of its device allocation";
    }
    return "?";
}
inline const char* kind_name(cudaMemcpyKind k) {
    switch (k) {
        case cudaMemcpyHostToHost: return "cudaMemcpyHostToHost";
        case cudaMemcpyHostToDevice: return "cudaMemcpyHostToDevice";
        case cudaMemcpyDeviceToHost: return "cudaMemcpyDeviceToHost";
        case cudaMemcpyDeviceToDevice: return "cudaMemcpyDeviceToDevice";
        case cudaMemcpyDefault: return "cudaMemcpyDefault";
    }
    return "an unknown cudaMemcpyKind";
}
inline cudaError_t copy(const char* call, void* dst, const void* src, std::size_t n, cudaMemcpyKind kind,
                        cudaStream_t stream) {
    std::unique_lock<std::recursive_mutex> lock;
    device_state& d = locked_device(lock);
    if (d.sticky() != cudaSuccess) return d.sticky();
    if (!valid_stream(stream))
        return result(d, cudaErrorInvalidResourceHandle, std::string(call) + ": not a live stream");
    if (n == 0) return cudaSuccess;
    const space ds = space_of(d, dst, n), ss = space_of(d, src, n);
    const auto is_dev = [](space s) { return s == space::device; };
    const auto is_host = [](space s) { return s == space::host || s == space::pinned; };
    bool ok = false;
    switch (kind) {
        case cudaMemcpyHostToDevice: ok = is_host(ss) && is_dev(ds); break;
        case cudaMemcpyDeviceToHost: ok = is_dev(ss) && is_host(ds); break;
        case cudaMemcpyDeviceToDevice: ok = is_dev(ss) && is_dev(ds); break;
        case cudaMemcpyHostToHost: ok = is_host(ss) && is_host(ds); break;
        case cudaMemcpyDefault: ok = ss != space::bad_device && ds != space::bad_device; break;
        default: return result(d, cudaErrorInvalidMemcpyDirection, std::string(call) + ": not a cudaMemcpyKind");
    }
    if (!ok)
        return result(d, cudaErrorInvalidValue,
                      std::string(call) + "(" + kind_name(kind) + ", " + std::to_string(n) + " bytes): destination " +
                          ptr_str(dst) + " is " + space_name(ds) + ", source " + ptr_str(src) + " is " +
                          space_name(ss));
    std::memmove(dst, src, n);
    return cudaSuccess;
}
inline cudaError_t fill(const char* call, void* dst, int value, std::size_t n, cudaStream_t stream) {
    std::unique_lock<std::recursive_mutex> lock;
    device_state& d = locked_device(lock);
    if (d.sticky() != cudaSuccess) return d.sticky();
    if (!valid_stream(stream))
        return result(d, cudaErrorInvalidResourceHandle, std::string(call) + ": not a live stream");
    if (n == 0) return cudaSuccess;
    if (!d.find(dst, n))
        return result(d, cudaErrorInvalidValue,
                      std::string(call) + " of " + std::to_string(n) + " bytes at " + ptr_str(dst) + ": " +
                          space_name(space_of(d, dst, n)) + ", not a device range");
    std::memset(dst, value, n);
    return cudaSuccess;
}
}  // namespace cram::emu::detail

// ---- errors ----------------------------------------------------------------------------------------
inline cudaError_t cudaGetLastError() {
    const std::lock_guard<std::recursive_mutex> lock(cram::emu::device().lock());
    return cram::emu::device().take_last();
}
inline cudaError_t cudaPeekAtLastError() { return cram::emu::device().peek_last(); }
inline const char* cudaGetErrorName(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInitializationError: return "cudaErrorInitializationError";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
        case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
        case cudaErrorInsufficientDriver: return "cudaErrorInsufficientDriver";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorNoDevice: return "cudaErrorNoDevice";
        case cudaErrorNoKernelImageForDevice: return "cudaErrorNoKernelImageForDevice";
        case cudaErrorUnsupportedPtxVersion: return "cudaErrorUnsupportedPtxVersion";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorNotReady: return "cudaErrorNotReady";
        case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
        case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
        case cudaErrorAssert: return "cudaErrorAssert";
        case cudaErrorIllegalInstruction: return "cudaErrorIllegalInstruction";
        case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
        case cudaErrorUnknown: return "cudaErrorUnknown";
    }
    return "cudaErrorUnknown";
}
// The emulator's own account of the latest error of this code (which kernel, block, thread, argument), else the
// code's name.
inline const char* cudaGetErrorString(cudaError_t e) {
    if (e == cudaSuccess) return "no error";
    const char* m = cram::emu::device().message(e);
    return m ? m : cudaGetErrorName(e);
}

// ---- devices -----------------------------------------------------------------------------------------
inline cudaError_t cudaGetDeviceCount(int* n) {
    *n = 1;
    return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) {
    if (device != 0) {
        cram::emu::device().raise(cudaErrorInvalidDevice, "cudaSetDevice(" + std::to_string(device) +
                                                              "): the emulated device is device 0", false);
        return cudaErrorInvalidDevice;
    }
    return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
    if (device != 0) return cudaErrorInvalidDevice;
    const cram::emu::profile& p = cram::emu::device().prof();
    *prop = cudaDeviceProp{};
    std::snprintf(prop->name, sizeof prop->name, "cram emulated device (%s limits)", p.arch);
    prop->totalGlobalMem = p.memory;
    prop->sharedMemPerBlock = p.shared_per_block;
    prop->sharedMemPerBlockOptin = p.shared_per_block_optin;
    prop->sharedMemPerMultiprocessor = p.shared_per_sm;
    prop->regsPerBlock = 65536;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = p.max_threads_per_block;
    prop->maxThreadsDim[0] = prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 2147483647;
    prop->maxGridSize[1] = prop->maxGridSize[2] = 65535;
    prop->major = p.cc / 10;
    prop->minor = p.cc % 10;
    prop->multiProcessorCount = p.multiprocessors;
    prop->maxThreadsPerMultiProcessor = p.max_threads_per_sm;
    prop->maxBlocksPerMultiProcessor = p.max_blocks_per_sm;
    prop->clockRate = 1000000;
    prop->memoryClockRate = 1000000;
    prop->memoryBusWidth = 64;
    prop->l2CacheSize = 4 << 20;
    return cudaSuccess;
}
inline cudaError_t cudaDeviceSynchronize() { return cram::emu::device().sticky(); }
// Frees nothing (the program's buffers own their memory) but forgets a fault, as a new context would.
inline cudaError_t cudaDeviceReset() {
    cram::emu::reset_faults();
    return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
    *v = 13000;
    return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
    *v = 13000;
    return cudaSuccess;
}

// ---- memory ---------------------------------------------------------------------------------------------
namespace cram::emu::detail {
inline cudaError_t allocate(void** p, std::size_t bytes, bool pinned) {
    std::unique_lock<std::recursive_mutex> lock;
    device_state& d = locked_device(lock);
    *p = nullptr;
    if (d.sticky() != cudaSuccess) return d.sticky();
    if (!pinned && bytes > d.prof().memory - d.used())
        return result(d, cudaErrorMemoryAllocation,
                      "cudaMalloc of " + std::to_string(bytes) + " bytes: " +
                          std::to_string((d.prof().memory - d.used()) >> 20) + " MiB of the emulated device's " +
                          std::to_string(d.prof().memory >> 20) + " MiB free (CRAM_EMU_MEMORY_MB)");
    void* q = nullptr;
    // exact size, so AddressSanitizer's redzone starts right after the last byte
    if (posix_memalign(&q, 256, std::max<std::size_t>(bytes, 1)) != 0)
        return result(d, cudaErrorMemoryAllocation, "host memory for the emulated allocation ran out");
    std::memset(q, 0xFF, bytes);  // as uninitialised device memory: NaN in every float format
    d.allocations()[reinterpret_cast<std::uintptr_t>(q)] = allocation{bytes, pinned};
    if (!pinned) d.used() += bytes;
    *p = q;
    return cudaSuccess;
}
inline cudaError_t release(void* p, bool pinned, const char* call) {
    std::unique_lock<std::recursive_mutex> lock;
    device_state& d = locked_device(lock);
    if (!p) return cudaSuccess;
    auto& all = d.allocations();
    const auto it = all.find(reinterpret_cast<std::uintptr_t>(p));
    if (it == all.end() || it->second.pinned != pinned)
        return result(d, cudaErrorInvalidValue,
                      std::string(call) + "(" + ptr_str(p) + "): not the start of a live " +
                          (pinned ? "cudaMallocHost" : "cudaMalloc") + " allocation (" +
                          space_name(space_of(d, p, 1)) + ")");
    if (!pinned) d.used() -= it->second.bytes;
    all.erase(it);
    std::free(p);
    return cudaSuccess;
}
}  // namespace cram::emu::detail

inline cudaError_t cudaMalloc(void** p, std::size_t bytes) { return cram::emu::detail::allocate(p, bytes, false); }
template <class T>
cudaError_t cudaMalloc(T** p, std::size_t bytes) {
    return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
inline cudaError_t cudaFree(void* p) { return cram::emu::detail::release(p, false, "cudaFree"); }
inline cudaError_t cudaMallocHost(void** p, std::size_t bytes) { return cram::emu::detail::allocate(p, bytes, true); }
template <class T>
cudaError_t cudaMallocHost(T** p, std::size_t bytes) {
    return cudaMallocHost(reinterpret_cast<void**>(p), bytes);
}
inline cudaError_t cudaFreeHost(void* p) { return cram::emu::detail::release(p, true, "cudaFreeHost"); }
inline cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total) {
    const cram::emu::device_state& d = cram::emu::device();
    *total = d.prof().memory;
    *free_bytes = d.prof().memory - const_cast<cram::emu::device_state&>(d).used();
    return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind) {
    return cram::emu::detail::copy("cudaMemcpy", dst, src, n, kind, nullptr);
}
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind,
                                   cudaStream_t stream = nullptr) {
    return cram::emu::detail::copy("cudaMemcpyAsync", dst, src, n, kind, stream);
}
inline cudaError_t cudaMemset(void* dst, int value, std::size_t n) {
    return cram::emu::detail::fill("cudaMemset", dst, value, n, nullptr);
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t n, cudaStream_t stream = nullptr) {
    return cram::emu::detail::fill("cudaMemsetAsync", dst, value, n, stream);
}

// ---- streams and events ------------------------------------------------------------------------------
struct CUstream_st {
    unsigned flags;
};
struct CUevent_st {
    unsigned flags;
};
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
    std::unique_lock<std::recursive_mutex> lock;
    cram::emu::device_state& d = cram::emu::detail::locked_device(lock);
    *s = new CUstream_st{flags};
    d.streams().insert(*s);
    return cudaSuccess;
}
inline cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
    std::unique_lock<std::recursive_mutex> lock;
    cram::emu::device_state& d = cram::emu::detail::locked_device(lock);
    if (!d.streams().erase(s))
        return cram::emu::detail::result(d, cudaErrorInvalidResourceHandle, "cudaStreamDestroy: not a live stream");
    delete s;
    return cudaSuccess;
}
// Work runs when it is issued: a stream is always complete, up to the first fault.
inline cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    cram::emu::device_state& d = cram::emu::device();
    if (!cram::emu::detail::valid_stream(s)) return cudaErrorInvalidResourceHandle;
    return d.sticky();
}
inline cudaError_t cudaStreamQuery(cudaStream_t s) { return cudaStreamSynchronize(s); }
inline cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags) {
    std::unique_lock<std::recursive_mutex> lock;
    cram::emu::device_state& d = cram::emu::detail::locked_device(lock);
    *e = new CUevent_st{flags};
    d.events()[*e] = cram::emu::detail::event_state{(flags & cudaEventDisableTiming) == 0, false, {}};
    return cudaSuccess;
}
inline cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, cudaEventDefault); }
inline cudaError_t cudaEventDestroy(cudaEvent_t e) {
    std::unique_lock<std::recursive_mutex> lock;
    cram::emu::device_state& d = cram::emu::detail::locked_device(lock);
    if (!d.events().erase(e))
        return cram::emu::detail::result(d, cudaErrorInvalidResourceHandle, "cudaEventDestroy: not a live event");
    delete e;
    return cudaSuccess;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr) {
    std::unique_lock<std::recursive_mutex> lock;
    cram::emu::device_state& d = cram::emu::detail::locked_device(lock);
    const auto it = d.events().find(e);
    if (it == d.events().end() || !cram::emu::detail::valid_stream(s))
        return cram::emu::detail::result(d, cudaErrorInvalidResourceHandle,
                                         "cudaEventRecord: not a live event or stream");
    it->second.recorded = true;
    it->second.at = std::chrono::steady_clock::now();
    return d.sticky();
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    cram::emu::device_state& d = cram::emu::device();
    if (!d.events().count(e)) return cudaErrorInvalidResourceHandle;
    return d.sticky();
}
// The host time between the two records: positive, and meaningless as a GPU time.
inline cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t stop) {
    std::unique_lock<std::recursive_mutex> lock;
    cram::emu::device_state& d = cram::emu::detail::locked_device(lock);
    const auto a = d.events().find(start), b = d.events().find(stop);
    if (a == d.events().end() || b == d.events().end() || !a->second.timing || !b->second.timing ||
        !a->second.recorded || !b->second.recorded)
        return cram::emu::detail::result(d, cudaErrorInvalidResourceHandle,
                                         "cudaEventElapsedTime: an event is not live, not recorded, or has "
                                         "cudaEventDisableTiming");
    const double t = std::chrono::duration<double, std::milli>(b->second.at - a->second.at).count();
    *ms = float(std::max(t, 1e-4));
    return d.sticky();
}

// ---- kernels' attributes and occupancy -------------------------------------------------------------
template <class... P>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* a, void (*kernel)(P...)) {
    cram::emu::device_state& d = cram::emu::device();
    const std::lock_guard<std::recursive_mutex> lock(d.lock());
    const cram::emu::detail::kernel_attributes& k = d.kernel(reinterpret_cast<const void*>(kernel));
    *a = cudaFuncAttributes{};
    a->sharedSizeBytes = k.static_shared;
    a->maxThreadsPerBlock = d.prof().max_threads_per_block;
    a->numRegs = 32;
    a->ptxVersion = d.prof().cc;  // the emulated build holds code for every architecture it emulates
    a->binaryVersion = d.prof().cc;
    a->maxDynamicSharedSizeBytes = int(k.max_dynamic_shared);
    return cudaSuccess;
}
template <class... P>
cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attribute, int value) {
    cram::emu::device_state& d = cram::emu::device();
    const std::lock_guard<std::recursive_mutex> lock(d.lock());
    if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize) return cudaSuccess;  // carveout: a hint
    cram::emu::detail::kernel_attributes& k = d.kernel(reinterpret_cast<const void*>(kernel));
    if (value < 0 || std::size_t(value) + k.static_shared > d.prof().shared_per_block_optin)
        return cram::emu::detail::result(d, cudaErrorInvalidValue,
                                         "cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize, " +
                                             std::to_string(value) + "): over " + d.prof().arch + "'s " +
                                             std::to_string(d.prof().shared_per_block_optin) +
                                             " bytes per block (with the kernel's static shared memory)");
    k.max_dynamic_shared = std::size_t(value);
    k.max_set = true;
    return cudaSuccess;
}
// Threads, blocks and shared memory per multiprocessor bound it (registers are not emulated).
template <class... P>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, void (*kernel)(P...), int block_size,
                                                          std::size_t dynamic_shared) {
    cram::emu::device_state& d = cram::emu::device();
    const std::lock_guard<std::recursive_mutex> lock(d.lock());
    const cram::emu::profile& p = d.prof();
    if (block_size <= 0 || block_size > p.max_threads_per_block) {
        *blocks = 0;
        return cudaErrorInvalidValue;
    }
    const cram::emu::detail::kernel_attributes& k = d.kernel(reinterpret_cast<const void*>(kernel));
    const int warps = (block_size + 31) / 32;
    int n = std::min(p.max_blocks_per_sm, p.max_threads_per_sm / (warps * 32));
    const std::size_t smem = k.static_shared + dynamic_shared + (p.cc >= 80 ? 1024 : 0);  // 1 KiB reserved per block
    if (smem > p.shared_per_block_optin) n = 0;
    if (smem > 0) n = std::min<int>(n, int(p.shared_per_sm / smem));
    *blocks = n;
    return cudaSuccess;
}

// ---- device intrinsics -----------------------------------------------------------------------------------
inline void __syncthreads() { cram::emu::block_collective("__syncthreads()", nullptr, nullptr, [](auto&) {}); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    cram::emu::warp_collective("__syncwarp()", mask, nullptr, [](const auto&) {});
}
[[noreturn]] inline void __trap() {
    cram::emu::detail::kernel_fault(cudaErrorIllegalInstruction,
                                    cram::emu::detail::where(*cram::emu::detail::g_block) + ": " +
                                        cram::emu::detail::thread_str(*cram::emu::detail::g_block,
                                                                      *cram::emu::detail::g_thread) +
                                        " executed __trap()");
}
inline unsigned __activemask() {
    const auto& b = cram::emu::this_block();
    const auto& t = cram::emu::this_thread();
    return b.warps[t.warp].exists & ~b.warps[t.warp].exited;
}

namespace cram::emu::detail {
template <class T>
struct shuffle_args {
    T value;
    int source;  // the lane read, or -1: keep the caller's own value
    T result;
};
// The lane `lane` reads in a shuffle of `width` lanes: source from its segment's base, or -1 (own value).
template <class T, class Source>
T shuffle(const char* name, unsigned mask, T value, int width, Source&& source_of) {
    if (width <= 0 || width > 32 || (width & (width - 1)) != 0)
        kernel_fault(cudaErrorIllegalInstruction,
                     where(*g_block) + ": " + name + " with width " + std::to_string(width) +
                         " (a power of two <= 32)");
    shuffle_args<T> mine{value, source_of(int(g_thread->lane), width), value};
    warp_collective(name, mask, &mine, [&](const std::array<void*, 32>& args) {
        for (unsigned l = 0; l < 32; ++l) {
            auto* a = static_cast<shuffle_args<T>*>(args[l]);
            if (!a) continue;
            if (a->source < 0) {
                a->result = a->value;
                continue;
            }
            const auto* from = static_cast<shuffle_args<T>*>(args[unsigned(a->source)]);
            if (!from)
                kernel_fault(cudaErrorIllegalInstruction,
                             where(*g_block) + ": " + name + ": lane " + std::to_string(l) + " reads lane " +
                                 std::to_string(a->source) + ", which mask " + hex(mask) +
                                 " does not name (its value is undefined)");
            a->result = from->value;
        }
    });
    return mine.result;
}
}  // namespace cram::emu::detail

template <class T>
T __shfl_sync(unsigned mask, T value, int src_lane, int width = 32) {
    return cram::emu::detail::shuffle("__shfl_sync()", mask, value, width, [src_lane](int lane, int w) {
        return (lane / w) * w + (src_lane % w + w) % w;
    });
}
template <class T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
    return cram::emu::detail::shuffle("__shfl_xor_sync()", mask, value, width, [lane_mask](int lane, int w) {
        const int src = lane ^ lane_mask;
        return src / w == lane / w ? src : -1;  // outside the caller's segment: its own value
    });
}
template <class T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
    return cram::emu::detail::shuffle("__shfl_down_sync()", mask, value, width, [delta](int lane, int w) {
        const int src = lane + int(delta);
        return src / w == lane / w ? src : -1;
    });
}
template <class T>
T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
    return cram::emu::detail::shuffle("__shfl_up_sync()", mask, value, width, [delta](int lane, int w) {
        const int src = lane - int(delta);
        return src >= 0 && src / w == lane / w ? src : -1;
    });
}

namespace cram::emu::detail {
struct vote_args {
    int predicate;
    unsigned result;
};
inline unsigned ballot(const char* name, unsigned mask, int predicate) {
    vote_args mine{predicate, 0};
    warp_collective(name, mask, &mine, [](const std::array<void*, 32>& args) {
        unsigned bits = 0;
        for (unsigned l = 0; l < 32; ++l)
            if (args[l] && static_cast<vote_args*>(args[l])->predicate) bits |= 1u << l;
        for (void* a : args)
            if (a) static_cast<vote_args*>(a)->result = bits;
    });
    return mine.result;
}
}  // namespace cram::emu::detail
inline unsigned __ballot_sync(unsigned mask, int predicate) {
    return cram::emu::detail::ballot("__ballot_sync()", mask, predicate);
}
inline int __any_sync(unsigned mask, int predicate) {
    return cram::emu::detail::ballot("__any_sync()", mask, predicate) != 0;
}
inline int __all_sync(unsigned mask, int predicate) {
    return cram::emu::detail::ballot("__all_sync()", mask, predicate) == mask;
}

// Atomics: the blocks of a launch run one at a time on one host thread, so a read-modify-write is atomic.
namespace cram::emu::detail {
template <class T, class F>
T read_modify_write(T* p, F&& f) {
    const T old = *p;
    *p = f(old);
    return old;
}
}  // namespace cram::emu::detail
#define CRAM_EMU_ATOMIC(name, T, expr)                                                                      \
    inline T name(T* p, T v) {                                                                            \
        return cram::emu::detail::read_modify_write(p, [v](T old) { return static_cast<T>(expr); });        \
    }
CRAM_EMU_ATOMIC(atomicAdd, float, old + v)
CRAM_EMU_ATOMIC(atomicAdd, double, old + v)
CRAM_EMU_ATOMIC(atomicAdd, int, old + v)
CRAM_EMU_ATOMIC(atomicAdd, unsigned, old + v)
CRAM_EMU_ATOMIC(atomicAdd, unsigned long long, old + v)
CRAM_EMU_ATOMIC(atomicAdd, __half, __float2half_rn(__half2float(old) + __half2float(v)))
CRAM_EMU_ATOMIC(atomicAdd, __nv_bfloat16, __float2bfloat16_rn(__bfloat162float(old) + __bfloat162float(v)))
CRAM_EMU_ATOMIC(atomicOr, unsigned, old | v)
CRAM_EMU_ATOMIC(atomicOr, int, old | v)
CRAM_EMU_ATOMIC(atomicAnd, unsigned, old & v)
CRAM_EMU_ATOMIC(atomicMax, int, old > v ? old : v)
CRAM_EMU_ATOMIC(atomicMax, unsigned, old > v ? old : v)
CRAM_EMU_ATOMIC(atomicExch, float, v)
CRAM_EMU_ATOMIC(atomicExch, unsigned, v)
#undef CRAM_EMU_ATOMIC
template <class T>
T atomicCAS(T* p, T compare, T v) {
    static_assert(std::is_integral_v<T>, "atomicCAS on int, unsigned or unsigned long long");
    return cram::emu::detail::read_modify_write(p, [&](T old) { return old == compare ? v : old; });
}

// The fast-math intrinsics, as their accurate host counterparts (a GPU's differ by a few ulp).
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float __int_as_float(int x) {
    float f;
    std::memcpy(&f, &x, sizeof f);
    return f;
}
inline int __float_as_int(float f) {
    int x;
    std::memcpy(&x, &f, sizeof x);
    return x;
}
inline unsigned __float_as_uint(float f) {
    unsigned x;
    std::memcpy(&x, &f, sizeof x);
    return x;
}
inline float __uint_as_float(unsigned x) {
    float f;
    std::memcpy(&f, &x, sizeof f);
    return f;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(unsigned(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }

// The overloads of min and max that CUDA's math headers declare for device and host code.
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return std::fmin(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }
