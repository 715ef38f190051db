// Owning device memory: device_buffer<T> is the CUDA backend's buffer<T> (what the model allocates its
// parameters, gradients and activations in). RAII, move-only, zero-size buffers hold no allocation.
#pragma once

#include <cstddef>
#include <utility>

#include <cuda_runtime.h>

#include "cram/core/error.hpp"
#include "cram/cuda/error.hpp"

namespace cram::cuda {

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

}  // namespace cram::cuda
