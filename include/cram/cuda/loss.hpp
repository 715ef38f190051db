// Losses with their gradients, accumulating the summed loss into a device scalar (no host
// synchronisation per micro-step): softmax cross-entropy (one block per row, online max/sum with a CUB
// block reduction, fp32), the sparse MLM decoder fused with it (fused: 16-bit logits whose loss and gradient
// one register-resident pass computes in place; chunked: fp32 logits for 192 MiB of rows at a time), squared
// error, and dense MLM labels.
// The CUDA twin of cram/ops/loss.hpp: ignore_label and the label and gradient rules come from there.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include <cub/block/block_reduce.cuh>

#include "cram/core/error.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/error.hpp"
#include "cram/cuda/gemm.hpp"
#include "cram/ops/loss.hpp"

namespace cram::cuda {

namespace detail {
struct max_sum {
    float m, s;  // running max and sum of exp(z - m)
};
struct max_sum_op {
    __device__ __forceinline__ max_sum operator()(const max_sum& a, const max_sum& b) const {
        const float m = fmaxf(a.m, b.m);
        if (m == -INFINITY) return {m, 0.0f};
        return {m, a.s * __expf(a.m - m) + b.s * __expf(b.m - m)};
    }
};
constexpr int xent_threads = 256;
}  // namespace detail

// Row r of logits (+ bias) against labels[r]: loss_sum += lse - z[y]; dlogits = dscale * (softmax - onehot),
// zero on ignored rows. One block per row.
template <class Z, class D, class Bias, int BLOCK>
__global__ void __launch_bounds__(BLOCK) cross_entropy_kernel(float* __restrict__ loss_sum, D* __restrict__ dlogits,
                                                              const Z* __restrict__ logits, const Bias* __restrict__ bias,
                                                              const std::int32_t* __restrict__ labels, index_t n,
                                                              index_t classes, float dscale, unsigned* error_word) {
    using reduce = cub::BlockReduce<detail::max_sum, BLOCK>;
    CRAM_SHARED(typename reduce::TempStorage, tmp);
    CRAM_SHARED(float, s_lse);
    for (index_t r = blockIdx.x; r < n; r += gridDim.x) {
        const Z* z = logits + r * classes;
        D* dz = dlogits ? dlogits + r * classes : nullptr;
        std::int32_t y = labels[r];
        if (y != ops::ignore_label && !ops::label_in_range(y, classes)) {
            if (threadIdx.x == 0) atomicOr(error_word, error_label);
            y = ops::ignore_label;
        }
        if (y == ops::ignore_label) {
            if (dz)
                for (index_t c = threadIdx.x; c < classes; c += BLOCK) dz[c] = from_f32<D>(0.0f);
            continue;  // uniform across the block: no collective skipped by part of it
        }
        detail::max_sum acc{-INFINITY, 0.0f};
        for (index_t c = threadIdx.x; c < classes; c += BLOCK) {
            const float v = to_f32(z[c]) + (bias ? to_f32(bias[c]) : 0.0f);
            if (v > acc.m) {
                acc.s = acc.s * __expf(acc.m - v) + 1.0f;
                acc.m = v;
            } else {
                acc.s += __expf(v - acc.m);
            }
        }
        const detail::max_sum tot = reduce(tmp).Reduce(acc, detail::max_sum_op{});
        if (threadIdx.x == 0) {
            const float lse = tot.m + logf(tot.s);
            s_lse = lse;
            const float zy = to_f32(z[y]) + (bias ? to_f32(bias[y]) : 0.0f);
            atomicAdd(loss_sum, lse - zy);
        }
        __syncthreads();
        const float lse = s_lse;
        if (dz)
            for (index_t c = threadIdx.x; c < classes; c += BLOCK) {
                const float v = to_f32(z[c]) + (bias ? to_f32(bias[c]) : 0.0f);
                dz[c] = from_f32<D>(ops::cross_entropy_grad(__expf(v - lse), c == y, dscale));
            }
        __syncthreads();
    }
}

template <class T>
__global__ void squared_error_kernel(float* __restrict__ loss_sum, T* __restrict__ dpred, const T* __restrict__ pred,
                                     const float* __restrict__ target, index_t n, float dscale) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) {
        const float d = to_f32(pred[i]) - target[i];
        atomicAdd(loss_sum, d * d);
        if (dpred) dpred[i] = from_f32<T>(ops::squared_error_grad(to_f32(pred[i]), target[i], dscale));
    }
}

