// The emulated device's cuBLASLt: the subset of the cuBLASLt C API cram uses, with the toolkit's names and
// enumerator values, computed on the host when called (the emulator's streams run in order, so a synchronous
// call is what a stream would have done). Written from NVIDIA's cuBLASLt documentation:
//   D = alpha op(A) op(B) + beta C, column-major, strided batches; A, B fp32, fp16 or bf16; C = D the inputs'
//   type or fp32; CUBLAS_COMPUTE_32F (each dot product accumulated in fp32, in order over k), fp32 alpha and
//   beta; D rounded to its type to nearest, ties to even; the BIAS, RELU, GELU, DGELU and BGRAD epilogues.
// Refusals return the status the documentation names; cram::emu::cublaslt_last_error() says why (and
// CUBLASLT_LOG_LEVEL >= 1 prints it, as the real library's logger would). Operand pointers outside live
// device memory are a device fault (cram::emu::fault, cudaErrorIllegalAddress), as a kernel's access would be.
//
// What an algorithm (cublasLtMatmulAlgo_t) carries, and cublasLtMatmul checks:
//   data[0] a tag (it came from cublasLtMatmulAlgoGetHeuristic), data[1] its index (0..3), data[2] a hash of the
//   problem it was found for (compute and scale type, the four matrix types, transposes, m, n, k, batch count,
//   epilogue, bias and aux types), data[3] the pointer alignment it needs for A, B, C, D, bias and aux (one byte
//   each, log2): min(preference's minimum alignment, 16) for A-D, min(alignment of the descriptor's bias / aux
//   pointer at query time, 16) for those. Leading dimensions and strides are not part of the hash.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cram/core/bf16.hpp"
#include "cram/core/fp16.hpp"
#include "cram/emu/library_types.hpp"
#include "cram/emu/runtime.hpp"  // cram::emu::current_cc(), cram::emu::device_range_ok(p, bytes), cram::emu::fault(code, message)

// The toolkit's spelling (driver_types.h), so a redeclaration by the runtime's headers is the same type.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;

// ---- cublas_api.h -----------------------------------------------------------------------------------------

typedef enum {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_ALLOC_FAILED = 3,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_ARCH_MISMATCH = 8,
    CUBLAS_STATUS_MAPPING_ERROR = 11,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_INTERNAL_ERROR = 14,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
    CUBLAS_STATUS_LICENSE_ERROR = 16
} cublasStatus_t;

typedef enum { CUBLAS_FILL_MODE_LOWER = 0, CUBLAS_FILL_MODE_UPPER = 1, CUBLAS_FILL_MODE_FULL = 2 } cublasFillMode_t;

typedef enum {
    CUBLAS_OP_N = 0,
    CUBLAS_OP_T = 1,
    CUBLAS_OP_C = 2,
    CUBLAS_OP_HERMITAN = 2,
    CUBLAS_OP_CONJG = 3
} cublasOperation_t;

typedef enum { CUBLAS_POINTER_MODE_HOST = 0, CUBLAS_POINTER_MODE_DEVICE = 1 } cublasPointerMode_t;

typedef enum {
    CUBLAS_COMPUTE_16F = 64,
    CUBLAS_COMPUTE_16F_PEDANTIC = 65,
    CUBLAS_COMPUTE_32F = 68,
    CUBLAS_COMPUTE_32F_PEDANTIC = 69,
    CUBLAS_COMPUTE_32F_FAST_16F = 74,
    CUBLAS_COMPUTE_32F_FAST_16BF = 75,
    CUBLAS_COMPUTE_32F_FAST_TF32 = 77,
    CUBLAS_COMPUTE_32F_EMULATED_16BFX9 = 78,
    CUBLAS_COMPUTE_64F = 70,
    CUBLAS_COMPUTE_64F_PEDANTIC = 71,
    CUBLAS_COMPUTE_64F_EMULATED_FIXEDPOINT = 79,
    CUBLAS_COMPUTE_32I = 72,
    CUBLAS_COMPUTE_32I_PEDANTIC = 73
} cublasComputeType_t;

// ---- cublasLt.h -------------------------------------------------------------------------------------------

typedef enum {
    CUBLASLT_POINTER_MODE_HOST = CUBLAS_POINTER_MODE_HOST,
    CUBLASLT_POINTER_MODE_DEVICE = CUBLAS_POINTER_MODE_DEVICE,
    CUBLASLT_POINTER_MODE_DEVICE_VECTOR = 2,
    CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_ZERO = 3,
    CUBLASLT_POINTER_MODE_ALPHA_DEVICE_VECTOR_BETA_HOST = 4
} cublasLtPointerMode_t;

typedef enum {
    CUBLASLT_ORDER_COL = 0,
    CUBLASLT_ORDER_ROW = 1,
    CUBLASLT_ORDER_COL32 = 2,
    CUBLASLT_ORDER_COL4_4R2_8C = 3,
    CUBLASLT_ORDER_COL32_2R_4R4 = 4
} cublasLtOrder_t;

typedef enum { CUBLASLT_BATCH_MODE_STRIDED = 0, CUBLASLT_BATCH_MODE_POINTER_ARRAY = 1 } cublasLtBatchMode_t;

typedef enum {
    CUBLASLT_MATRIX_LAYOUT_TYPE = 0,                   // uint32_t (cudaDataType)
    CUBLASLT_MATRIX_LAYOUT_ORDER = 1,                  // int32_t
    CUBLASLT_MATRIX_LAYOUT_ROWS = 2,                   // uint64_t
    CUBLASLT_MATRIX_LAYOUT_COLS = 3,                   // uint64_t
    CUBLASLT_MATRIX_LAYOUT_LD = 4,                     // int64_t
    CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT = 5,            // int32_t
    CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET = 6,   // int64_t, elements
    CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET = 7,           // int64_t
    CUBLASLT_MATRIX_LAYOUT_BATCH_MODE = 8              // uint32_t
} cublasLtMatrixLayoutAttribute_t;

typedef enum {
    CUBLASLT_MATMUL_DESC_COMPUTE_TYPE = 0,             // int32_t
    CUBLASLT_MATMUL_DESC_SCALE_TYPE = 1,               // int32_t
    CUBLASLT_MATMUL_DESC_POINTER_MODE = 2,             // int32_t
    CUBLASLT_MATMUL_DESC_TRANSA = 3,                   // int32_t
    CUBLASLT_MATMUL_DESC_TRANSB = 4,                   // int32_t
    CUBLASLT_MATMUL_DESC_TRANSC = 5,                   // int32_t
    CUBLASLT_MATMUL_DESC_FILL_MODE = 6,                // int32_t
    CUBLASLT_MATMUL_DESC_EPILOGUE = 7,                 // uint32_t
    CUBLASLT_MATMUL_DESC_BIAS_POINTER = 8,             // void*
    CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE = 10,       // int64_t
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER = 11,    // void*
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD = 12,         // int64_t
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE = 13,  // int64_t
    CUBLASLT_MATMUL_DESC_ALPHA_VECTOR_BATCH_STRIDE = 14,  // int64_t
    CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET = 15,         // int32_t
    CUBLASLT_MATMUL_DESC_A_SCALE_POINTER = 17,         // void*
    CUBLASLT_MATMUL_DESC_B_SCALE_POINTER = 18,
    CUBLASLT_MATMUL_DESC_C_SCALE_POINTER = 19,
    CUBLASLT_MATMUL_DESC_D_SCALE_POINTER = 20,
    CUBLASLT_MATMUL_DESC_AMAX_D_POINTER = 21,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE = 22,  // int32_t
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_SCALE_POINTER = 23,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_AMAX_POINTER = 24,
    CUBLASLT_MATMUL_DESC_FAST_ACCUM = 25,              // int8_t
    CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE = 26,          // int32_t
    CUBLASLT_MATMUL_DESC_A_SCALE_MODE = 31,            // int32_t
    CUBLASLT_MATMUL_DESC_B_SCALE_MODE = 32,
    CUBLASLT_MATMUL_DESC_C_SCALE_MODE = 33,
    CUBLASLT_MATMUL_DESC_D_SCALE_MODE = 34,
    CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_SCALE_MODE = 35,
    CUBLASLT_MATMUL_DESC_D_OUT_SCALE_POINTER = 36,     // void*
    CUBLASLT_MATMUL_DESC_D_OUT_SCALE_MODE = 37,        // int32_t
    CUBLASLT_MATMUL_DESC_EMULATION_DESCRIPTOR = 38     // void*
} cublasLtMatmulDescAttributes_t;

