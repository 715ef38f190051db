// The one cuBLASLt wrapper every matmul goes through, and the linear layer built on it. The interface
// is the CPU oracle's row-major gemm (C[m,n] = alpha op(A) op(B) + beta C) plus strided batches and a
// bias epilogue; it maps to cuBLASLt's column-major view by computing C^T = op(B)^T op(A)^T. bf16, fp16 (or
// fp32) inputs, fp32 accumulation (CUBLAS_COMPUTE_32F, fp32 alpha and beta), output in the inputs' 16-bit type
// or fp32 (weight gradients accumulate in fp32, beta = 1); the bias has the output's type, as cuBLASLt requires
// (cublasLt.h, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE).
// Plans (descriptors, layouts, the algorithm) are cached per shape in the context. The algorithm is the
// fastest of up to 8 the cuBLASLt heuristic offers, each timed once on the operands of the call that first meets
// the shape (context::gemm_choice = timed, the default; single-matrix GEMMs, the linear layers and the decoder),
// or the heuristic's first pick (gemm_algorithms::heuristic, and always for batched GEMMs). gemm_report lists
// each plan's measured time and TFLOP/s, or why it was not timed. The CUDA twin of cram/ops/gemm.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include <cublasLt.h>

#include "cram/core/error.hpp"
#include "cram/cuda/common.hpp"
#include "cram/cuda/context.hpp"
#include "cram/cuda/error.hpp"
#include "cram/cuda/memory.hpp"