template <class I>
__global__ void fill_i32_kernel(I* p, I v, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) p[i] = v;
}
template <class I>
__global__ void scatter_labels_kernel(I* labels, const I* positions, const I* targets, index_t n) {
    for (index_t i = global_thread(); i < n; i += grid_threads()) labels[positions[i]] = targets[i];
}

// ---- launchers ----------------------------------------------------------------------------------------
namespace detail {
template <class Z, class D, class Bias>
void launch_cross_entropy(context& ctx, float* loss_sum, D* dlogits, const Z* logits, const Bias* bias,
                          const std::int32_t* labels, index_t n, index_t classes, float dscale) {
    if (n <= 0) return;
    const unsigned grid = static_cast<unsigned>(std::min<index_t>(n, index_t(ctx.sm_count()) * 8));
    CRAM_LAUNCH(grid, xent_threads, 0, ctx.stream(), cross_entropy_kernel<Z, D, Bias, xent_threads>)(
        loss_sum, dlogits, logits, bias, labels, n, classes, dscale, ctx.error_word());
    CRAM_CUDA_CHECK_LAUNCH();
}
}  // namespace detail

template <class L, class T, class S>
void cross_entropy(context& ctx, L* loss_sum, opt_ptr<T> dlogits, const T* logits, const std::int32_t* labels, index_t n,
                   index_t classes, S dscale) {
    static_assert(std::is_same_v<L, float>, "cram::cuda: the loss accumulator is fp32");
    detail::launch_cross_entropy<T, T, T>(ctx, loss_sum, dlogits, logits, nullptr, labels, n, classes,
                                          static_cast<float>(dscale));
}

template <class L, class T, class S>
void squared_error(context& ctx, L* loss_sum, opt_ptr<T> dpred, const T* pred, const float* target, index_t n, S dscale) {
    static_assert(std::is_same_v<L, float>, "cram::cuda: the loss accumulator is fp32");
    if (n <= 0) return;
    CRAM_LAUNCH(grid_for(ctx, n, 256), 256, 0, ctx.stream(), squared_error_kernel<T>)(loss_sum, dpred, pred, target, n,
                                                                                      static_cast<float>(dscale));
    CRAM_CUDA_CHECK_LAUNCH();
}

inline void dense_labels(context& ctx, std::int32_t* labels, index_t rows, const std::int32_t* positions,
                         const std::int32_t* targets, index_t n) {
    if (rows > 0) {
        CRAM_LAUNCH(grid_for(ctx, rows, 256), 256, 0, ctx.stream(), fill_i32_kernel<std::int32_t>)(
            labels, ops::ignore_label, rows);
        CRAM_CUDA_CHECK_LAUNCH();
    }
    if (n > 0) {
        CRAM_LAUNCH(grid_for(ctx, n, 256), 256, 0, ctx.stream(), scatter_labels_kernel<std::int32_t>)(labels, positions,
                                                                                                      targets, n);
        CRAM_CUDA_CHECK_LAUNCH();
    }
}

// ---- the MLM decoder ----------------------------------------------------------------------------------
// logits = hidden[n,h] w[vocab,h]^T (+ bias) and their cross-entropy, for a chunk of rows at a time, in one of two
// ways (context::decoder):
// - fused (the default): the GEMM writes 16-bit logits, and one kernel per row reads them once into registers,
//   adds the loss and overwrites them with their gradient: 2 bytes per logit held, every masked row of the
//   micro-step in one chunk where the device's free memory allows, so one weight-gradient GEMM per micro-step.
//   Logits rounded to bf16 before the softmax are what the PyTorch peer computes under autocast.
// - chunked (the first path): fp32 logits and a separate 16-bit gradient, 6 bytes per logit, 192 MiB of rows
//   at a time (16 chunks at micro-batch 512 with crammed's 32768 tokens), each with its own GEMMs.

