// The CUDA backend's context: one device, one stream every operation is ordered on, the cuBLASLt handle
// and workspace, a growable scratch arena for operations that need temporaries (attention, the fused
// decoder loss), the cache of GEMM plans, and a device-side error word that kernels set when they see
// bad input (a token id outside the vocabulary) so that no per-step host synchronisation is needed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include <cublasLt.h>
#include <cuda_runtime.h>

#include "cram/core/bf16.hpp"
#include "cram/core/error.hpp"
#include "cram/core/fp16.hpp"
#include "cram/cuda/error.hpp"
#include "cram/cuda/memory.hpp"
#include "cram/cuda/phase_timer.hpp"

namespace cram::cuda {

// The attention implementations a context may select (context::attention; cram/cuda/attention.hpp).
enum class attention_kernel { flash, gemm };
// The LayerNorm kernels a context may select (context::layernorm; cram/cuda/layernorm.hpp): a warp per row with
// the row in registers, or the block-per-row kernels that came first.
enum class layernorm_kernel { warp, block };
// How a GEMM's cuBLASLt algorithm is chosen (context::gemm_choice; cram/cuda/gemm.hpp): the fastest of the
// heuristic's candidates, timed once per shape, or the heuristic's first pick.
enum class gemm_algorithms { timed, heuristic };
// The MLM decoder's loss (context::decoder; cram/cuda/loss.hpp): fused (16-bit logits, the loss and its gradient
// in one pass that overwrites them, every masked row in one chunk where memory allows) or chunked, the first
// path (fp32 logits and a separate gradient, 192 MiB of rows at a time).
enum class decoder_kernel { fused, chunked };

// Bits of the device error word.
enum device_error : unsigned {
    error_token_id = 1u,    // a token id outside [0, vocab)
    error_token_type = 2u,  // a token type outside [0, types)
    error_label = 4u,       // a class label outside [0, classes) (ignore_label excepted)
};

// The oldest GPUs the backend runs on: fp16 tensor cores arrived with sm_70 (Volta), bf16 ones with sm_80
// (Ampere). Turing (sm_75: the RTX 2080 Ti of the cramming paper) therefore trains in fp16.
inline constexpr int min_compute_major = 7;
inline constexpr int min_bf16_compute_major = 8;

inline std::string sm_name(int major, int minor) { return "sm_" + std::to_string(major) + std::to_string(minor); }

// What the machine offers, without throwing: for --device auto and clear messages. usable means the backend can
// run there in some precision (sm_70 or newer, and this build has GPU code for it); major and minor tell the
// caller which (bf16 needs major >= 8: activation_type_problem).
struct device_probe {
    bool usable = false;
    int device = -1;
    int count = 0;
    std::string name;
    int major = 0, minor = 0;
    std::size_t free_bytes = 0, total_bytes = 0;
    std::string reason;  // why not usable
};

namespace detail {
// The smallest kernel there is: whether it loads tells whether this binary holds code the device can run.
template <int = 0>
__global__ void probe_kernel() {}
}  // namespace detail

inline device_probe probe_device(int device = 0) {
    device_probe p;
    p.device = device;
    const cudaError_t e = cudaGetDeviceCount(&p.count);
    if (e != cudaSuccess || p.count == 0) {
        cudaGetLastError();
        p.count = 0;
        p.reason = std::string("no CUDA device (") + (e != cudaSuccess ? cudaGetErrorString(e) : "0 devices") +
                   "): run with --device cpu, or check the driver with nvidia-smi";
        return p;
    }
    if (device < 0 || device >= p.count) {
        p.reason = "CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(p.count) +
                   " present)";
        return p;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
        cudaGetLastError();
        p.reason = "cudaGetDeviceProperties failed for device " + std::to_string(device);
        return p;
    }
    p.name = prop.name;
    p.major = prop.major;
    p.minor = prop.minor;
    if (prop.major < min_compute_major) {
        p.reason = "GPU " + p.name + " is " + sm_name(prop.major, prop.minor) +
                   "; cram's CUDA backend needs sm_70 or newer (fp16 tensor cores; bf16 from sm_80): use --device cpu";
        return p;
    }
    if (cudaSetDevice(device) == cudaSuccess) cudaMemGetInfo(&p.free_bytes, &p.total_bytes);
    cudaGetLastError();
    cudaFuncAttributes attributes{};
    if (cudaFuncGetAttributes(&attributes, detail::probe_kernel<>) != cudaSuccess) {
        cudaGetLastError();
        p.reason = "this build has no GPU code for " + p.name + " (" + sm_name(prop.major, prop.minor) +
                   "): rebuild with -DCMAKE_CUDA_ARCHITECTURES including " + std::to_string(prop.major) +
                   std::to_string(prop.minor) + " (docs/building.md; sm_70 needs a CUDA 12 toolkit), or use --device cpu";
        return p;
    }
    p.usable = true;
    return p;
}

// Why a usable device cannot compute with activations stored as Act (cram::bf16, cram::fp16), or "" when it can.
template <class Act>
std::string activation_type_problem(const device_probe& p) {
    static_assert(std::is_same_v<Act, cram::bf16> || std::is_same_v<Act, cram::fp16>,
                  "cram::cuda: activations are cram::bf16 or cram::fp16");
    if (std::is_same_v<Act, cram::bf16> && p.major < min_bf16_compute_major)
        return "GPU " + p.name + " is " + sm_name(p.major, p.minor) +
               ", which has no bf16 tensor cores (they need sm_80 or newer: A100, RTX 30xx, H100); train in fp16 "
               "instead (cram_bert_24h: --precision fp16, or auto, which picks it there; in code: cram::cuda::fp16_backend)";
    return {};
}

namespace detail {
// A GEMM's shape, types, layout and epilogue: everything a cuBLASLt plan depends on except pointers.
struct gemm_key {
    int op_a, op_b;
    std::int64_t m, n, k, lda, ldb, ldc;
    std::int64_t stride_a, stride_b, stride_c;
    int batch;
    int type_ab, type_c;
    int epilogue;
    int align_a, align_b, align_c, align_bias;
    bool beta_zero;
    auto tie() const {
        return std::tie(op_a, op_b, m, n, k, lda, ldb, ldc, stride_a, stride_b, stride_c, batch, type_ab, type_c,
                        epilogue, align_a, align_b, align_c, align_bias, beta_zero);
    }
    bool operator<(const gemm_key& o) const { return tie() < o.tie(); }
};

// How a plan's algorithm was chosen (gemm.hpp: time_candidates; gemm_report says it in words): timed, or the
// heuristic's first pick because that was asked for, the GEMM is batched, only one was offered, the timing's
// scratch output did not fit, or no candidate ran.
enum class gemm_choice_how { timed, asked, batched, one_offered, no_memory, none_ran };
struct gemm_plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
    bool has_algo = false;
    // How the algorithm was chosen: how many the heuristic offered, which one won (0: its first), its measured
    // time per call (0 when not timed), and why it was or was not timed.
    int candidates = 0, chosen = 0;
    double ms = 0;
    gemm_choice_how how = gemm_choice_how::asked;
    void destroy() noexcept {
        if (desc) cublasLtMatmulDescDestroy(desc);
        if (a) cublasLtMatrixLayoutDestroy(a);
        if (b) cublasLtMatrixLayoutDestroy(b);
        if (c) cublasLtMatrixLayoutDestroy(c);
        desc = nullptr;
        a = b = c = nullptr;
    }
};
}  // namespace detail