namespace cram::cuda {

namespace detail {

// Largest power of two (<= 256) dividing the address; an address of 0 (a zero stride) counts as 256.
inline int pointer_alignment(const void* p) {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    int align = 256;
    while (align > 1 && (a % static_cast<std::uintptr_t>(align)) != 0) align /= 2;
    return align;
}

// The cuBLASLt (column-major) problem for a row-major C[m,n] = op(A) op(B): a row-major matrix is its
// transpose in column-major, so C^T[n,m] = op(B)^T[n,k] op(A)^T[k,m] and cuBLASLt's A is our B and vice
// versa. Shape fields only; types, epilogue and alignments are filled by the caller.
inline gemm_key column_major_problem(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, index_t lda,
                                     index_t stride_a, index_t ldb, index_t stride_b, index_t ldc, index_t stride_c,
                                     int batch) {
    gemm_key key{};
    key.op_a = trans_b ? 1 : 0;
    key.op_b = trans_a ? 1 : 0;
    key.m = n;
    key.n = m;
    key.k = k;
    key.lda = ldb;
    key.ldb = lda;
    key.ldc = ldc;
    key.stride_a = stride_b;
    key.stride_b = stride_a;
    key.stride_c = stride_c;
    key.batch = batch;
    return key;
}

// Rows and columns of the stored (pre-transpose) column-major operands, as the layouts describe them.
struct stored_shapes {
    std::int64_t a_rows, a_cols, b_rows, b_cols;
};
inline stored_shapes stored_shapes_of(const gemm_key& key) {
    return {key.op_a ? key.k : key.m, key.op_a ? key.m : key.k, key.op_b ? key.n : key.k, key.op_b ? key.k : key.n};
}

constexpr int max_gemm_candidates = 8;

// The operands of the call that creates a plan, in cuBLASLt's order (its A is our B, and vice versa): timing
// runs on them, and the heuristic reads the bias pointer's alignment from its value.
struct gemm_operands {
    const void* a;
    const void* b;
    const void* c;  // the beta term's source: the output itself, or the addend
    void* d;
    const void* bias;
};

// Times each algorithm the heuristic offered (a warm-up call, then three, or twenty when three take under
// 0.3 ms) on the call's own operands, and keeps the fastest in the plan if it beats the heuristic's pick by
// 3 %. Inputs are only read; an output the GEMM overwrites (beta = 0, or an addend as C) is written again by the
// call itself right after. Only an in-place accumulation (beta = 1, C = D: the weight gradients) must not run
// more than once, so its timing writes a scratch D with C = the real gradient (cuBLASLt allows C != D with one
// layout). When that scratch does not fit, or no candidate runs, the plan keeps the heuristic's first pick and
// says why. Synchronises the stream: once per shape, in the first step.
inline void time_candidates(context& ctx, const gemm_key& key, gemm_plan& plan,
                            const cublasLtMatmulHeuristicResult_t* results, int found, const gemm_operands& ops,
                            std::size_t c_size) {
    device_buffer<std::byte> scratch_d;
    void* d = ops.d;
    if (!key.beta_zero && ops.c == ops.d) {
        try {
            scratch_d = device_buffer<std::byte>(std::size_t(key.ldc) * std::size_t(key.n) * c_size);
        } catch (const cram::error&) {
            cudaGetLastError();  // out of memory: keep the heuristic's pick
            plan.how = gemm_choice_how::no_memory;
            return;
        }
        d = scratch_d.data();
    }
    const float alpha = 1.0f, beta = key.beta_zero ? 0.0f : 1.0f;
    cudaEvent_t start = nullptr, stop = nullptr;
    CRAM_CUDA_CHECK(cudaEventCreate(&start));
    if (const cudaError_t e = cudaEventCreate(&stop); e != cudaSuccess) {
        cudaEventDestroy(start);
        CRAM_CUDA_CHECK(e);
    }
    // mean ms per call over `reps` calls of candidate i, or a negative value when it does not run
    const auto time_calls = [&](int i, int reps) {
        const auto call = [&] {
            return cublasLtMatmul(ctx.lt(), plan.desc, &alpha, ops.a, plan.a, ops.b, plan.b, &beta, ops.c, plan.c, d,
                                  plan.c, &results[i].algo, ctx.workspace(), ctx.workspace_size(), ctx.stream());
        };
        bool ran = true;
        cudaEventRecord(start, ctx.stream());
        for (int r = 0; r < reps; ++r) ran = ran && call() == CUBLAS_STATUS_SUCCESS;
        cudaEventRecord(stop, ctx.stream());
        float ms = 0;
        const bool timed =
            cudaEventSynchronize(stop) == cudaSuccess && cudaEventElapsedTime(&ms, start, stop) == cudaSuccess;
        return ran && timed ? double(ms) / reps : -1.0;
    };
    // A candidate replaces the heuristic's pick only when it is clearly faster, so that timing noise does not
    // choose differently from one run to the next.
    constexpr double clearly_faster = 0.97;
    int ran_any = 0;
    double first_ms = 0;
    for (int i = 0; i < found; ++i) {
        if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
        if (time_calls(i, 1) < 0) continue;  // warm-up; a refusal comes before any launch: the stream is clean
        double ms = time_calls(i, 3);
        if (ms >= 0 && ms * 3 < 0.3) ms = time_calls(i, 20);  // short kernels: more calls, less noise
        if (ms < 0) continue;
        if (ran_any++ == 0) {  // the first that runs is the pick to beat
            first_ms = ms;
            plan.algo = results[i].algo;
            plan.chosen = i;
            plan.ms = ms;
        } else if (ms < plan.ms && ms < clearly_faster * first_ms) {
            plan.algo = results[i].algo;
            plan.chosen = i;
            plan.ms = ms;
        }
    }
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    plan.how = ran_any > 0 ? gemm_choice_how::timed : gemm_choice_how::none_ran;
    CRAM_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()));  // before the scratch output is freed; raises a fault
}