// One thread's load in the fused loss: VEC 16-bit logits (8: a 16-byte load, for rows whose length is a
// multiple of 8; 2: a 4-byte load, for even lengths; else 1) kept as raw 32-bit words, two logits to a word (one
// when VEC is 1), so a thread's share of a row costs ITEMS x words registers; each pass converts them to fp32
// as it goes.
template <class T, int VEC>
struct logit_pack {
    static_assert(VEC == 8 || VEC == 2 || VEC == 1, "the fused loss loads 8 logits (16 bytes), 2 or 1");
    static constexpr int words = VEC == 1 ? 1 : VEC / 2;
    std::uint32_t w[words];

    __device__ __forceinline__ void load(const T* p) {
        if constexpr (VEC == 8) {
            const uint4 q = *reinterpret_cast<const uint4*>(p);
            w[0] = q.x, w[1] = q.y, w[2] = q.z, w[3] = q.w;
        } else if constexpr (VEC == 2) {
            w[0] = *reinterpret_cast<const std::uint32_t*>(p);
        } else {
            w[0] = p->bits;
        }
    }
    __device__ __forceinline__ void store(T* p) const {
        if constexpr (VEC == 8)
            *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
        else if constexpr (VEC == 2)
            *reinterpret_cast<std::uint32_t*>(p) = w[0];
        else
            p->bits = static_cast<std::uint16_t>(w[0]);
    }
    __device__ __forceinline__ float get(int j) const {
        T t;
        t.bits = static_cast<std::uint16_t>(j % 2 ? w[j / 2] >> 16 : w[j / 2] & 0xffffu);
        return to_f32(t);
    }
    __device__ __forceinline__ void set(int j, float x) {
        const std::uint32_t b = from_f32<T>(x).bits;
        if (j % 2) w[j / 2] = (w[j / 2] & 0xffffu) | (b << 16);
        else w[j / 2] = VEC == 1 ? b : (w[j / 2] & 0xffff0000u) | b;
    }
    // Hides the words' values from the optimiser, so the fp32 logits of one pass are not kept (in registers
    // the 16-bit ones do not need) for the next: each pass converts again, which is cheap.
    __device__ __forceinline__ void opaque() {
#pragma unroll
        for (int k = 0; k < words; ++k) asm volatile("" : "+r"(w[k]));
    }
};

// In place: row r of z (16-bit logits; + bias in fp32) becomes dscale * (softmax - onehot(labels[r])) when
// write_grad, and loss_sum gains lse - z[label]; an ignored row gets a zero gradient and no loss. Each thread
// holds its ITEMS x VEC logits in registers, so the row is read once and written once; statistics in fp32, one
// exp per logit for the sum and one for the gradient.
template <class T, int BLOCK, int VEC, int ITEMS>
__global__ void __launch_bounds__(BLOCK)
    xent_inplace_kernel(float* __restrict__ loss_sum, T* __restrict__ logits, const T* __restrict__ bias,
                        const std::int32_t* __restrict__ labels, index_t n, index_t classes, float dscale,
                        bool write_grad, unsigned* error_word) {
    using pack = logit_pack<T, VEC>;
    using reduce = cub::BlockReduce<detail::max_sum, BLOCK>;
    CRAM_SHARED(typename reduce::TempStorage, tmp);
    CRAM_SHARED(float, s_lse);
    // columns within a row fit an int (rows of at most 65536): fewer registers than 64-bit offsets
    const int width = static_cast<int>(classes);
    const auto biased = [bias](float z, int c) { return bias ? z + to_f32(bias[c]) : z; };
    // f(i, c) for each of this thread's loads i whose first column c lies in the row
    const auto each_load = [width](auto&& f) {
#pragma unroll
        for (int i = 0; i < ITEMS; ++i)
            if (const int c = (i * BLOCK + static_cast<int>(threadIdx.x)) * VEC; c < width) f(i, c);
    };
    for (index_t r = blockIdx.x; r < n; r += gridDim.x) {
        T* z = logits + r * classes;
        std::int32_t y = labels[r];
        if (y != ops::ignore_label && !ops::label_in_range(y, classes)) {
            if (threadIdx.x == 0) atomicOr(error_word, error_label);
            y = ops::ignore_label;
        }
        if (y == ops::ignore_label) {  // uniform across the block: no collective skipped by part of it
            if (write_grad) {
                const pack zero{};  // +0.0 is all-zero bits in bf16 and fp16
                each_load([&](int, int c) { zero.store(z + c); });
            }
            continue;
        }
        pack x[ITEMS];
        float m = -INFINITY;
        each_load([&](int i, int c) {
            x[i].load(z + c);
#pragma unroll
            for (int j = 0; j < VEC; ++j) m = fmaxf(m, biased(x[i].get(j), c + j));
        });
        float s = 0.0f;
        each_load([&](int i, int c) {
            x[i].opaque();
#pragma unroll
            for (int j = 0; j < VEC; ++j) s += __expf(biased(x[i].get(j), c + j) - m);
        });
        const detail::max_sum tot = reduce(tmp).Reduce(detail::max_sum{m, s}, detail::max_sum_op{});
        if (threadIdx.x == 0) {  // reads z[y] before the barrier, so before any thread overwrites it
            const float lse = tot.m + logf(tot.s);
            s_lse = lse;
            atomicAdd(loss_sum, lse - biased(to_f32(z[y]), y));
        }
        __syncthreads();
        const float lse = s_lse;
        if (write_grad)
            each_load([&](int i, int c) {
                x[i].opaque();
#pragma unroll
                for (int j = 0; j < VEC; ++j)
                    x[i].set(j, ops::cross_entropy_grad(__expf(biased(x[i].get(j), c + j) - lse), c + j == y, dscale));
                x[i].store(z + c);
            });
        __syncthreads();  // s_lse and the reduction's storage are reused by the next row
    }
}