typedef enum {
    CUBLASLT_EPILOGUE_DEFAULT = 1,
    CUBLASLT_EPILOGUE_RELU = 2,
    CUBLASLT_EPILOGUE_RELU_AUX = (CUBLASLT_EPILOGUE_RELU | 128),
    CUBLASLT_EPILOGUE_BIAS = 4,
    CUBLASLT_EPILOGUE_RELU_BIAS = (CUBLASLT_EPILOGUE_RELU | CUBLASLT_EPILOGUE_BIAS),
    CUBLASLT_EPILOGUE_RELU_AUX_BIAS = (CUBLASLT_EPILOGUE_RELU_AUX | CUBLASLT_EPILOGUE_BIAS),
    CUBLASLT_EPILOGUE_DRELU = 8 | 128,
    CUBLASLT_EPILOGUE_DRELU_BGRAD = CUBLASLT_EPILOGUE_DRELU | 16,
    CUBLASLT_EPILOGUE_GELU = 32,
    CUBLASLT_EPILOGUE_GELU_AUX = (CUBLASLT_EPILOGUE_GELU | 128),
    CUBLASLT_EPILOGUE_GELU_BIAS = (CUBLASLT_EPILOGUE_GELU | CUBLASLT_EPILOGUE_BIAS),
    CUBLASLT_EPILOGUE_GELU_AUX_BIAS = (CUBLASLT_EPILOGUE_GELU_AUX | CUBLASLT_EPILOGUE_BIAS),
    CUBLASLT_EPILOGUE_DGELU = 64 | 128,
    CUBLASLT_EPILOGUE_DGELU_BGRAD = CUBLASLT_EPILOGUE_DGELU | 16,
    CUBLASLT_EPILOGUE_BGRADA = 256,
    CUBLASLT_EPILOGUE_BGRADB = 512
} cublasLtEpilogue_t;

typedef enum { CUBLASLT_SEARCH_BEST_FIT = 0, CUBLASLT_SEARCH_LIMITED_BY_ALGO_ID = 1 } cublasLtMatmulSearch_t;

typedef enum {
    CUBLASLT_REDUCTION_SCHEME_NONE = 0,
    CUBLASLT_REDUCTION_SCHEME_INPLACE = 1,
    CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE = 2,
    CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE = 4,
    CUBLASLT_REDUCTION_SCHEME_MASK = 0x7
} cublasLtReductionScheme_t;

typedef enum {
    CUBLASLT_MATMUL_PREF_SEARCH_MODE = 0,              // uint32_t
    CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES = 1,      // uint64_t
    CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK = 3,    // uint32_t
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES = 5,    // uint32_t
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES = 6,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES = 7,
    CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES = 8,
    CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT = 9,          // float
    CUBLASLT_MATMUL_PREF_IMPL_MASK = 12                // uint64_t
} cublasLtMatmulPreferenceAttributes_t;

struct cublasLtContext {
    std::uint64_t tag;
};
typedef struct cublasLtContext* cublasLtHandle_t;

// Descriptors hold their attributes as plain fields; the defaults are the documented ones.
struct cublasLtMatrixLayoutOpaque_t {
    std::uint32_t type = 0;
    std::int32_t order = CUBLASLT_ORDER_COL;
    std::uint64_t rows = 0, cols = 0;
    std::int64_t ld = 0;
    std::int32_t batch_count = 1;
    std::int64_t batch_stride = 0;
    std::int64_t plane_offset = 0;
    std::uint32_t batch_mode = CUBLASLT_BATCH_MODE_STRIDED;
};
typedef cublasLtMatrixLayoutOpaque_t* cublasLtMatrixLayout_t;

struct cublasLtMatmulDescOpaque_t {
    std::int32_t compute_type = CUBLAS_COMPUTE_32F;
    std::int32_t scale_type = CUDA_R_32F;
    std::int32_t pointer_mode = CUBLASLT_POINTER_MODE_HOST;
    std::int32_t trans_a = CUBLAS_OP_N, trans_b = CUBLAS_OP_N, trans_c = CUBLAS_OP_N;
    std::int32_t fill_mode = CUBLAS_FILL_MODE_FULL;
    std::uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    void* bias = nullptr;
    std::int64_t bias_batch_stride = 0;
    void* aux = nullptr;
    std::int64_t aux_ld = 0, aux_batch_stride = 0;
    std::int64_t alpha_vector_batch_stride = 0;
    std::int32_t sm_count_target = 0;
    std::int32_t aux_type = -1, bias_type = -1;  // -1: D's type
    std::int8_t fast_accum = 0;
    // fp8 scaling, amax, emulation: settable, refused by cublasLtMatmul when set (not emulated)
    void* scaling_pointers[9] = {};
    std::int32_t scale_modes[6] = {};
};
typedef cublasLtMatmulDescOpaque_t* cublasLtMatmulDesc_t;

struct cublasLtMatmulPreferenceOpaque_t {
    std::uint32_t search_mode = CUBLASLT_SEARCH_BEST_FIT;
    std::uint64_t max_workspace = 0;
    std::uint32_t reduction_mask = CUBLASLT_REDUCTION_SCHEME_MASK;
    std::uint32_t min_alignment[4] = {256, 256, 256, 256};  // A, B, C, D
    float max_waves = 0.0f;
    std::uint64_t impl_mask = ~std::uint64_t(0);
};
typedef cublasLtMatmulPreferenceOpaque_t* cublasLtMatmulPreference_t;

typedef struct {
    std::uint64_t data[8];
} cublasLtMatmulAlgo_t;

typedef struct {
    cublasLtMatmulAlgo_t algo;
    std::size_t workspaceSize;
    cublasStatus_t state;
    float wavesCount;
    int reserved[4];
} cublasLtMatmulHeuristicResult_t;

namespace cram::emu {

// Why the last refused cuBLASLt call on this thread was refused ("" after a success).
inline std::string& cublaslt_last_error() {
    thread_local std::string message;
    return message;
}

namespace lt {

inline constexpr std::uint64_t handle_tag = 0x63726c7448616e64ull;  // "crltHand"
inline constexpr std::uint64_t algo_tag = 0x63726c74416c676full;    // "crltAlgo"
// distinct candidates the heuristic offers: two, so that the caller's timing and choice between candidates run, at
// the least cost (each candidate is timed over several calls, and every call is a full emulated GEMM)
inline constexpr int algorithms = 2;
inline constexpr std::uint32_t max_kernel_alignment = 16;            // widest vector access an emulated kernel makes

inline cublasStatus_t refuse(cublasStatus_t st, const char* function, const std::string& why) {
    std::string& m = cublaslt_last_error();
    m = std::string(function) + ": " + why;
    static const bool log = [] {
        const char* v = std::getenv("CUBLASLT_LOG_LEVEL");
        return v && std::atoi(v) >= 1;
    }();
    if (log) std::fprintf(stderr, "[cuBLASLt emulation] %s\n", m.c_str());
    return st;
}
inline cublasStatus_t ok() {
    cublaslt_last_error().clear();
    return CUBLAS_STATUS_SUCCESS;
}

// The documented attribute protocol: set takes exactly the attribute's size; get with sizeInBytes 0 reports it.
template <class T>
cublasStatus_t set_value(T& field, const void* buf, std::size_t size, const char* fn) {
    if (!buf || size != sizeof(T))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, fn,
                      "buf is NULL or sizeInBytes (" + std::to_string(size) + ") is not the attribute's size (" +
                          std::to_string(sizeof(T)) + ")");
    std::memcpy(&field, buf, sizeof(T));
    return ok();
}
template <class T>
cublasStatus_t get_value(const T& field, void* buf, std::size_t size, std::size_t* written, const char* fn) {
    if (size == 0) {
        if (!written) return refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "sizeInBytes is 0 and sizeWritten is NULL");
        *written = sizeof(T);
        return ok();
    }
    if (!buf || size != sizeof(T))
        return refuse(CUBLAS_STATUS_INVALID_VALUE, fn,
                      "buf is NULL or sizeInBytes (" + std::to_string(size) + ") is not the attribute's size (" +
                          std::to_string(sizeof(T)) + ")");
    std::memcpy(buf, &field, sizeof(T));
    if (written) *written = sizeof(T);
    return ok();
}