class context {
public:
    // Throws with a message that says what to do when there is no usable device.
    explicit context(int device = 0, std::size_t workspace_bytes = std::size_t(32) << 20) : device_(device) {
        const device_probe p = probe_device(device);
        if (!p.usable) CRAM_THROW(p.reason);
        CRAM_CUDA_CHECK(cudaSetDevice(device));
        CRAM_CUDA_CHECK(cudaGetDeviceProperties(&props_, device));
        CRAM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        CRAM_CUBLAS_CHECK(cublasLtCreate(&lt_));
        workspace_ = device_buffer<std::byte>(workspace_bytes);
        error_word_ = device_buffer<unsigned>(1);
        CRAM_CUDA_CHECK(cudaMemsetAsync(error_word_.data(), 0, sizeof(unsigned), stream_));
    }
    context(const context&) = delete;
    context& operator=(const context&) = delete;
    ~context() {
        for (auto& [k, plan] : plans_) plan.destroy();
        if (stream_) cudaStreamSynchronize(stream_);
        if (lt_) cublasLtDestroy(lt_);
        if (stream_) cudaStreamDestroy(stream_);
    }

    int device() const { return device_; }
    cudaStream_t stream() const { return stream_; }
    cublasLtHandle_t lt() const { return lt_; }
    const cudaDeviceProp& props() const { return props_; }
    int sm_count() const { return props_.multiProcessorCount; }
    void* workspace() { return workspace_.data(); }
    std::size_t workspace_size() const { return workspace_.size(); }
    unsigned* error_word() { return error_word_.data(); }
    // Free and total bytes of this device right now.
    std::pair<std::size_t, std::size_t> memory_info() const {
        std::size_t free_b = 0, total_b = 0;
        CRAM_CUDA_CHECK(cudaSetDevice(device_));
        CRAM_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
        return {free_b, total_b};
    }
    std::map<detail::gemm_key, detail::gemm_plan>& gemm_plans() { return plans_; }