namespace detail {
// The widest rows the fused loss holds in registers, 1024 threads each holding: 8 loads of 8 where the row
// length is a multiple of 8; 16 loads of 2 where it is even; 16 single elements otherwise.
constexpr index_t fused_xent_max_classes_vec8 = 65536, fused_xent_max_classes_even = 32768,
                  fused_xent_max_classes_odd = 16384;
inline index_t fused_xent_max_classes(index_t classes) {
    return classes % 8 == 0 ? fused_xent_max_classes_vec8
                            : classes % 2 == 0 ? fused_xent_max_classes_even : fused_xent_max_classes_odd;
}

// One resident wave of blocks (the occupancy of each instantiation asked once per process), never more than
// the rows; the blocks loop over the rows.
template <class T, int BLOCK, int VEC, int ITEMS>
void launch_xent_inplace_as(context& ctx, float* loss_sum, T* logits, const T* bias, const std::int32_t* labels,
                            index_t n, index_t classes, float dscale, bool write_grad) {
    constexpr auto kernel = xent_inplace_kernel<T, BLOCK, VEC, ITEMS>;
    static const int per_sm = [] {
        int b = 0;
        CRAM_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&b, kernel, BLOCK, 0));
        return std::max(b, 1);
    }();
    const auto grid = static_cast<unsigned>(std::min<index_t>(n, index_t(ctx.sm_count()) * per_sm));
    CRAM_LAUNCH(grid, BLOCK, 0, ctx.stream(), kernel)(loss_sum, logits, bias, labels, n, classes, dscale, write_grad,
                                                      ctx.error_word());
    CRAM_CUDA_CHECK_LAUNCH();
}

// The fused loss with the widest loads the row length allows and the fewest loads per thread that hold a row
// (at most 32 words of logits per thread; ptxas at sm_90 fits every instantiation in 64 registers, without
// spills but for 4 bytes in 1024 x 8 x 8; crammed's 32768 takes 1024 threads x 4 loads of 8, 16 words).
template <class T>
void launch_xent_inplace(context& ctx, float* loss_sum, T* logits, const T* bias, const std::int32_t* labels,
                         index_t n, index_t classes, float dscale, bool write_grad) {
    if (n <= 0) return;
#define CRAM_XENT(B, V, I)                                                                                           \
    if (classes <= index_t(B) * V * I)                                                                                \
        return launch_xent_inplace_as<T, B, V, I>(ctx, loss_sum, logits, bias, labels, n, classes, dscale, write_grad)
    CRAM_CHECK(aligned16(logits), "the fused cross-entropy needs 16-byte aligned logits");
    if (classes % 8 == 0) {
        CRAM_XENT(512, 8, 1);
        CRAM_XENT(512, 8, 2);
        CRAM_XENT(512, 8, 4);
        CRAM_XENT(1024, 8, 4);
        CRAM_XENT(1024, 8, 8);
    } else if (classes % 2 == 0) {
        CRAM_XENT(1024, 2, 4);
        CRAM_XENT(1024, 2, 8);
        CRAM_XENT(1024, 2, 16);
    } else {
        CRAM_XENT(1024, 1, 8);
        CRAM_XENT(1024, 1, 16);
    }
#undef CRAM_XENT
    CRAM_THROW("the fused cross-entropy holds rows of at most ", fused_xent_max_classes(classes), " logits when the "
               "row length is ", classes % 8 == 0 ? "a multiple of 8" : classes % 2 == 0 ? "even" : "odd", ", got ",
               classes, "; decoder_route_for sends such vocabularies to the chunked path");
}
}  // namespace detail