inline int element_size(std::int64_t t) {
    switch (t) {
        case CUDA_R_32F: return 4;
        case CUDA_R_16F:
        case CUDA_R_16BF: return 2;
        default: return 0;
    }
}
inline const char* type_name(std::int64_t t) {
    switch (t) {
        case CUDA_R_32F: return "CUDA_R_32F";
        case CUDA_R_16F: return "CUDA_R_16F";
        case CUDA_R_16BF: return "CUDA_R_16BF";
        case CUDA_R_64F: return "CUDA_R_64F";
        case CUDA_R_8I: return "CUDA_R_8I";
        case CUDA_R_32I: return "CUDA_R_32I";
        default: return "an unsupported cudaDataType";
    }
}

// Largest power of two dividing the address, capped at 256 (the preferences' default).
inline std::uint32_t alignment_of(std::uintptr_t v) {
    if (v == 0) return 256;
    const std::uintptr_t low = v & (~v + 1);
    return low >= 256 ? 256u : std::uint32_t(low);
}
inline std::uint32_t floor_pow2(std::uint32_t v) {
    std::uint32_t p = 1;
    while (p <= v / 2) p *= 2;
    return p;
}
inline std::uint32_t log2_of(std::uint32_t p) {
    std::uint32_t l = 0;
    while ((1u << l) < p) ++l;
    return l;
}

inline bool needs_bias_in(std::uint32_t e) {
    return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS || e == CUBLASLT_EPILOGUE_GELU_BIAS ||
           e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}
inline bool writes_bias_grad(std::uint32_t e) {
    return e == CUBLASLT_EPILOGUE_DGELU_BGRAD || e == CUBLASLT_EPILOGUE_BGRADA || e == CUBLASLT_EPILOGUE_BGRADB;
}
inline bool writes_aux(std::uint32_t e) {
    return e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}
inline bool reads_aux(std::uint32_t e) {
    return e == CUBLASLT_EPILOGUE_DGELU || e == CUBLASLT_EPILOGUE_DGELU_BGRAD;
}
inline bool applies_gelu(std::uint32_t e) {
    return e == CUBLASLT_EPILOGUE_GELU || e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_BIAS ||
           e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
}

// GELU with the tanh approximation (the form cuBLASLt's GELU epilogues document), and its derivative.
inline float gelu(float x) {
    constexpr float c = 0.7978845608028654f;  // sqrt(2 / pi)
    return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
}
inline float gelu_grad(float x) {
    constexpr float c = 0.7978845608028654f;
    const float t = std::tanh(c * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + 3.0f * 0.044715f * x * x);
}

// A validated problem: everything cublasLtMatmul needs besides the pointers.
struct problem {
    std::int32_t type_ab = 0, type_cd = 0, bias_type = 0, aux_type = 0;
    int es_ab = 0, es_cd = 0, es_bias = 0, es_aux = 0;
    bool trans_a = false, trans_b = false;
    std::int64_t m = 0, n = 0, k = 0;
    std::int32_t batch = 1;
    std::uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
    std::int64_t bias_len = 0;  // elements of the bias (in) or bias gradient (out); 0: none
    std::uint64_t fingerprint = 0;
};

inline void mix(std::uint64_t& h, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) {
        h ^= (v >> (8 * i)) & 0xffu;
        h *= 0x100000001b3ull;  // FNV-1a
    }
}

inline std::string layout_words(const char* name, const cublasLtMatrixLayoutOpaque_t& l) {
    return std::string(name) + " (" + type_name(l.type) + " " + std::to_string(l.rows) + "x" +
           std::to_string(l.cols) + " ld " + std::to_string(l.ld) + " batch " + std::to_string(l.batch_count) +
           " stride " + std::to_string(l.batch_stride) + ")";
}