inline gemm_plan& find_plan(context& ctx, const gemm_key& key, cudaDataType_t type_ab, cudaDataType_t type_c,
                            cudaDataType_t type_bias, std::size_t c_size, const gemm_operands& ops) {
    auto& plans = ctx.gemm_plans();
    if (auto it = plans.find(key); it != plans.end()) return it->second;
    gemm_plan plan;
    try {
        CRAM_CUBLAS_CHECK(cublasLtMatmulDescCreate(&plan.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        const cublasOperation_t op_a = key.op_a ? CUBLAS_OP_T : CUBLAS_OP_N;
        const cublasOperation_t op_b = key.op_b ? CUBLAS_OP_T : CUBLAS_OP_N;
        CRAM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
        CRAM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
        const auto epi = static_cast<cublasLtEpilogue_t>(key.epilogue);
        CRAM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
        if (epi != CUBLASLT_EPILOGUE_DEFAULT) {
            const int bt = static_cast<int>(type_bias);
            CRAM_CUBLAS_CHECK(
                cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt));
            // the heuristic reads the bias's alignment from this pointer (cublasLt.h); a plan is reused only for
            // biases of the same alignment (gemm_key::align_bias)
            CRAM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &ops.bias,
                                                             sizeof ops.bias));
        }
        // stored shapes: op N -> rows x cols = (m|k) x (k|n) as used; op T -> the transpose
        const stored_shapes sh = stored_shapes_of(key);
        CRAM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.a, type_ab, std::uint64_t(sh.a_rows),
                                                     std::uint64_t(sh.a_cols), key.lda));
        CRAM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.b, type_ab, std::uint64_t(sh.b_rows),
                                                     std::uint64_t(sh.b_cols), key.ldb));
        CRAM_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&plan.c, type_c, key.m, key.n, key.ldc));
        if (key.batch > 1) {
            const std::int32_t count = key.batch;
            const std::int64_t strides[3] = {key.stride_a, key.stride_b, key.stride_c};
            cublasLtMatrixLayout_t layouts[3] = {plan.a, plan.b, plan.c};
            for (int i = 0; i < 3; ++i) {
                CRAM_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layouts[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                                   &count, sizeof count));
                CRAM_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
                    layouts[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &strides[i], sizeof strides[i]));
            }
        }
        cublasLtMatmulPreference_t pref = nullptr;
        CRAM_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        const std::uint64_t ws = ctx.workspace_size();
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
        const std::uint32_t al[4] = {std::uint32_t(key.align_a), std::uint32_t(key.align_b),
                                     std::uint32_t(key.align_c), std::uint32_t(key.align_bias)};
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], sizeof al[0]);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], sizeof al[1]);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], sizeof al[2]);
        cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2], sizeof al[2]);
        cublasLtMatmulHeuristicResult_t results[max_gemm_candidates]{};
        const int wanted = ctx.gemm_choice == gemm_algorithms::timed && key.batch == 1 ? max_gemm_candidates : 1;
        int found = 0;
        const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(ctx.lt(), plan.desc, plan.a, plan.b, plan.c, plan.c,
                                                                 pref, wanted, results, &found);
        cublasLtMatmulPreferenceDestroy(pref);
        // the first candidate the heuristic marks usable is the default pick
        int first = 0;
        while (first < found && results[first].state != CUBLAS_STATUS_SUCCESS) ++first;
        if (st != CUBLAS_STATUS_SUCCESS || first == found)
            CRAM_THROW("cuBLASLt found no algorithm for a GEMM (column-major m=", key.m, " n=", key.n, " k=", key.k,
                       " lda=", key.lda, " ldb=", key.ldb, " ldc=", key.ldc, " batch=", key.batch, " op_a=", key.op_a,
                       " op_b=", key.op_b, " epilogue=", key.epilogue, " alignments ", key.align_a, "/", key.align_b,
                       "/", key.align_c, "): ", cram::cuda::detail::cublas_status_name(st),
                       "; check the leading dimensions and pointer alignment");
        plan.algo = results[first].algo;
        plan.chosen = first;
        plan.has_algo = true;
        plan.candidates = found;
        plan.how = ctx.gemm_choice != gemm_algorithms::timed ? gemm_choice_how::asked
                   : key.batch > 1                            ? gemm_choice_how::batched
                                                              : gemm_choice_how::one_offered;
        if (found > 1) time_candidates(ctx, key, plan, results, found, ops, c_size);
    } catch (...) {
        plan.destroy();
        throw;
    }
    return plans.emplace(key, plan).first->second;
}

}  // namespace detail