// Which decoder loss a vocabulary gets on this context, and why when it is not the fused one.
struct decoder_route {
    bool fused = false;
    std::string why;  // empty when fused
};
// Whether the fused loss runs (each micro-step asks; the words of decoder_route_for are for the log).
inline bool decoder_is_fused(decoder_kernel asked, index_t vocab) {
    return asked == decoder_kernel::fused && vocab <= detail::fused_xent_max_classes(vocab);
}
inline decoder_route decoder_route_for(decoder_kernel asked, index_t vocab) {
    if (decoder_is_fused(asked, vocab)) return {true, {}};
    if (asked == decoder_kernel::chunked) return {false, "chunked path asked for (--decoder chunked)"};
    return {false, "a vocabulary of " + std::to_string(vocab) + " is over the fused loss's " +
                       std::to_string(detail::fused_xent_max_classes(vocab)) + " logits per row"};
}
inline decoder_route decoder_route_for(const context& ctx, index_t vocab) {
    return decoder_route_for(ctx.decoder, vocab);
}

// Rows of logits the chunked decoder holds at once: fp32 logits + a 16-bit (bf16 or fp16) gradient per row in
// 192 MiB, at least 8 rows. The fused decoder never takes fewer rows than this, so the micro-batch planner's
// fixed reserve (the backends' fixed_scratch_bytes) covers both.
inline index_t decoder_chunk_rows(index_t n, index_t vocab) {
    constexpr std::size_t budget = std::size_t(192) << 20;
    static_assert(sizeof(cram::bf16) == sizeof(cram::fp16), "one chunk size serves both 16-bit formats");
    const index_t per_row = vocab * index_t(sizeof(float) + sizeof(cram::bf16));
    index_t rows = std::max<index_t>(8, static_cast<index_t>(budget) / per_row / 8 * 8);
    return std::min(rows, n);
}

// Device memory the fused decoder leaves free for everything else when it sizes its chunk.
inline constexpr std::size_t fused_decoder_reserve_bytes = std::size_t(512) << 20;

// Rows of 16-bit logits (row_bytes each) the fused decoder holds at once: all n when the scratch arena already
// has room, or when the device's free memory can grow it and still keep fused_decoder_reserve_bytes free;
// otherwise as many as fit (a multiple of 8), never fewer than the chunked path's rows (n_floor).
inline index_t fused_decoder_rows(index_t n, std::size_t row_bytes, index_t n_floor, std::size_t scratch_bytes,
                                  std::size_t free_bytes) {
    CRAM_CHECK(n > 0 && row_bytes > 0, "fused_decoder_rows: bad arguments n=", n, " row_bytes=", row_bytes);
    const std::size_t whole = static_cast<std::size_t>(n) * row_bytes;
    if (whole <= scratch_bytes) return n;
    const std::size_t room =
        scratch_bytes + (free_bytes > fused_decoder_reserve_bytes ? free_bytes - fused_decoder_reserve_bytes : 0);
    if (whole <= room) return n;
    const index_t fit = static_cast<index_t>(room / row_bytes) / 8 * 8;
    return std::min(n, std::max(fit, std::min(n_floor, n)));
}