// Checks a descriptor and four layouts against the documented rules. `fn` names the caller in messages; a
// bf16 problem on a device below compute capability 8.0 is `arch_status` (the heuristic finds nothing; a
// matmul call is an architecture mismatch).
inline cublasStatus_t analyse(const cublasLtMatmulDescOpaque_t& d, const cublasLtMatrixLayoutOpaque_t& A,
                              const cublasLtMatrixLayoutOpaque_t& B, const cublasLtMatrixLayoutOpaque_t& C,
                              const cublasLtMatrixLayoutOpaque_t& D, problem& p, const char* fn,
                              cublasStatus_t arch_status) {
    constexpr cublasStatus_t unsupported = CUBLAS_STATUS_NOT_SUPPORTED, invalid = CUBLAS_STATUS_INVALID_VALUE;
    const bool fast32 = d.compute_type == CUBLAS_COMPUTE_32F_FAST_16F ||
                        d.compute_type == CUBLAS_COMPUTE_32F_FAST_16BF ||
                        d.compute_type == CUBLAS_COMPUTE_32F_FAST_TF32;
    if (d.compute_type != CUBLAS_COMPUTE_32F && d.compute_type != CUBLAS_COMPUTE_32F_PEDANTIC && !fast32)
        return refuse(unsupported, fn,
                      "compute type " + std::to_string(d.compute_type) + " is not emulated (CUBLAS_COMPUTE_32F only)");
    if (d.scale_type != CUDA_R_32F)
        return refuse(unsupported, fn, std::string("scale type ") + type_name(d.scale_type) +
                                           " with CUBLAS_COMPUTE_32F (the documented scale type is CUDA_R_32F)");
    if (d.pointer_mode != CUBLASLT_POINTER_MODE_HOST && d.pointer_mode != CUBLASLT_POINTER_MODE_DEVICE)
        return refuse(unsupported, fn, "pointer mode " + std::to_string(d.pointer_mode) + " is not emulated");
    const auto op_ok = [](std::int32_t op) { return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C; };
    if (!op_ok(d.trans_a) || !op_ok(d.trans_b))
        return refuse(invalid, fn, "TRANSA/TRANSB must be CUBLAS_OP_N, CUBLAS_OP_T or CUBLAS_OP_C");
    if (d.trans_c != CUBLAS_OP_N) return refuse(unsupported, fn, "TRANSC: only CUBLAS_OP_N is supported");
    if (d.fill_mode != CUBLAS_FILL_MODE_FULL) return refuse(unsupported, fn, "FILL_MODE: only FULL is emulated");
    for (void* q : d.scaling_pointers)
        if (q) return refuse(unsupported, fn, "scale, amax or emulation descriptor pointers are not emulated");
    for (std::int32_t q : d.scale_modes)
        if (q) return refuse(unsupported, fn, "scale modes are not emulated");

    const cublasLtMatrixLayoutOpaque_t* const layouts[4] = {&A, &B, &C, &D};
    const char* const names[4] = {"A", "B", "C", "D"};
    for (int i = 0; i < 4; ++i) {
        const cublasLtMatrixLayoutOpaque_t& l = *layouts[i];
        if (l.order != CUBLASLT_ORDER_COL)
            return refuse(unsupported, fn, std::string("matrix ") + names[i] + ": only CUBLASLT_ORDER_COL is emulated");
        if (l.plane_offset != 0 || l.batch_mode != CUBLASLT_BATCH_MODE_STRIDED)
            return refuse(unsupported, fn,
                          std::string("matrix ") + names[i] + ": planar complex and pointer-array batches are not emulated");
        if (l.rows > std::uint64_t(std::numeric_limits<std::int32_t>::max()) ||
            l.cols > std::uint64_t(std::numeric_limits<std::int32_t>::max()))
            return refuse(unsupported, fn, layout_words(names[i], l) + ": rows and cols must fit in int32_t");
        if (l.ld < 0 || std::uint64_t(l.ld) < std::max<std::uint64_t>(1, l.rows))
            return refuse(invalid, fn, layout_words(names[i], l) + ": the leading dimension must be >= max(1, rows)");
        if (l.batch_count < 1)
            return refuse(invalid, fn, layout_words(names[i], l) + ": the batch count must be >= 1");
        if (l.batch_stride < 0)
            return refuse(unsupported, fn, layout_words(names[i], l) + ": negative batch strides are not supported");
    }
    if (A.batch_count != B.batch_count || A.batch_count != C.batch_count || A.batch_count != D.batch_count)
        return refuse(invalid, fn, "A, B, C and D have different batch counts");

    // types: CUBLAS_COMPUTE_32F takes A = B in {bf16, fp16, fp32} with C = D of that type or fp32;
    // the FAST variants take fp32 throughout (computed in plain fp32: down-converting is allowed, not required)
    if (A.type != B.type)
        return refuse(unsupported, fn, std::string("A is ") + type_name(A.type) + " but B is " + type_name(B.type));
    if (C.type != D.type)
        return refuse(unsupported, fn, std::string("C is ") + type_name(C.type) + " but D is " + type_name(D.type));
    if (element_size(A.type) == 0)
        return refuse(unsupported, fn, std::string("A/B type ") + type_name(A.type) + " is not supported");
    if (fast32 && (A.type != CUDA_R_32F || C.type != CUDA_R_32F))
        return refuse(unsupported, fn, "the CUBLAS_COMPUTE_32F_FAST_* compute types take CUDA_R_32F matrices only");
    if (C.type != A.type && C.type != CUDA_R_32F)
        return refuse(unsupported, fn, std::string("A/B ") + type_name(A.type) + " with C/D " + type_name(C.type) +
                                           " is not a supported combination for CUBLAS_COMPUTE_32F");
    if (A.type == CUDA_R_16BF && current_cc() < 80)
        return refuse(arch_status, fn,
                      "bf16 matrices need compute capability 8.0 or newer (this device: " +
                          std::to_string(current_cc() / 10) + "." + std::to_string(current_cc() % 10) + ")");

    p.trans_a = d.trans_a != CUBLAS_OP_N;
    p.trans_b = d.trans_b != CUBLAS_OP_N;
    p.m = std::int64_t(D.rows);
    p.n = std::int64_t(D.cols);
    p.k = std::int64_t(p.trans_a ? A.rows : A.cols);
    const std::int64_t a_m = std::int64_t(p.trans_a ? A.cols : A.rows);
    const std::int64_t b_k = std::int64_t(p.trans_b ? B.cols : B.rows), b_n = std::int64_t(p.trans_b ? B.rows : B.cols);
    if (a_m != p.m || b_k != p.k || b_n != p.n || C.rows != D.rows || C.cols != D.cols)
        return refuse(invalid, fn,
                      "shapes do not agree: op(A) is " + std::to_string(a_m) + "x" + std::to_string(p.k) +
                          ", op(B) " + std::to_string(b_k) + "x" + std::to_string(b_n) + ", C " +
                          std::to_string(C.rows) + "x" + std::to_string(C.cols) + ", D " + std::to_string(D.rows) +
                          "x" + std::to_string(D.cols));
    p.batch = D.batch_count;
    p.type_ab = std::int32_t(A.type);
    p.type_cd = std::int32_t(D.type);
    p.es_ab = element_size(A.type);
    p.es_cd = element_size(D.type);

    // epilogues
    p.epilogue = d.epilogue;
    const std::uint32_t e = d.epilogue;
    switch (e) {
        case CUBLASLT_EPILOGUE_DEFAULT:
        case CUBLASLT_EPILOGUE_RELU:
        case CUBLASLT_EPILOGUE_BIAS:
        case CUBLASLT_EPILOGUE_RELU_BIAS:
        case CUBLASLT_EPILOGUE_GELU:
        case CUBLASLT_EPILOGUE_GELU_AUX:
        case CUBLASLT_EPILOGUE_GELU_BIAS:
        case CUBLASLT_EPILOGUE_GELU_AUX_BIAS:
        case CUBLASLT_EPILOGUE_DGELU:
        case CUBLASLT_EPILOGUE_DGELU_BGRAD:
        case CUBLASLT_EPILOGUE_BGRADA:
        case CUBLASLT_EPILOGUE_BGRADB: break;
        case CUBLASLT_EPILOGUE_RELU_AUX:
        case CUBLASLT_EPILOGUE_RELU_AUX_BIAS:
        case CUBLASLT_EPILOGUE_DRELU:
        case CUBLASLT_EPILOGUE_DRELU_BGRAD:
            return refuse(unsupported, fn, "the ReLU bit-mask epilogues are not emulated");
        default: return refuse(invalid, fn, "unknown epilogue " + std::to_string(e));
    }
    // bias, bias gradient and aux elements have D's type (cublasLt.h: other types only for IMMA and fp8)
    p.bias_type = d.bias_type == -1 ? p.type_cd : d.bias_type;
    p.aux_type = d.aux_type == -1 ? p.type_cd : d.aux_type;
    p.es_bias = element_size(p.bias_type);
    p.es_aux = element_size(p.aux_type);
    if (needs_bias_in(e) || writes_bias_grad(e)) {
        if (p.bias_type != p.type_cd)
            return refuse(unsupported, fn, std::string("bias type ") + type_name(p.bias_type) + " with D " +
                                               type_name(p.type_cd) + ": the bias has D's type");
        p.bias_len = e == CUBLASLT_EPILOGUE_BGRADB ? p.n : p.m;
        if (d.bias_batch_stride < 0) return refuse(invalid, fn, "negative BIAS_BATCH_STRIDE");
    }
    if (writes_bias_grad(e) && p.batch > 1)
        return refuse(unsupported, fn, "bias-gradient epilogues are emulated for batch count 1 only");
    if (writes_aux(e) || reads_aux(e)) {
        if (p.aux_type != p.type_cd)
            return refuse(invalid, fn, std::string("EPILOGUE_AUX_DATA_TYPE ") + type_name(p.aux_type) +
                                           " with D " + type_name(p.type_cd) + ": the GELU aux matrix has D's type");
        if (d.aux_ld < p.m || d.aux_ld < 1 || d.aux_ld % 8 != 0)
            return refuse(invalid, fn, "EPILOGUE_AUX_LD " + std::to_string(d.aux_ld) +
                                           ": must be divisible by 8 and no less than D's rows (" +
                                           std::to_string(p.m) + ")");
        if (p.batch > 1 && (d.aux_batch_stride < 0 || d.aux_batch_stride % 8 != 0))
            return refuse(invalid, fn, "EPILOGUE_AUX_BATCH_STRIDE " + std::to_string(d.aux_batch_stride) +
                                           ": must be a non-negative multiple of 8");
    }

    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::int64_t v : {std::int64_t(d.compute_type), std::int64_t(d.scale_type), std::int64_t(A.type),
                           std::int64_t(B.type), std::int64_t(C.type), std::int64_t(D.type), std::int64_t(p.trans_a),
                           std::int64_t(p.trans_b), p.m, p.n, p.k, std::int64_t(p.batch), std::int64_t(e),
                           std::int64_t(p.bias_type), std::int64_t(p.aux_type)})
        mix(h, std::uint64_t(v));
    p.fingerprint = h;
    return ok();
}