// Row-major C[m,n] = alpha * op(A)[m,k] * op(B)[k,n] + beta * C (+ bias[n] broadcast over rows), over
// `batch` matrices at the given element strides. AB: float, cram::bf16 or cram::fp16; CD: float or AB. With
// `addend`, the beta term reads it instead of C (cuBLASLt's D = alpha A B + beta C with C != D; same layout as
// the output), so C is written only.
template <class AB, class CD, class Bias = CD>
void gemm(context& ctx, bool trans_a, bool trans_b, index_t m, index_t n, index_t k, float alpha, const AB* a,
          index_t lda, index_t stride_a, const AB* b, index_t ldb, index_t stride_b, float beta, CD* c, index_t ldc,
          index_t stride_c, int batch = 1, const Bias* bias = nullptr, const CD* addend = nullptr) {
    static_assert(is_storage_type_v<AB> && is_storage_type_v<CD> && is_storage_type_v<Bias>,
                  "cram::cuda::gemm: element types are float, cram::bf16 or cram::fp16");
    static_assert(std::is_same_v<CD, float> || std::is_same_v<CD, AB>,
                  "cram::cuda::gemm: the output is fp32 or the inputs' type (cuBLASLt has no bf16 x bf16 -> fp16)");
    static_assert(std::is_same_v<Bias, CD>,
                  "cram::cuda::gemm: the bias has the output's type (cublasLt.h: other types only for IMMA and fp8)");
    if (m <= 0 || n <= 0 || batch <= 0) return;
    CRAM_CHECK(k > 0, "gemm with k = ", k, ": an empty inner dimension is not supported");
    CRAM_CHECK(a && b && c, "gemm: null matrix pointer (m=", m, " n=", n, " k=", k, ")");
    CRAM_CHECK(lda >= (trans_a ? m : k) && ldb >= (trans_b ? k : n) && ldc >= n, "gemm: leading dimensions lda=", lda,
               " ldb=", ldb, " ldc=", ldc, " too small for m=", m, " n=", n, " k=", k);
    detail::gemm_key key = detail::column_major_problem(trans_a, trans_b, m, n, k, lda, stride_a, ldb, stride_b, ldc,
                                                       stride_c, batch);
    key.type_ab = int(cuda_type<AB>());
    key.type_c = int(cuda_type<CD>());
    key.epilogue = int(bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT);
    // a batched matrix is only as aligned as its base pointer and its stride both allow
    const auto align = [batch](const void* p, index_t stride, std::size_t elem) {
        int al = detail::pointer_alignment(p);
        if (batch > 1)
            al = std::min(al, detail::pointer_alignment(reinterpret_cast<const void*>(
                                  static_cast<std::uintptr_t>(stride) * elem)));
        return al;
    };
    key.align_a = align(b, stride_b, sizeof(AB));
    key.align_b = align(a, stride_a, sizeof(AB));
    const CD* beta_source = addend ? addend : c;
    key.align_c = std::min(align(c, stride_c, sizeof(CD)), align(beta_source, stride_c, sizeof(CD)));
    key.align_bias = bias ? detail::pointer_alignment(bias) : 256;
    key.beta_zero = beta == 0.0f;
    detail::gemm_plan& plan = detail::find_plan(ctx, key, cuda_type<AB>(), cuda_type<CD>(), cuda_type<Bias>(),
                                                sizeof(CD), {b, a, beta_source, c, bias});
    if (bias) {
        const void* bp = bias;
        CRAM_CUBLAS_CHECK(
            cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp));
    }
    CRAM_CUBLAS_CHECK(cublasLtMatmul(ctx.lt(), plan.desc, &alpha, b, plan.a, a, plan.b, &beta, beta_source, plan.c, c,
                                     plan.c, &plan.algo, ctx.workspace(), ctx.workspace_size(), ctx.stream()));
}

// Single-matrix form with the CPU oracle's argument order.
template <class AB, class CD>
void gemm(context& ctx, bool trans_a, bool trans_b, index_t m, index_t n, index_t k, float alpha, const AB* a,
          index_t lda, const AB* b, index_t ldb, float beta, CD* c, index_t ldc) {
    gemm<AB, CD, CD>(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1, nullptr);
}