namespace detail {
// The chunk loop both decoders share: logits (type Z) of a chunk by one GEMM, their loss and gradient (dlogits,
// which the fused path points at the logits themselves) by `loss`, then dhidden, dw += and dbias +=.
template <class T, class Z, class G, class Loss>
void decoder_chunks(context& ctx, index_t chunk, Z* logits, T* dlogits, T* dhidden, G* dw, G* dbias, const T* hidden,
                    const T* w, const std::int32_t* targets, index_t n, index_t h, index_t vocab, Loss&& loss) {
    for (index_t r0 = 0; r0 < n; r0 += chunk) {
        const index_t rows = std::min(chunk, n - r0);
        const T* hid = hidden + r0 * h;
        gemm<T, Z>(ctx, false, true, rows, vocab, h, 1.0f, hid, h, w, h, 0.0f, logits, vocab);
        loss(targets + r0, rows);
        if (!dhidden) continue;
        gemm<T, T>(ctx, false, false, rows, h, vocab, 1.0f, dlogits, vocab, w, h, 0.0f, dhidden + r0 * h, h);
        gemm<T, G>(ctx, true, false, vocab, h, rows, 1.0f, dlogits, vocab, hid, h, 1.0f, dw, h);
        if (dbias) column_sum_accumulate(ctx, dbias, dlogits, rows, vocab);
    }
}
}  // namespace detail

// The MLM decoder fused with its loss: cross-entropy of hidden[n,h] w[vocab,h]^T (+ bias) against targets
// (loss_sum += summed loss), and with dhidden given the backward: dhidden (overwritten), dw (fp32, accumulates;
// the tied embedding's gradient) and dbias (accumulates), scaled by dscale.
template <class L, class T, class S, class G = float>
void decoder_cross_entropy(context& ctx, L* loss_sum, opt_ptr<T> dhidden, opt_ptr<G> dw, opt_ptr<G> dbias,
                           const T* hidden, const T* w, opt_ptr<const T> bias, const std::int32_t* targets, index_t n,
                           index_t h, index_t vocab, S dscale) {
    static_assert(std::is_same_v<L, float> && std::is_same_v<G, float>,
                  "cram::cuda: loss accumulator and parameter gradients are fp32");
    if (n <= 0) return;
    CRAM_CHECK(!dhidden || dw, "decoder_cross_entropy: a backward pass needs the weight gradient");
    const float ds = static_cast<float>(dscale);
    const bool train = dhidden != nullptr;
    const index_t floor_rows = decoder_chunk_rows(n, vocab);
    using carve = detail::scratch_carver;
    if (decoder_is_fused(ctx.decoder, vocab)) {
        const std::size_t row_bytes = sizeof(T) * static_cast<std::size_t>(vocab);
        index_t chunk = n;
        if (static_cast<std::size_t>(n) * row_bytes > ctx.scratch_size())  // the driver is asked only then
            chunk = fused_decoder_rows(n, row_bytes, floor_rows, ctx.scratch_size(), ctx.memory_info().first);
        if (ctx.decoder_chunk_bytes > 0)
            chunk = std::min(chunk, std::max<index_t>(1, static_cast<index_t>(ctx.decoder_chunk_bytes / row_bytes)));
        T* logits = static_cast<T*>(ctx.scratch(carve::bytes<T>(chunk * vocab)));
        detail::decoder_chunks(ctx, chunk, logits, logits, dhidden, dw, dbias, hidden, w, targets, n, h, vocab,
                               [&](const std::int32_t* t, index_t rows) {
                                   detail::launch_xent_inplace(ctx, loss_sum, logits, bias, t, rows, vocab, ds, train);
                               });
        return;
    }
    const index_t chunk = floor_rows;
    const std::size_t need = carve::bytes<float>(chunk * vocab) + (train ? carve::bytes<T>(chunk * vocab) : 0);
    carve sc{static_cast<std::byte*>(ctx.scratch(need))};
    float* logits = sc.take<float>(chunk * vocab);
    T* dlogits = train ? sc.take<T>(chunk * vocab) : nullptr;
    detail::decoder_chunks(ctx, chunk, logits, dlogits, dhidden, dw, dbias, hidden, w, targets, n, h, vocab,
                           [&](const std::int32_t* t, index_t rows) {
                               detail::launch_cross_entropy<float, T, T>(ctx, loss_sum, dlogits, logits, bias, t, rows,
                                                                         vocab, ds);
                           });
}

}  // namespace cram::cuda
