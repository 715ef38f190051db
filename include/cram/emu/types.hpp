// The emulated device's value types and enumerations: the CUDA runtime's dim3, uint3, uint4, error codes,
// stream and event handles, device and function properties. Numeric values of the enumerators are the
// toolkit's, so a code printed by the emulator reads the same as one from a GPU.
#pragma once

#include <cstddef>
#include <cstdint>

// ---- vector types -------------------------------------------------------------------------------
struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return {x, y, z}; }
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
inline constexpr uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline constexpr uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline constexpr float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline constexpr float2 make_float2(float x, float y) { return {x, y}; }

// ---- errors ---------------------------------------------------------------------------------------
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInitializationError = 3,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorInsufficientDriver = 35,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoDevice = 100,
    cudaErrorNoKernelImageForDevice = 209,
    cudaErrorUnsupportedPtxVersion = 222,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorNotReady = 600,
    cudaErrorIllegalAddress = 700,
    cudaErrorLaunchOutOfResources = 701,
    cudaErrorAssert = 710,
    cudaErrorIllegalInstruction = 715,
    cudaErrorMisalignedAddress = 716,
    cudaErrorLaunchFailure = 719,
    cudaErrorUnknown = 999,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4,
};

enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

inline constexpr unsigned cudaStreamDefault = 0x0;
inline constexpr unsigned cudaStreamNonBlocking = 0x1;
inline constexpr unsigned cudaEventDefault = 0x0;
inline constexpr unsigned cudaEventBlockingSync = 0x1;
inline constexpr unsigned cudaEventDisableTiming = 0x2;

// Opaque handles: the emulator's own objects.
struct CUstream_st;
struct CUevent_st;
using cudaStream_t = CUstream_st*;
using cudaEvent_t = CUevent_st*;

// The fields of the toolkit's cudaDeviceProp that cram and its tests read (by name; the layout is not the
// toolkit's, and need not be: nothing crosses a binary boundary).
struct cudaDeviceProp {
    char name[256] = {};
    std::size_t totalGlobalMem = 0;
    std::size_t sharedMemPerBlock = 0;
    std::size_t sharedMemPerBlockOptin = 0;
    std::size_t sharedMemPerMultiprocessor = 0;
    int regsPerBlock = 0;
    int warpSize = 32;
    int maxThreadsPerBlock = 0;
    int maxThreadsDim[3] = {};
    int maxGridSize[3] = {};
    int clockRate = 0;
    std::size_t totalConstMem = 0;
    int major = 0, minor = 0;
    int multiProcessorCount = 0;
    int maxThreadsPerMultiProcessor = 0;
    int maxBlocksPerMultiProcessor = 0;
    int memoryClockRate = 0;
    int memoryBusWidth = 0;
    int l2CacheSize = 0;
    int pciBusID = 0, pciDeviceID = 0, pciDomainID = 0;
    int unifiedAddressing = 1;
    int concurrentKernels = 1;
    int ECCEnabled = 0;
};

struct cudaFuncAttributes {
    std::size_t sharedSizeBytes = 0;
    std::size_t constSizeBytes = 0;
    std::size_t localSizeBytes = 0;
    int maxThreadsPerBlock = 0;
    int numRegs = 0;
    int ptxVersion = 0;
    int binaryVersion = 0;
    int cacheModeCA = 0;
    int maxDynamicSharedSizeBytes = 0;
    int preferredShmemCarveout = -1;
};