// One line per GEMM plan the context holds: the row-major problem (C[m,n] = op(A)[m,k] op(B)[k,n], with op
// flags, batch and output type), how its algorithm was chosen, and the measured time and rate of the timed ones
// (single-matrix GEMMs under gemm_algorithms::timed), fastest rate first among them.
struct gemm_timing {
    std::string shape;  // e.g. "65536x2304x768 (A, B^T) bf16 -> bf16 +bias"
    int candidates = 0, chosen = 0;
    double ms = 0, tflops = 0;  // 0: not timed
    std::string how;            // "timed", or why the heuristic's first pick was kept
};
inline const char* gemm_choice_words(detail::gemm_choice_how h) {
    switch (h) {
        case detail::gemm_choice_how::timed: return "timed";
        case detail::gemm_choice_how::asked: return "heuristic's first pick (asked for)";
        case detail::gemm_choice_how::batched: return "heuristic's first pick (batched: not timed)";
        case detail::gemm_choice_how::one_offered: return "heuristic's only candidate";
        case detail::gemm_choice_how::no_memory: return "heuristic's first pick (no memory to time it)";
        case detail::gemm_choice_how::none_ran: return "heuristic's first pick (no candidate ran when timed)";
    }
    return "?";
}
inline std::vector<gemm_timing> gemm_report(context& ctx) {
    const auto type_name = [](int t) {
        return t == int(CUDA_R_16BF) ? "bf16" : t == int(CUDA_R_16F) ? "fp16" : t == int(CUDA_R_32F) ? "fp32" : "?";
    };
    std::vector<gemm_timing> out;
    for (const auto& [key, plan] : ctx.gemm_plans()) {
        gemm_timing t;
        // back from cuBLASLt's column-major problem (column_major_problem) to the row-major one
        t.shape = std::to_string(key.n) + "x" + std::to_string(key.m) + "x" + std::to_string(key.k) + " (" +
                  (key.op_b ? "A^T" : "A") + ", " + (key.op_a ? "B^T" : "B") + ")" +
                  (key.batch > 1 ? " batch " + std::to_string(key.batch) : std::string()) + " " +
                  type_name(key.type_ab) + " -> " + type_name(key.type_c) +
                  (key.epilogue != int(CUBLASLT_EPILOGUE_DEFAULT) ? " +bias" : "") + (key.beta_zero ? "" : " +=");
        t.candidates = plan.candidates;
        t.chosen = plan.chosen;
        t.ms = plan.ms;
        t.how = gemm_choice_words(plan.how);
        const double flop = 2.0 * double(key.m) * double(key.n) * double(key.k) * double(key.batch);
        t.tflops = plan.ms > 0 ? flop / (plan.ms * 1e-3) / 1e12 : 0;
        out.push_back(std::move(t));
    }
    std::stable_sort(out.begin(), out.end(), [](const gemm_timing& a, const gemm_timing& b) { return a.tflops > b.tflops; });
    return out;
}

// A report line's figures: time, rate and the winning candidate when timed, else why not.
inline std::string describe(const gemm_timing& g) {
    char line[160];
    if (g.ms > 0)
        std::snprintf(line, sizeof line, "%8.3f ms %7.1f TFLOP/s (candidate %d of %d)", g.ms, g.tflops, g.chosen + 1,
                      g.candidates);
    else
        std::snprintf(line, sizeof line, "%s (%d offered)", g.how.c_str(), g.candidates);
    return line;
}

// dbias[c] += sum_r x[r, c]: a 32-column tile per block, rows split over the block's 8 rows and the grid.
template <class T>
__global__ void column_sum_accumulate_kernel(float* __restrict__ out, const T* __restrict__ x, index_t rows,
                                             index_t cols) {
    using part_tile = float[8][33];
    CRAM_SHARED(part_tile, part);
    const index_t col = static_cast<index_t>(blockIdx.x) * 32 + threadIdx.x;
    float s = 0.0f;
    if (col < cols)
        for (index_t r = static_cast<index_t>(blockIdx.y) * 8 + threadIdx.y; r < rows; r += index_t(gridDim.y) * 8)
            s += to_f32(x[r * cols + col]);
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && col < cols) {
        float t = 0.0f;
        for (int i = 0; i < 8; ++i) t += part[i][threadIdx.x];
        atomicAdd(out + col, t);
    }
}