inline float load(const void* base, std::int32_t type, std::int64_t i) {
    switch (type) {
        case CUDA_R_32F: return static_cast<const float*>(base)[i];
        case CUDA_R_16BF: return cram::bf16::to_float(static_cast<const std::uint16_t*>(base)[i]);
        default: return cram::fp16::to_float(static_cast<const std::uint16_t*>(base)[i]);
    }
}
inline void store(void* base, std::int32_t type, std::int64_t i, float v) {
    switch (type) {
        case CUDA_R_32F: static_cast<float*>(base)[i] = v; break;
        case CUDA_R_16BF: static_cast<std::uint16_t*>(base)[i] = cram::bf16::from_float(v); break;
        default: static_cast<std::uint16_t*>(base)[i] = cram::fp16::from_float(v); break;
    }
}

// out[x * K + p] = src[x * sx + p * sp] as float, reading along the contiguous direction.
template <class Convert>
void gather_rows(const void* src, std::int64_t X, std::int64_t K, std::int64_t sx, std::int64_t sp, float* out,
                 Convert convert) {
    if (sp == 1) {
        for (std::int64_t x = 0; x < X; ++x)
            for (std::int64_t q = 0; q < K; ++q) out[x * K + q] = convert(src, x * sx + q);
    } else {
        for (std::int64_t q = 0; q < K; ++q)
            for (std::int64_t x = 0; x < X; ++x) out[x * K + q] = convert(src, x * sx + q * sp);
    }
}
inline void gather(const void* src, std::int32_t type, std::int64_t X, std::int64_t K, std::int64_t sx,
                   std::int64_t sp, float* out) {
    switch (type) {
        case CUDA_R_32F:
            gather_rows(src, X, K, sx, sp, out,
                        [](const void* s, std::int64_t i) { return static_cast<const float*>(s)[i]; });
            break;
        case CUDA_R_16BF:
            gather_rows(src, X, K, sx, sp, out, [](const void* s, std::int64_t i) {
                return cram::bf16::to_float(static_cast<const std::uint16_t*>(s)[i]);
            });
            break;
        default:
            gather_rows(src, X, K, sx, sp, out, [](const void* s, std::int64_t i) {
                return cram::fp16::to_float(static_cast<const std::uint16_t*>(s)[i]);
            });
            break;
    }
}

// acc[j * m + i] = sum over q of a[i * k + q] * b[j * k + q], each sum in fp32 in order of q. Not instrumented by
// AddressSanitizer: it reads only the call's own float copies of the operands (whose device ranges cublasLtMatmul
// checked), and the race detector's out-of-line hooks would cost a call per load of its m n k products.
#if defined(__SANITIZE_ADDRESS__)
__attribute__((no_sanitize("address")))
#endif
inline void dot_products(const float* a, const float* b, std::int64_t m, std::int64_t n, std::int64_t k,
                         float* acc) {
    std::int64_t j = 0;
    for (; j + 4 <= n; j += 4) {  // four independent sums share each row of a
        const float *b0 = b + j * k, *b1 = b0 + k, *b2 = b1 + k, *b3 = b2 + k;
        for (std::int64_t i = 0; i < m; ++i) {
            const float* ai = a + i * k;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (std::int64_t q = 0; q < k; ++q) {
                const float x = ai[q];
                s0 += x * b0[q];
                s1 += x * b1[q];
                s2 += x * b2[q];
                s3 += x * b3[q];
            }
            acc[j * m + i] = s0;
            acc[(j + 1) * m + i] = s1;
            acc[(j + 2) * m + i] = s2;
            acc[(j + 3) * m + i] = s3;
        }
    }
    for (; j < n; ++j) {
        const float* bj = b + j * k;
        for (std::int64_t i = 0; i < m; ++i) {
            const float* ai = a + i * k;
            float s = 0;
            for (std::int64_t q = 0; q < k; ++q) s += ai[q] * bj[q];
            acc[j * m + i] = s;
        }
    }
}

// Bytes a strided-batch column-major operand spans: the last element's offset + 1, over all batches.
inline std::size_t span_bytes(std::int64_t rows, std::int64_t cols, std::int64_t ld, std::int64_t batch,
                              std::int64_t stride, int elem) {
    if (rows <= 0 || cols <= 0) return 0;
    return std::size_t(((batch - 1) * stride + (cols - 1) * ld + rows) * elem);
}

// A batched operand is only as aligned as its base and its byte stride both are.
inline std::uint32_t operand_alignment(const void* p, std::int64_t batch, std::int64_t stride, int elem) {
    std::uintptr_t v = reinterpret_cast<std::uintptr_t>(p);
    if (batch > 1 && stride != 0) v |= std::uintptr_t(stride) * std::uintptr_t(elem);
    return alignment_of(v);
}

inline std::string pointer_words(const void* p) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%p", p);
    return buf;
}

}  // namespace lt
}  // namespace cram::emu

// ---- the C API ----------------------------------------------------------------------------------------------

inline cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
    if (!handle) return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasLtCreate", "lightHandle is NULL");
    *handle = new cublasLtContext{cram::emu::lt::handle_tag};
    return cram::emu::lt::ok();
}
inline cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!handle) return cram::emu::lt::refuse(CUBLAS_STATUS_NOT_INITIALIZED, "cublasLtDestroy", "the handle is NULL");
    handle->tag = 0;
    delete handle;
    return cram::emu::lt::ok();
}
inline std::size_t cublasLtGetVersion() { return 130100; }  // the toolkit headers this subset follows

inline const char* cublasLtGetStatusName(cublasStatus_t s) {
    switch (s) {
        case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
        case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
        case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
        case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
        case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
        case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
        case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
        case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
        case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
        case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}
inline const char* cublasLtGetStatusString(cublasStatus_t s) { return cublasLtGetStatusName(s); }

// -- matrix layouts

inline cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type,
                                                 std::uint64_t rows, std::uint64_t cols, std::int64_t ld) {
    if (!layout)
        return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatrixLayoutCreate", "matLayout is NULL");
    auto* l = new cublasLtMatrixLayoutOpaque_t;
    l->type = std::uint32_t(type);
    l->rows = rows;
    l->cols = cols;
    l->ld = ld;
    *layout = l;
    return cram::emu::lt::ok();
}
inline cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete layout;  // NULL is allowed
    return cram::emu::lt::ok();
}
inline cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                       const void* buf, std::size_t size) {
    constexpr const char* fn = "cublasLtMatrixLayoutSetAttribute";
    using cram::emu::lt::set_value;
    if (!l) return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "matLayout is NULL");
    switch (attr) {
        case CUBLASLT_MATRIX_LAYOUT_TYPE: return set_value(l->type, buf, size, fn);
        case CUBLASLT_MATRIX_LAYOUT_ORDER: return set_value(l->order, buf, size, fn);
        case CUBLASLT_MATRIX_LAYOUT_ROWS: return set_value(l->rows, buf, size, fn);
        case CUBLASLT_MATRIX_LAYOUT_COLS: return set_value(l->cols, buf, size, fn);
        case CUBLASLT_MATRIX_LAYOUT_LD: return set_value(l->ld, buf, size, fn);
        case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return set_value(l->batch_count, buf, size, fn);
        case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return set_value(l->batch_stride, buf, size, fn);
        case CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET: return set_value(l->plane_offset, buf, size, fn);
        case CUBLASLT_MATRIX_LAYOUT_BATCH_MODE: return set_value(l->batch_mode, buf, size, fn);
    }
    return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "unknown attribute " + std::to_string(int(attr)));
}
inline cublasStatus_t cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t attr,
                                                       void* buf, std::size_t size, std::size_t* written) {
    constexpr const char* fn = "cublasLtMatrixLayoutGetAttribute";
    using cram::emu::lt::get_value;
    if (!l) return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "matLayout is NULL");
    switch (attr) {
        case CUBLASLT_MATRIX_LAYOUT_TYPE: return get_value(l->type, buf, size, written, fn);
        case CUBLASLT_MATRIX_LAYOUT_ORDER: return get_value(l->order, buf, size, written, fn);
        case CUBLASLT_MATRIX_LAYOUT_ROWS: return get_value(l->rows, buf, size, written, fn);
        case CUBLASLT_MATRIX_LAYOUT_COLS: return get_value(l->cols, buf, size, written, fn);
        case CUBLASLT_MATRIX_LAYOUT_LD: return get_value(l->ld, buf, size, written, fn);
        case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return get_value(l->batch_count, buf, size, written, fn);
        case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return get_value(l->batch_stride, buf, size, written, fn);
        case CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET: return get_value(l->plane_offset, buf, size, written, fn);
        case CUBLASLT_MATRIX_LAYOUT_BATCH_MODE: return get_value(l->batch_mode, buf, size, written, fn);
    }
    return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "unknown attribute " + std::to_string(int(attr)));
}

