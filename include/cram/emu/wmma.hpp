// nvcuda::wmma on the emulated device: the 16x16x16 fragments cram's flash kernels use (16-bit A and B, fp32
// accumulators), whose load, store and mma are warp collectives: every lane of the warp calls them with the same
// pointer, leading dimension and layout (checked), the pointer 32-byte aligned and the leading dimension a multiple
// of 16 bytes (the CUDA C++ Programming Guide's requirements, checked). WMMA leaves a fragment's element layout
// unspecified; the emulator gives each lane the elements the PTX ISA documents for mma.m16n8k16 (A as one m16k16
// tile, B and the accumulator as two n8 tiles side by side), so a kernel that depends on an element's position
// sees the layout the mma.sync path will use. Products are exact in fp32 and summed in k order, in fp32.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include "cram/emu/cuda_runtime.hpp"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

namespace detail {
// Where element i of lane `lane` sits in the 16x16 tile: {row, column}.
struct coord {
    int row, col;
};
inline coord element_of(const matrix_a*, int lane, int i) {
    const int group = lane >> 2, t = lane & 3;
    return {group + 8 * ((i / 2) % 2), t * 2 + (i % 2) + 8 * (i / 4)};
}
inline coord element_of(const matrix_b*, int lane, int i) {  // row = k, column = n
    const int group = lane >> 2, t = lane & 3, tile = i / 4, j = i % 4;
    return {t * 2 + (j % 2) + 8 * (j / 2), group + 8 * tile};
}
inline coord element_of(const accumulator*, int lane, int i) {
    const int group = lane >> 2, t = lane & 3, tile = i / 4, j = i % 4;
    return {group + 8 * (j / 2), t * 2 + (j % 2) + 8 * tile};
}
}  // namespace detail

template <class Use, int M, int N, int K, class T, class Layout = void>
class fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the emulated WMMA has the m16n16k16 shape");
    static_assert(std::is_same_v<Use, accumulator> ? std::is_same_v<T, float>
                                                   : std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>,
                  "the emulated WMMA has 16-bit A and B and fp32 accumulators");

public:
    using element_type = T;
    using use = Use;
    using layout = Layout;
    static constexpr int num_elements = 8;
    element_type x[num_elements];
};

namespace detail {
namespace emu = cram::emu;
inline std::string where() { return emu::detail::where(*emu::detail::g_block); }

// One lane's request; the last lane to arrive serves every lane.
struct memory_op {
    const void* ptr;
    unsigned ldm;
    int layout;  // 0 row-major, 1 column-major
    void* fragment;
};
inline void check_operand(const char* name, const void* ptr, unsigned ldm, std::size_t element_bytes) {
    if (reinterpret_cast<std::uintptr_t>(ptr) % 32 != 0)
        emu::detail::kernel_fault(cudaErrorMisalignedAddress,
                                  where() + ": " + name + ": pointer " + emu::detail::ptr_str(ptr) +
                                      " is not 256-bit aligned");
    if ((ldm * element_bytes) % 16 != 0)
        emu::detail::kernel_fault(cudaErrorIllegalInstruction,
                                  where() + ": " + name + ": ldm " + std::to_string(ldm) +
                                      " is not a multiple of 16 bytes");
}
inline void same_for_all(const char* name, const std::array<void*, 32>& args) {
    const memory_op* first = static_cast<memory_op*>(args[0]);
    for (void* a : args) {
        const memory_op* o = static_cast<memory_op*>(a);
        if (o->ptr != first->ptr || o->ldm != first->ldm || o->layout != first->layout)
            emu::detail::kernel_fault(cudaErrorIllegalInstruction,
                                      where() + ": " + name +
                                          ": the lanes of a warp pass different pointers, ldm or layouts");
    }
}
template <class Frag, class E>
void load(const char* name, Frag& f, const E* p, unsigned ldm, int layout) {
    check_operand(name, p, ldm, sizeof(E));
    memory_op mine{p, ldm, layout, &f};
    const unsigned warp = emu::this_thread().warp;
    emu::warp_collective(name, 0xffffffffu, &mine, [&](const std::array<void*, 32>& args) {
        same_for_all(name, args);
        for (int lane = 0; lane < 32; ++lane) {
            const emu::acting_for as(warp * 32 + unsigned(lane));  // the race detector sees the lane's own reads
            Frag& g = *static_cast<Frag*>(static_cast<memory_op*>(args[std::size_t(lane)])->fragment);
            for (int i = 0; i < Frag::num_elements; ++i) {
                const coord c = element_of(static_cast<const typename Frag::use*>(nullptr), lane, i);
                g.x[i] = layout == 0 ? p[std::size_t(c.row) * ldm + std::size_t(c.col)]
                                     : p[std::size_t(c.col) * ldm + std::size_t(c.row)];
            }
        }
    });
}
}  // namespace detail