    // Temporary device memory for one operation at a time (operations are ordered on the one stream, so
    // the next operation may reuse it). Growing synchronises once; steady-state steps never allocate.
    void* scratch(std::size_t bytes) {
        if (bytes > scratch_.size()) {
            CRAM_CUDA_CHECK(cudaStreamSynchronize(stream_));
            scratch_ = device_buffer<std::byte>();
            scratch_ = device_buffer<std::byte>((bytes + 255) / 256 * 256);
        }
        return scratch_.data();
    }
    std::size_t scratch_size() const { return scratch_.size(); }

    // Which attention kernels attention.hpp uses where both apply: the flash kernels (flash_attention.hpp;
    // head_dim 64, 16-bit activations, tensor cores) or the GEMM reference path. Flash by default; it has not
    // yet run on a GPU (docs/cuda.md), so the GEMM path stays one switch away (cram_bert_24h --attention gemm).
    attention_kernel attention = attention_kernel::flash;

    // Time the heuristic's candidate algorithms for each new single-matrix GEMM shape and keep the fastest
    // (gemm.hpp); heuristic: its first pick, as before. Not yet run on a GPU (docs/cuda.md).
    gemm_algorithms gemm_choice = gemm_algorithms::timed;

    // Which LayerNorm kernels layernorm.hpp uses where both apply: a warp per row (rows up to 1024 16-bit
    // elements, the parameter gradients summed per block without atomics) or the block-per-row kernels. Warp by
    // default; not yet run on a GPU (docs/cuda.md), so the block kernels stay one switch away
    // (cram_bert_24h --layernorm block).
    layernorm_kernel layernorm = layernorm_kernel::warp;

    // Which MLM decoder loss loss.hpp uses where both apply: fused (vocabularies up to 65536 when a multiple of
    // 8, 32768 when even, 16384 when odd) or chunked. Fused by default; not yet run on a GPU (docs/cuda.md), so
    // the chunked path stays one switch away (cram_bert_24h train --decoder chunked).
    decoder_kernel decoder = decoder_kernel::fused;
    // The fused decoder's most bytes of logits per chunk; 0: as many as memory allows (every masked row at the
    // planner's micro-batch). Tests set it to run the fused path over several chunks.
    std::size_t decoder_chunk_bytes = 0;

    // GPU time per backend op (phase_timer.hpp): off unless a profiler (bench_cuda_train) turns it on.
    phase_timer phases;

    // Waits for the stream, then reports any error a kernel recorded (bad ids, labels) or the runtime raised.
    void synchronize() {
        CRAM_CUDA_CHECK(cudaStreamSynchronize(stream_));
        CRAM_CUDA_CHECK(cudaGetLastError());
        unsigned word = 0;
        CRAM_CUDA_CHECK(cudaMemcpy(&word, error_word_.data(), sizeof word, cudaMemcpyDeviceToHost));
        if (word != 0) {
            CRAM_CUDA_CHECK(cudaMemset(error_word_.data(), 0, sizeof(unsigned)));
            CRAM_THROW("a CUDA kernel saw invalid input:", (word & error_token_id) ? " a token id outside the vocabulary;" : "",
                       (word & error_token_type) ? " a token type outside [0, token_types);" : "",
                       (word & error_label) ? " a label outside [0, classes);" : "",
                       " check the data (tokenizer vocabulary vs. model config)");
        }
    }

private:
    int device_ = 0;
    cudaDeviceProp props_{};
    cudaStream_t stream_ = nullptr;
    cublasLtHandle_t lt_ = nullptr;
    device_buffer<std::byte> workspace_, scratch_;
    device_buffer<unsigned> error_word_;
    std::map<detail::gemm_key, detail::gemm_plan> plans_;
};

}  // namespace cram::cuda
