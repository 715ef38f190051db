// Owning device memory: device_buffer<T> is the CUDA backend's buffer<T> (what parameters, gradients and
// activations are allocated in). RAII, move-only, zero-size buffers hold no allocation. Also the memory-space
// tag of device pointers and the pinned staging buffer host batches are uploaded through.
#pragma once

#include <cstddef>
#include <utility>

#include <cuda_runtime.h>

#include "cram/core/error.hpp"
#include "cram/cuda/error.hpp"

namespace cram::cuda {

// Views (model/batch.hpp) typed with this tag point to memory on the CUDA device.
struct device_memory {};

template <class T>
class device_buffer {
public:
    device_buffer() = default;
    explicit device_buffer(std::size_t n) : n_(n) {
        if (n == 0) return;
        const cudaError_t e = cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T));
        if (e != cudaSuccess) {
            p_ = nullptr;
            std::size_t free_b = 0, total_b = 0;
            cudaGetLastError();  // clear the sticky-free allocation error before querying
            cudaMemGetInfo(&free_b, &total_b);
            CRAM_THROW("device allocation of ", n * sizeof(T), " bytes failed (", cudaGetErrorString(e), "); ",
                       free_b >> 20, " MiB free of ", total_b >> 20,
                       " MiB: lower the micro-batch (--micro-batch) or free the GPU");
        }
    }
    device_buffer(const device_buffer&) = delete;
    device_buffer& operator=(const device_buffer&) = delete;
    device_buffer(device_buffer&& o) noexcept : p_(std::exchange(o.p_, nullptr)), n_(std::exchange(o.n_, 0)) {}
    device_buffer& operator=(device_buffer&& o) noexcept {
        if (this != &o) {
            release();
            p_ = std::exchange(o.p_, nullptr);
            n_ = std::exchange(o.n_, 0);
        }
        return *this;
    }
    ~device_buffer() { release(); }

    T* data() { return p_; }
    const T* data() const { return p_; }
    std::size_t size() const { return n_; }
    bool empty() const { return n_ == 0; }

private:
    void release() noexcept {
        if (p_) cudaFree(p_);  // an error here cannot be reported from a destructor; the next call sees it
        p_ = nullptr;
        n_ = 0;
    }
    T* p_ = nullptr;
    std::size_t n_ = 0;
};

// Pinned host memory that batches are staged in before one asynchronous copy to the device. acquire() waits
// until the previous send has left the buffer (an event, not a stream synchronisation), so the host writes the
// next batch while the device still computes on the last one.
class staging_buffer {
public:
    staging_buffer() = default;
    staging_buffer(const staging_buffer&) = delete;
    staging_buffer& operator=(const staging_buffer&) = delete;
    ~staging_buffer() {
        if (sent_) cudaEventDestroy(sent_);
        if (p_) cudaFreeHost(p_);
    }

    // A host pointer to at least `bytes` bytes, free to overwrite. The context type is a template so this
    // header needs no context.hpp; anything with stream() works.
    template <class Context>
    std::byte* acquire(Context&, std::size_t bytes) {
        if (sent_) CRAM_CUDA_CHECK(cudaEventSynchronize(sent_));
        if (bytes > n_) {
            if (p_) CRAM_CUDA_CHECK(cudaFreeHost(p_));
            p_ = nullptr;
            n_ = 0;
            CRAM_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&p_), bytes));
            n_ = bytes;
        }
        return p_;
    }
    // Copies the first `bytes` of the buffer to `device` on the context's stream and marks the buffer busy.
    template <class Context>
    void send(Context& ctx, std::byte* device, std::size_t bytes) {
        if (bytes == 0) return;
        if (!sent_) CRAM_CUDA_CHECK(cudaEventCreateWithFlags(&sent_, cudaEventDisableTiming));
        CRAM_CUDA_CHECK(cudaMemcpyAsync(device, p_, bytes, cudaMemcpyHostToDevice, ctx.stream()));
        CRAM_CUDA_CHECK(cudaEventRecord(sent_, ctx.stream()));
    }

private:
    std::byte* p_ = nullptr;
    std::size_t n_ = 0;
    cudaEvent_t sent_ = nullptr;
};

}  // namespace cram::cuda
