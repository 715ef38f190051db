// Elementwise arithmetic on activations: the residual add and its in-place (accumulating) form. The
// contract both backends implement and the CPU implementation; the CUDA twin is cram/cuda/elementwise.hpp
// (16-byte vector accesses where widths and pointers allow).
#pragma once

#include "cram/core/platform.hpp"

namespace cram::ops {

using cram::index_t;

// out[n] = a + b (out may alias a or b).
template <class T>
void add(T* out, const T* a, const T* b, index_t n) {
    for (index_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

// acc[n] += x: the backward pass sums residual-stream gradients with it.
template <class T>
void add_inplace(T* acc, const T* x, index_t n) {
    for (index_t i = 0; i < n; ++i) acc[i] += x[i];
}

}  // namespace cram::ops