// -- matmul descriptors

inline cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t compute,
                                               cudaDataType_t scale) {
    if (!desc)
        return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulDescCreate", "matmulDesc is NULL");
    auto* d = new cublasLtMatmulDescOpaque_t;
    d->compute_type = std::int32_t(compute);
    d->scale_type = std::int32_t(scale);
    *desc = d;
    return cram::emu::lt::ok();
}
inline cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete desc;
    return cram::emu::lt::ok();
}

namespace cram::emu::lt {
// One switch serves set and get: `access(field)` does the copy for the attribute's field.
template <class Access>
cublasStatus_t desc_attribute(cublasLtMatmulDescOpaque_t& d, int attr, Access access, const char* fn) {
    switch (attr) {
        case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return access(d.compute_type);
        case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return access(d.scale_type);
        case CUBLASLT_MATMUL_DESC_POINTER_MODE: return access(d.pointer_mode);
        case CUBLASLT_MATMUL_DESC_TRANSA: return access(d.trans_a);
        case CUBLASLT_MATMUL_DESC_TRANSB: return access(d.trans_b);
        case CUBLASLT_MATMUL_DESC_TRANSC: return access(d.trans_c);
        case CUBLASLT_MATMUL_DESC_FILL_MODE: return access(d.fill_mode);
        case CUBLASLT_MATMUL_DESC_EPILOGUE: return access(d.epilogue);
        case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return access(d.bias);
        case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: return access(d.bias_batch_stride);
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: return access(d.aux);
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: return access(d.aux_ld);
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE: return access(d.aux_batch_stride);
        case CUBLASLT_MATMUL_DESC_ALPHA_VECTOR_BATCH_STRIDE: return access(d.alpha_vector_batch_stride);
        case CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET: return access(d.sm_count_target);
        case CUBLASLT_MATMUL_DESC_A_SCALE_POINTER: return access(d.scaling_pointers[0]);
        case CUBLASLT_MATMUL_DESC_B_SCALE_POINTER: return access(d.scaling_pointers[1]);
        case CUBLASLT_MATMUL_DESC_C_SCALE_POINTER: return access(d.scaling_pointers[2]);
        case CUBLASLT_MATMUL_DESC_D_SCALE_POINTER: return access(d.scaling_pointers[3]);
        case CUBLASLT_MATMUL_DESC_AMAX_D_POINTER: return access(d.scaling_pointers[4]);
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE: return access(d.aux_type);
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_SCALE_POINTER: return access(d.scaling_pointers[5]);
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_AMAX_POINTER: return access(d.scaling_pointers[6]);
        case CUBLASLT_MATMUL_DESC_FAST_ACCUM: return access(d.fast_accum);
        case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return access(d.bias_type);
        case CUBLASLT_MATMUL_DESC_A_SCALE_MODE: return access(d.scale_modes[0]);
        case CUBLASLT_MATMUL_DESC_B_SCALE_MODE: return access(d.scale_modes[1]);
        case CUBLASLT_MATMUL_DESC_C_SCALE_MODE: return access(d.scale_modes[2]);
        case CUBLASLT_MATMUL_DESC_D_SCALE_MODE: return access(d.scale_modes[3]);
        case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_SCALE_MODE: return access(d.scale_modes[4]);
        case CUBLASLT_MATMUL_DESC_D_OUT_SCALE_POINTER: return access(d.scaling_pointers[7]);
        case CUBLASLT_MATMUL_DESC_D_OUT_SCALE_MODE: return access(d.scale_modes[5]);
        case CUBLASLT_MATMUL_DESC_EMULATION_DESCRIPTOR: return access(d.scaling_pointers[8]);
        default: break;
    }
    return refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "unknown attribute " + std::to_string(attr));
}
}  // namespace cram::emu::lt

inline cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                                     const void* buf, std::size_t size) {
    constexpr const char* fn = "cublasLtMatmulDescSetAttribute";
    if (!desc) return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "matmulDesc is NULL");
    return cram::emu::lt::desc_attribute(
        *desc, int(attr), [&](auto& field) { return cram::emu::lt::set_value(field, buf, size, fn); }, fn);
}
inline cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                                     void* buf, std::size_t size, std::size_t* written) {
    constexpr const char* fn = "cublasLtMatmulDescGetAttribute";
    if (!desc) return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "matmulDesc is NULL");
    return cram::emu::lt::desc_attribute(
        *desc, int(attr), [&](auto& field) { return cram::emu::lt::get_value(field, buf, size, written, fn); }, fn);
}

// -- heuristic preferences

inline cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
    if (!pref)
        return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulPreferenceCreate", "pref is NULL");
    *pref = new cublasLtMatmulPreferenceOpaque_t;
    return cram::emu::lt::ok();
}
inline cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete pref;
    return cram::emu::lt::ok();
}

namespace cram::emu::lt {
template <class Access>
cublasStatus_t preference_attribute(cublasLtMatmulPreferenceOpaque_t& p, int attr, Access access, const char* fn) {
    switch (attr) {
        case CUBLASLT_MATMUL_PREF_SEARCH_MODE: return access(p.search_mode);
        case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return access(p.max_workspace);
        case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK: return access(p.reduction_mask);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return access(p.min_alignment[0]);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return access(p.min_alignment[1]);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return access(p.min_alignment[2]);
        case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return access(p.min_alignment[3]);
        case CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT: return access(p.max_waves);
        case CUBLASLT_MATMUL_PREF_IMPL_MASK: return access(p.impl_mask);
        default: break;
    }
    return refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "unknown attribute " + std::to_string(attr));
}

// The emulated heuristic: up to `count` algorithms (identical results) for a problem `analyse` accepted.
inline cublasStatus_t find_algorithms(const cublasLtMatmulDescOpaque_t& d, const problem& p,
                                      const cublasLtMatmulPreferenceOpaque_t& pref, int count,
                                      cublasLtMatmulHeuristicResult_t* results, int* found, const char* fn) {
    *found = 0;
    if (pref.search_mode != CUBLASLT_SEARCH_BEST_FIT)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, fn, "only CUBLASLT_SEARCH_BEST_FIT is emulated");
    // an algorithm needs at least element alignment; a preference promising less leaves none
    const int sizes[4] = {p.es_ab, p.es_ab, p.es_cd, p.es_cd};
    const char* const names[4] = {"A", "B", "C", "D"};
    std::uint32_t need[6] = {};
    for (int i = 0; i < 4; ++i) {
        if (pref.min_alignment[i] < std::uint32_t(sizes[i]))
            return refuse(CUBLAS_STATUS_NOT_SUPPORTED, fn,
                          std::string("MIN_ALIGNMENT_") + names[i] + "_BYTES " + std::to_string(pref.min_alignment[i]) +
                              " is below the element size " + std::to_string(sizes[i]));
        need[i] = std::min(floor_pow2(pref.min_alignment[i]), max_kernel_alignment);
    }
    // the bias and aux alignment come from the descriptor's pointers (cublasLt.h)
    const bool has_bias = p.bias_len > 0, has_aux = writes_aux(p.epilogue) || reads_aux(p.epilogue);
    const std::uint32_t bias_al = alignment_of(reinterpret_cast<std::uintptr_t>(d.bias));
    const std::uint32_t aux_al = alignment_of(reinterpret_cast<std::uintptr_t>(d.aux));
    if (has_bias && bias_al < std::uint32_t(p.es_bias))
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, fn, "the bias pointer is not aligned to its element size");
    if (has_aux && aux_al < std::uint32_t(p.es_aux))
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, fn, "the aux pointer is not aligned to its element size");
    need[4] = has_bias ? std::min(bias_al, max_kernel_alignment) : 1;
    need[5] = has_aux ? std::min(aux_al, max_kernel_alignment) : 1;
    std::uint64_t packed = 0;
    for (int i = 0; i < 6; ++i) packed |= std::uint64_t(log2_of(need[i])) << (8 * i);
    const int n = std::min(count, algorithms);
    for (int i = 0; i < n; ++i) {
        cublasLtMatmulHeuristicResult_t& r = results[i];
        r = {};
        r.algo.data[0] = algo_tag;
        r.algo.data[1] = std::uint64_t(i);
        r.algo.data[2] = p.fingerprint;
        r.algo.data[3] = packed;
        r.workspaceSize = 0;  // within any MAX_WORKSPACE_BYTES
        r.state = CUBLAS_STATUS_SUCCESS;
        r.wavesCount = 1.0f;
    }
    *found = n;
    return ok();
}
}  // namespace cram::emu::lt