template <class Use, class T, class Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
    static_assert(!std::is_same_v<Use, accumulator>, "an accumulator's load names its memory layout");
    detail::load("wmma::load_matrix_sync", f, p, ldm, std::is_same_v<Layout, col_major> ? 1 : 0);
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm,
                             layout_t layout) {
    detail::load("wmma::load_matrix_sync", f, p, ldm, layout == mem_col_major ? 1 : 0);
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm,
                              layout_t layout) {
    using frag = fragment<accumulator, 16, 16, 16, float>;
    const char* name = "wmma::store_matrix_sync";
    detail::check_operand(name, p, ldm, sizeof(float));
    detail::memory_op mine{p, ldm, layout == mem_col_major ? 1 : 0, const_cast<frag*>(&f)};
    const unsigned warp = cram::emu::this_thread().warp;
    cram::emu::warp_collective(name, 0xffffffffu, &mine, [&](const std::array<void*, 32>& args) {
        detail::same_for_all(name, args);
        for (int lane = 0; lane < 32; ++lane) {
            const cram::emu::acting_for as(warp * 32 + unsigned(lane));
            const frag& g = *static_cast<frag*>(static_cast<detail::memory_op*>(args[std::size_t(lane)])->fragment);
            for (int i = 0; i < frag::num_elements; ++i) {
                const detail::coord c = detail::element_of(static_cast<const accumulator*>(nullptr), lane, i);
                float& dst = layout == mem_row_major ? p[std::size_t(c.row) * ldm + std::size_t(c.col)]
                                                     : p[std::size_t(c.col) * ldm + std::size_t(c.row)];
                dst = g.x[i];
            }
        }
    });
}

// Per lane, as the toolkit's: no rendezvous (every element of every lane gets the value).
template <class Use, class T, class Layout, class V>
void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, const V& value) {
    for (auto& e : f.x) e = T(value);
}

template <class TA, class LA, class TB, class LB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, TA, LA>& a,
              const fragment<matrix_b, 16, 16, 16, TB, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
    static_assert(std::is_same_v<TA, TB>, "A and B of one mma have one type");
    using acc = fragment<accumulator, 16, 16, 16, float>;
    using fa = fragment<matrix_a, 16, 16, 16, TA, LA>;
    using fb = fragment<matrix_b, 16, 16, 16, TB, LB>;
    struct operands {
        acc* d;
        const fa* a;
        const fb* b;
        const acc* c;
    } mine{&d, &a, &b, &c};
    cram::emu::warp_collective("wmma::mma_sync", 0xffffffffu, &mine, [](const std::array<void*, 32>& args) {
        float A[16][16], B[16][16], C[16][16];
        for (int lane = 0; lane < 32; ++lane) {
            const operands& o = *static_cast<operands*>(args[std::size_t(lane)]);
            for (int i = 0; i < 8; ++i) {
                const detail::coord ca = detail::element_of(static_cast<const matrix_a*>(nullptr), lane, i);
                const detail::coord cb = detail::element_of(static_cast<const matrix_b*>(nullptr), lane, i);
                const detail::coord cc = detail::element_of(static_cast<const accumulator*>(nullptr), lane, i);
                A[ca.row][ca.col] = float(o.a->x[i]);
                B[cb.row][cb.col] = float(o.b->x[i]);
                C[cc.row][cc.col] = o.c->x[i];
            }
        }
        for (int r = 0; r < 16; ++r)
            for (int col = 0; col < 16; ++col) {
                float s = C[r][col];
                for (int k = 0; k < 16; ++k) s += A[r][k] * B[k][col];
                C[r][col] = s;
            }
        for (int lane = 0; lane < 32; ++lane) {
            const operands& o = *static_cast<operands*>(args[std::size_t(lane)]);
            for (int i = 0; i < 8; ++i) {
                const detail::coord cc = detail::element_of(static_cast<const accumulator*>(nullptr), lane, i);
                o.d->x[i] = C[cc.row][cc.col];
            }
        }
    });
}

}  // namespace nvcuda::wmma
