// cub::BlockReduce on the emulated device, written from CUB's documentation: a block-wide collective that every
// thread of the block must call (a barrier some threads skip is a fault), whose aggregate is defined in thread 0
// only (the others get all-ones bits: NaN for floating types, so a kernel that reads it elsewhere fails its test),
// and whose TempStorage may be reused only after a __syncthreads() (checked). The sum is formed as the default
// algorithm (BLOCK_REDUCE_WARP_REDUCTIONS) forms it: a shuffle-down tree within each warp, then the warps' partials
// in order.
#pragma once

#include <cstring>
#include <type_traits>

#include "cram/emu/cuda_runtime.hpp"

namespace cub {

enum BlockReduceAlgorithm { BLOCK_REDUCE_RAKING_COMMUTATIVE_ONLY, BLOCK_REDUCE_RAKING, BLOCK_REDUCE_WARP_REDUCTIONS };

struct Sum {
    template <class T>
    T operator()(const T& a, const T& b) const {
        return a + b;
    }
};
struct Max {
    template <class T>
    T operator()(const T& a, const T& b) const {
        return a < b ? b : a;
    }
};
struct Min {
    template <class T>
    T operator()(const T& a, const T& b) const {
        return b < a ? b : a;
    }
};

template <class T, int BLOCK_DIM_X, BlockReduceAlgorithm ALGORITHM = BLOCK_REDUCE_WARP_REDUCTIONS, int BLOCK_DIM_Y = 1,
          int BLOCK_DIM_Z = 1>
class BlockReduce {
public:
    static constexpr int threads = BLOCK_DIM_X * BLOCK_DIM_Y * BLOCK_DIM_Z;
    // Its bytes are never touched: the emulator reduces through its own collective. Its address identifies the
    // storage for the reuse rule.
    struct TempStorage {
        alignas(T) unsigned char bytes[sizeof(T) * (threads / 32 + 1)];
    };

    explicit BlockReduce(TempStorage& storage) : storage_(&storage) {}

    T Sum(T input) { return Reduce(input, cub::Sum{}); }
    T Sum(T input, int num_valid) { return Reduce(input, cub::Sum{}, num_valid); }
    template <class Op>
    T Reduce(T input, Op op) {
        return Reduce(input, op, threads);
    }
    template <class Op>
    T Reduce(T input, Op op, int num_valid) {
        static_assert(std::is_trivially_copyable_v<T>, "cub::BlockReduce of a trivially copyable type");
        namespace d = cram::emu::detail;
        const d::block_state& b = cram::emu::this_block();
        if (int(b.threads) != threads)
            d::kernel_fault(cudaErrorLaunchFailure,
                            d::where(b) + ": cub::BlockReduce for " + std::to_string(threads) +
                                " threads called by a block of " + std::to_string(b.threads));
        struct lane {
            T value;
            T result;
        } mine{input, input};
        std::memset(static_cast<void*>(&mine.result), 0xFF, sizeof(T));
        cram::emu::block_collective("cub::BlockReduce", storage_, &mine, [&](std::vector<void*>& args) {
            const int valid = num_valid < threads ? (num_valid > 0 ? num_valid : 0) : threads;
            bool have = false;
            T total{};
            for (int w0 = 0; w0 < valid; w0 += 32) {
                const int n = valid - w0 < 32 ? valid - w0 : 32;
                T v[32];
                for (int l = 0; l < n; ++l) v[l] = static_cast<lane*>(args[std::size_t(w0 + l)])->value;
                // shuffle-down tree: at each offset (16, 8, ..., 1) lane l gathers lane l + offset if it is valid
                for (int offset = 16; offset >= 1; offset /= 2)
                    for (int l = 0; l < offset && l + offset < n; ++l) v[l] = op(v[l], v[l + offset]);
                total = have ? op(total, v[0]) : v[0];
                have = true;
            }
            if (have) static_cast<lane*>(args[0])->result = total;
        });
        return mine.result;
    }

private:
    TempStorage* storage_;
};

}  // namespace cub