template <class T>
void column_sum_accumulate(context& ctx, float* out, const T* x, index_t rows, index_t cols) {
    if (rows <= 0 || cols <= 0) return;
    const unsigned gx = static_cast<unsigned>((cols + 31) / 32);
    const unsigned gy = static_cast<unsigned>(std::clamp<index_t>(rows / 64, 1, 64));
    CRAM_LAUNCH(dim3(gx, gy), dim3(32, 8), 0, ctx.stream(), column_sum_accumulate_kernel<T>)(out, x, rows, cols);
    CRAM_CUDA_CHECK_LAUNCH();
}

// out[rows, out_f] = in[rows, in_f] * w[out_f, in_f]^T (+ bias), the bias fused into the GEMM epilogue.
template <class T>
void linear_forward(context& ctx, T* out, const T* in, const T* w, opt_ptr<const T> bias, index_t rows, index_t in_f,
                    index_t out_f) {
    gemm<T, T, T>(ctx, false, true, rows, out_f, in_f, 1.0f, in, in_f, 0, w, in_f, 0, 0.0f, out, out_f, 0, 1, bias);
}

// out[r, c] += bias[c], the rows in fp32 (an fp32 residual stream) and the bias in the weights' type.
template <class R, class T>
__global__ void add_bias_rows_kernel(R* __restrict__ out, const T* __restrict__ bias, index_t rows, index_t cols) {
    for (index_t i = global_thread(); i < rows * cols; i += grid_threads())
        out[i] = from_f32<R>(to_f32(out[i]) + to_f32(bias[i % cols]));
}

// out = residual + in * w^T (+ bias): the residual is the GEMM's C operand (beta = 1, C != D), so the sum is
// written once and no separate add kernel reads the branch back. R is the residual stream's type: T, or fp32 (the
// GEMM's fp32 output; its bias epilogue would need an fp32 bias, so a bias is added by a second kernel there).
template <class T, class R>
void linear_residual_forward(context& ctx, R* out, const T* in, const T* w, opt_ptr<const T> bias, const R* residual,
                             index_t rows, index_t in_f, index_t out_f) {
    CRAM_CHECK(residual && residual != out, "linear_residual_forward: the residual must be a separate buffer");
    if constexpr (std::is_same_v<R, T>) {
        gemm<T, T, T>(ctx, false, true, rows, out_f, in_f, 1.0f, in, in_f, 0, w, in_f, 0, 1.0f, out, out_f, 0, 1, bias,
                      residual);
    } else {
        static_assert(std::is_same_v<R, float>, "cram::cuda: a residual stream wider than T is fp32");
        gemm<T, R, R>(ctx, false, true, rows, out_f, in_f, 1.0f, in, in_f, 0, w, in_f, 0, 1.0f, out, out_f, 0, 1,
                      nullptr, residual);
        if (bias && rows > 0 && out_f > 0) {
            CRAM_LAUNCH(grid_for(ctx, rows * out_f, 256), 256, 0, ctx.stream(), add_bias_rows_kernel<R, T>)(
                out, bias, rows, out_f);
            CRAM_CUDA_CHECK_LAUNCH();
        }
    }
}

// din = dout * w (overwrites; skipped when null); dw += dout^T * in in fp32 (beta = 1); dbias += column
// sums of dout.
template <class T, class G>
void linear_backward(context& ctx, opt_ptr<T> din, G* dw, opt_ptr<G> dbias, const T* dout, const T* in, const T* w, index_t rows,
                     index_t in_f, index_t out_f) {
    static_assert(std::is_same_v<G, float>, "cram::cuda: parameter gradients are fp32");
    if (din) gemm<T, T>(ctx, false, false, rows, in_f, out_f, 1.0f, dout, out_f, w, in_f, 0.0f, din, in_f);
    gemm<T, G>(ctx, true, false, out_f, in_f, rows, 1.0f, dout, out_f, in, in_f, 1.0f, dw, in_f);
    if (dbias) column_sum_accumulate(ctx, dbias, dout, rows, out_f);
}

}  // namespace cram::cuda