inline cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                           cublasLtMatmulPreferenceAttributes_t attr, const void* buf,
                                                           std::size_t size) {
    constexpr const char* fn = "cublasLtMatmulPreferenceSetAttribute";
    if (!pref) return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "pref is NULL");
    return cram::emu::lt::preference_attribute(
        *pref, int(attr), [&](auto& field) { return cram::emu::lt::set_value(field, buf, size, fn); }, fn);
}
inline cublasStatus_t cublasLtMatmulPreferenceGetAttribute(cublasLtMatmulPreference_t pref,
                                                           cublasLtMatmulPreferenceAttributes_t attr, void* buf,
                                                           std::size_t size, std::size_t* written) {
    constexpr const char* fn = "cublasLtMatmulPreferenceGetAttribute";
    if (!pref) return cram::emu::lt::refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "pref is NULL");
    return cram::emu::lt::preference_attribute(
        *pref, int(attr), [&](auto& field) { return cram::emu::lt::get_value(field, buf, size, written, fn); }, fn);
}

// -- heuristic and matmul

inline cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                                     cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                                     cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                                     cublasLtMatmulPreference_t pref, int requestedAlgoCount,
                                                     cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                                     int* returnAlgoCount) {
    using namespace cram::emu::lt;
    constexpr const char* fn = "cublasLtMatmulAlgoGetHeuristic";
    if (returnAlgoCount) *returnAlgoCount = 0;
    if (!handle || handle->tag != handle_tag)
        return refuse(CUBLAS_STATUS_NOT_INITIALIZED, fn, "the handle was not made by cublasLtCreate");
    if (!desc || !Adesc || !Bdesc || !Cdesc || !Ddesc || !pref || !heuristicResultsArray || !returnAlgoCount)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "a descriptor, the results array or returnAlgoCount is NULL");
    if (requestedAlgoCount <= 0)
        return refuse(CUBLAS_STATUS_INVALID_VALUE, fn, "requestedAlgoCount must be > 0");
    problem p;
    // the heuristic finds nothing for any configuration it cannot run (cublasLt.h: NOT_SUPPORTED)
    if (analyse(*desc, *Adesc, *Bdesc, *Cdesc, *Ddesc, p, fn, CUBLAS_STATUS_NOT_SUPPORTED) != CUBLAS_STATUS_SUCCESS)
        return refuse(CUBLAS_STATUS_NOT_SUPPORTED, fn, cram::emu::cublaslt_last_error().substr(std::strlen(fn) + 2));
    return find_algorithms(*desc, p, *pref, requestedAlgoCount, heuristicResultsArray, returnAlgoCount, fn);
}

inline cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc, const void* alpha,
                                     const void* A, cublasLtMatrixLayout_t Adesc, const void* B,
                                     cublasLtMatrixLayout_t Bdesc, const void* beta, const void* C,
                                     cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc,
                                     const cublasLtMatmulAlgo_t* algo, void* workspace,
                                     std::size_t workspaceSizeInBytes, cudaStream_t /*stream: runs in order, now*/) {
    using namespace cram::emu::lt;
    constexpr const char* fn = "cublasLtMatmul";
    constexpr cublasStatus_t invalid = CUBLAS_STATUS_INVALID_VALUE;
    if (!handle || handle->tag != handle_tag)
        return refuse(CUBLAS_STATUS_NOT_INITIALIZED, fn, "the handle was not made by cublasLtCreate");
    if (!desc || !Adesc || !Bdesc || !Cdesc || !Ddesc) return refuse(invalid, fn, "a descriptor is NULL");
    if (!alpha || !beta) return refuse(invalid, fn, "alpha or beta is NULL");
    problem p;
    if (const cublasStatus_t st = analyse(*desc, *Adesc, *Bdesc, *Cdesc, *Ddesc, p, fn, CUBLAS_STATUS_ARCH_MISMATCH);
        st != CUBLAS_STATUS_SUCCESS)
        return st;
    const cublasLtMatmulDescOpaque_t& d = *desc;
    const cublasLtMatrixLayoutOpaque_t &la = *Adesc, &lb = *Bdesc, &lc = *Cdesc, &ld = *Ddesc;
    const std::uint32_t e = p.epilogue;
    const bool has_bias = p.bias_len > 0, has_aux = writes_aux(e) || reads_aux(e);

    // alpha and beta: host memory, or device memory (which the emulator's host can read) in DEVICE mode
    if (d.pointer_mode == CUBLASLT_POINTER_MODE_DEVICE) {
        for (const void* s : {alpha, beta})
            if (!cram::emu::device_range_ok(s, sizeof(float))) {
                cram::emu::fault(700, std::string(fn) + ": alpha/beta (" + pointer_words(s) +
                                          ") is not inside a live device allocation (CUBLASLT_POINTER_MODE_DEVICE)");
                return refuse(CUBLAS_STATUS_EXECUTION_FAILED, fn, "illegal address (alpha/beta)");
            }
    }
    float alpha_v, beta_v;
    std::memcpy(&alpha_v, alpha, sizeof alpha_v);
    std::memcpy(&beta_v, beta, sizeof beta_v);
    const bool reads_c = beta_v != 0.0f;  // C is not read when beta is zero

    if (!D || (!A && p.k > 0) || (!B && p.k > 0) || (!C && reads_c))
        return refuse(invalid, fn, "a matrix pointer is NULL");
    if (has_bias && !d.bias) return refuse(invalid, fn, "the epilogue needs CUBLASLT_MATMUL_DESC_BIAS_POINTER");
    if (has_aux && !d.aux)
        return refuse(invalid, fn, "the epilogue needs CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER");
    if (C && C == D && (lc.ld != ld.ld || lc.batch_stride != ld.batch_stride))
        return refuse(invalid, fn, "in place (C == D) the layouts of C and D must be the same");

    // alignment: each operand at least to its element; no less than the algorithm was found for
    const std::uint32_t al[6] = {
        operand_alignment(A, p.batch, la.batch_stride, p.es_ab), operand_alignment(B, p.batch, lb.batch_stride, p.es_ab),
        C ? operand_alignment(C, p.batch, lc.batch_stride, p.es_cd) : 256u,
        operand_alignment(D, p.batch, ld.batch_stride, p.es_cd),
        has_bias ? operand_alignment(d.bias, p.batch, d.bias_batch_stride, p.es_bias) : 256u,
        has_aux ? operand_alignment(d.aux, p.batch, d.aux_batch_stride, p.es_aux) : 256u};
    const int elem[6] = {p.es_ab, p.es_ab, p.es_cd, p.es_cd, p.es_bias, p.es_aux};
    const char* const names[6] = {"A", "B", "C", "D", "bias", "aux"};
    for (int i = 0; i < 6; ++i)
        if (al[i] < std::uint32_t(elem[i]))
            return refuse(invalid, fn,
                          std::string("operand ") + names[i] + " is " + std::to_string(al[i]) +
                              "-byte aligned, below its element size " + std::to_string(elem[i]));
    cublasLtMatmulAlgo_t implicit{};
    if (!algo) {  // documented: an implicit heuristic query; here for the alignment the pointers actually have
        cublasLtMatmulPreferenceOpaque_t pref;
        for (int i = 0; i < 4; ++i) pref.min_alignment[i] = al[i];
        cublasLtMatmulHeuristicResult_t r{};
        int found = 0;
        if (const cublasStatus_t st = find_algorithms(d, p, pref, 1, &r, &found, fn); st != CUBLAS_STATUS_SUCCESS)
            return st;
        implicit = r.algo;
        algo = &implicit;
    }
    if (algo->data[0] != algo_tag || algo->data[1] >= std::uint64_t(algorithms))
        return refuse(invalid, fn, "the algorithm was not produced by cublasLtMatmulAlgoGetHeuristic");
    if (algo->data[2] != p.fingerprint)
        return refuse(invalid, fn,
                      "the algorithm was found for another problem (types, transposes, m/n/k, batch count or "
                      "epilogue differ)");
    for (int i = 0; i < 6; ++i) {
        const std::uint32_t need = 1u << ((algo->data[3] >> (8 * i)) & 0xffu);
        if (al[i] < need)
            return refuse(invalid, fn,
                          std::string("operand ") + names[i] + " is " + std::to_string(al[i]) +
                              "-byte aligned, but the algorithm was found for " + std::to_string(need) +
                              "-byte alignment (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES / the descriptor's pointer)");
    }
    // the emulated algorithms need no workspace, so any workspaceSizeInBytes suffices

    if (p.m == 0 || p.n == 0) return ok();

    // every operand must lie in live device memory: otherwise the kernel would fault
    struct range {
        const char* name;
        const void* ptr;
        std::size_t bytes;
    };
    const std::int64_t bstride = d.bias_batch_stride;
    const range ranges[7] = {
        {"A", A, span_bytes(std::int64_t(la.rows), std::int64_t(la.cols), la.ld, p.batch, la.batch_stride, p.es_ab)},
        {"B", B, span_bytes(std::int64_t(lb.rows), std::int64_t(lb.cols), lb.ld, p.batch, lb.batch_stride, p.es_ab)},
        {"C", reads_c ? C : nullptr,
         span_bytes(std::int64_t(lc.rows), std::int64_t(lc.cols), lc.ld, p.batch, lc.batch_stride, p.es_cd)},
        {"D", D, span_bytes(p.m, p.n, ld.ld, p.batch, ld.batch_stride, p.es_cd)},
        {"bias", has_bias ? d.bias : nullptr, span_bytes(p.bias_len, 1, p.bias_len, p.batch, bstride, p.es_bias)},
        {"aux", has_aux ? d.aux : nullptr, span_bytes(p.m, p.n, d.aux_ld, p.batch, d.aux_batch_stride, p.es_aux)},
        {"workspace", workspace, workspace ? workspaceSizeInBytes : 0}};
    for (const range& r : ranges) {
        if (!r.ptr || r.bytes == 0) continue;
        if (!cram::emu::device_range_ok(r.ptr, r.bytes)) {
            cram::emu::fault(700, std::string(fn) + ": operand " + r.name + " (" + pointer_words(r.ptr) + ", " +
                                      std::to_string(r.bytes) +
                                      " bytes by its layout) is not inside a live device allocation (m=" +
                                      std::to_string(p.m) + " n=" + std::to_string(p.n) + " k=" +
                                      std::to_string(p.k) + " batch=" + std::to_string(p.batch) + ")");
            return refuse(CUBLAS_STATUS_EXECUTION_FAILED, fn, std::string("illegal address (operand ") + r.name + ")");
        }
    }

    // compute: op(A) as m rows of k floats, op(B) as n rows of k floats, then the dot products
    const std::int64_t m = p.m, n = p.n, k = p.k;
    std::vector<float> a(std::size_t(m * k)), b(std::size_t(n * k)), acc(std::size_t(m * n));
    std::vector<float> bias_grad(has_bias ? std::size_t(p.bias_len) : 0);
    const auto byte_offset = [](const void* base, std::int64_t elems, int es) {
        return static_cast<const unsigned char*>(base) + elems * es;
    };
    for (std::int32_t bi = 0; bi < p.batch; ++bi) {
        if (k > 0) {
            const void* ab = byte_offset(A, bi * la.batch_stride, p.es_ab);
            const void* bb = byte_offset(B, bi * lb.batch_stride, p.es_ab);
            // op(A)(i, q) = A[i + q lda] (N) or A[q + i lda] (T); op(B)(q, j) = B[q + j ldb] (N) or B[j + q ldb] (T)
            gather(ab, p.type_ab, m, k, p.trans_a ? la.ld : 1, p.trans_a ? 1 : la.ld, a.data());
            gather(bb, p.type_ab, n, k, p.trans_b ? 1 : lb.ld, p.trans_b ? lb.ld : 1, b.data());
            dot_products(a.data(), b.data(), m, n, k, acc.data());
        } else {
            std::fill(acc.begin(), acc.end(), 0.0f);
        }
        const void* cb = reads_c ? byte_offset(C, bi * lc.batch_stride, p.es_cd) : nullptr;
        void* db = const_cast<unsigned char*>(byte_offset(D, bi * ld.batch_stride, p.es_cd));
        const void* bias_in = needs_bias_in(e) ? byte_offset(d.bias, bi * bstride, p.es_bias) : nullptr;
        void* aux = has_aux ? const_cast<unsigned char*>(byte_offset(d.aux, bi * d.aux_batch_stride, p.es_aux))
                            : nullptr;
        std::fill(bias_grad.begin(), bias_grad.end(), 0.0f);
        for (std::int64_t j = 0; j < n; ++j) {
            for (std::int64_t i = 0; i < m; ++i) {
                float v = alpha_v * acc[std::size_t(j * m + i)];
                if (reads_c) v += beta_v * load(cb, p.type_cd, i + j * lc.ld);
                if (bias_in) v += load(bias_in, p.bias_type, i);
                const std::int64_t x = i + j * d.aux_ld;
                if (writes_aux(e)) store(aux, p.aux_type, x, v);  // the GELU input, for the backward pass
                if (applies_gelu(e)) v = gelu(v);
                if (e == CUBLASLT_EPILOGUE_RELU || e == CUBLASLT_EPILOGUE_RELU_BIAS) v = v > 0.0f ? v : 0.0f;
                if (reads_aux(e)) v *= gelu_grad(load(aux, p.aux_type, x));
                if (e == CUBLASLT_EPILOGUE_DGELU_BGRAD) bias_grad[std::size_t(i)] += v;
                store(db, p.type_cd, i + j * ld.ld, v);
            }
        }
        // bias gradients reduce the input over k: row sums of op(A) (length m), column sums of op(B) (length n)
        if (e == CUBLASLT_EPILOGUE_BGRADA)
            for (std::int64_t i = 0; i < m; ++i)
                for (std::int64_t q = 0; q < k; ++q) bias_grad[std::size_t(i)] += a[std::size_t(i * k + q)];
        if (e == CUBLASLT_EPILOGUE_BGRADB)
            for (std::int64_t j = 0; j < n; ++j)
                for (std::int64_t q = 0; q < k; ++q) bias_grad[std::size_t(j)] += b[std::size_t(j * k + q)];
        if (writes_bias_grad(e)) {
            void* out = static_cast<unsigned char*>(d.bias) + bi * bstride * p.es_bias;
            for (std::int64_t i = 0; i < p.bias_len; ++i) store(out, p.bias_type, i, bias_grad[std::size_t(i)]);
        }
    }
    return ok();
}
