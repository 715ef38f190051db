// What a backend is, as a C++20 concept: the storage types, the context, the buffer it allocates, memory
// operations, and every op with its exact signature. cram::cpu::backend<T> and cram::cuda::backend are
// checked against it right after their definitions, so the two cannot drift apart silently.
//
// Signatures are spelled in the backend's own types: P = param_t (master parameters, their gradients,
// optimizer state and loss accumulators), A = act_t (activations and the weights the matmuls read),
// S = stat_t (LayerNorm statistics), R = res_t (the residual stream of pre-norm blocks and its gradient: act_t,
// or wider, as the CUDA backend's fp32 residual). Each op's contract (shapes, = versus +=) is in ops/<family>.hpp.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "cram/core/memory_space.hpp"
#include "cram/core/platform.hpp"
#include "cram/ops/adamw.hpp"
#include "cram/ops/masking.hpp"

namespace cram::ops {

// The function type of every op of a backend B. A member whose type differs in any parameter (a
// missing const, a float where the backend's param_t is double, a template) does not satisfy the concept.
template <class B>
struct backend_signatures {
    using ctx = typename B::context&;
    using P = typename B::param_t;
    using A = typename B::act_t;
    using S = typename B::stat_t;
    using R = typename B::res_t;
    using i32 = std::int32_t;

    // gemm.hpp
    using linear_forward = void(ctx, A* out, const A* in, const A* w, const A* bias, index_t rows, index_t in_f,
                                index_t out_f);
    // out = residual + linear(in) (out aliases neither), in the residual stream's type; backward is
    // linear_backward's (the add passes dout on)
    using linear_residual_forward = void(ctx, R* out, const A* in, const A* w, const A* bias, const R* residual,
                                         index_t rows, index_t in_f, index_t out_f);
    using linear_backward = void(ctx, A* din, P* dw, P* dbias, const A* dout, const A* in, const A* w, index_t rows,
                                 index_t in_f, index_t out_f);
    // elementwise.hpp (params_to_weights: the copy the matmuls read, from the master parameters)
    using add = void(ctx, A* out, const A* a, const A* b, index_t n);
    using add_inplace = void(ctx, A* acc, const A* x, index_t n);
    // the residual stream: out = residual + branch (out may alias residual); the conversion into it
    using add_residual = void(ctx, R* out, const R* residual, const A* branch, index_t n);
    using to_residual = void(ctx, R* out, const A* in, index_t n);
    // gradients: acc += x in the parameters' type (pairwise accumulation of micro-batches)
    using add_params = void(ctx, P* acc, const P* x, index_t n);
    using params_to_weights = void(ctx, A* weights, const P* params, index_t n);
    // activation.hpp
    using gelu_forward = void(ctx, A* out, const A* in, index_t n);
    using gelu_backward = void(ctx, A* din, const A* dout, const A* in, index_t n);
    using glu_forward = void(ctx, A* out, const A* in, index_t rows, index_t inner);
    using glu_backward = void(ctx, A* din, const A* dout, const A* in, index_t rows, index_t inner);
    using tanh_forward = void(ctx, A* out, const A* in, index_t n);
    using tanh_backward = void(ctx, A* din, const A* dout, const A* out, index_t n);
    // dropout.hpp
    using dropout_forward = void(ctx, A* out, const A* in, index_t n, float p, std::uint64_t seed,
                                 std::uint32_t stream);
    using dropout_backward = void(ctx, A* din, const A* dout, index_t n, float p, std::uint64_t seed,
                                  std::uint32_t stream);
    // layernorm.hpp
    using layernorm_forward = void(ctx, A* out, S* mean, S* rstd, const A* in, const A* w, const A* b, index_t rows,
                                   index_t cols, S eps);
    // sum = a + b, out = layernorm(sum): a residual add and the norm after it (sum aliases none of the others)
    using add_layernorm_forward = void(ctx, R* sum, A* out, S* mean, S* rstd, const R* a, const A* b, const A* w,
                                       const A* bias, index_t rows, index_t cols, S eps);
    using layernorm_backward = void(ctx, A* din, P* dw, P* db, const A* dout, const A* in, const S* mean,
                                    const S* rstd, const A* w, index_t rows, index_t cols);
    // the same norm of the residual stream: its input (and the input's gradient) in R, its output in A. The
    // backward also writes din, as accumulated, rounded to A into din_narrow unless it is null (what the next
    // branch's matmuls read when R is wider than A: no separate conversion pass)
    using residual_layernorm_forward = void(ctx, A* out, S* mean, S* rstd, const R* in, const A* w, const A* b,
                                            index_t rows, index_t cols, S eps);
    using residual_layernorm_backward = void(ctx, R* din, A* din_narrow, P* dw, P* db, const A* dout, const R* in,
                                             const S* mean, const S* rstd, const A* w, index_t rows, index_t cols);
    // attention.hpp
    // (dropout, seed, stream): dropout on the attention probabilities, 0 for none; backward takes the forward's.
    // probs (batch*heads*seq*seq elements) is the backend's to fill with what its backward needs (the
    // probabilities, or the CUDA flash path's log-sum-exp rows); backward also reads the forward's out.
    using attention_forward = void(ctx, A* out, A* probs, const A* qkv, const i32* lengths, index_t batch,
                                   index_t seq, index_t heads, index_t head_dim, float dropout, std::uint64_t seed,
                                   std::uint32_t stream);
    using attention_backward = void(ctx, A* dqkv, const A* dout, const A* qkv, const A* out, const A* probs,
                                    const i32* lengths, index_t batch, index_t seq, index_t heads, index_t head_dim,
                                    float dropout, std::uint64_t seed, std::uint32_t stream);
    // which implementation attention_forward/backward use for a shape, in words (for a run's log)
    using attention_kernels = std::string(const typename B::context&, index_t seq, index_t heads, index_t head_dim);
    // embedding.hpp
    using embedding_forward = void(ctx, A* out, const i32* ids, const i32* type_ids, const A* word,
                                   const A* positions, const A* pos_scale, const A* type_table, index_t batch,
                                   index_t seq, index_t hidden, index_t vocab, index_t types);
    // pad_id: the row of dword that gets no gradient (PyTorch's padding_idx), or -1 for none
    using embedding_backward = void(ctx, P* dword, P* dpositions, P* dpos_scale, P* dtype_table, const A* dout,
                                    const i32* ids, const i32* type_ids, const A* positions, const A* pos_scale,
                                    index_t batch, index_t seq, index_t hidden, index_t vocab, i32 pad_id);
    using gather_rows = void(ctx, A* out, const A* in, const i32* rows, index_t n, index_t cols);
    using scatter_add_rows = void(ctx, A* dst, const A* src, const i32* rows, index_t n, index_t cols);
    // loss.hpp (losses add their sum to *loss_sum, in backend memory: no host synchronisation per step)
    using cross_entropy = void(ctx, P* loss_sum, A* dlogits, const A* logits, const i32* labels, index_t n,
                               index_t classes, P dscale);
    using squared_error = void(ctx, P* loss_sum, A* dpred, const A* pred, const float* target, index_t n, P dscale);
    using decoder_cross_entropy = void(ctx, P* loss_sum, A* dhidden, P* dw, P* dbias, const A* hidden, const A* w,
                                       const A* bias, const i32* targets, index_t n, index_t h, index_t vocab,
                                       P dscale);
    // which implementation decoder_cross_entropy uses for a vocabulary, in words (for a run's log)
    using decoder_kernels = std::string(const typename B::context&, index_t vocab);
    using dense_labels = void(ctx, i32* labels, index_t rows, const i32* positions, const i32* targets, index_t n);
    // adamw.hpp (sum_squares returns a host double: the clip decision is made on the host)
    using adamw_step = void(ctx, P* params, const P* grads, P* m, P* v, index_t n, const adamw_hparams& hp,
                            P grad_scale);
    using sum_squares = double(ctx, const P* x, index_t n);
    using scale_inplace = void(ctx, P* x, P s, index_t n);
    // masking.hpp
    using mask_batch = void(ctx, const i32* tokens, int batch, int seq, const masking_options& opt,
                            std::uint64_t seed, std::uint64_t first_sequence, i32* ids, i32* positions,
                            i32* targets);
};

// A backend's buffer<U>: owns n elements from construction, moves, hands out typed pointers.
template <class Buf, class U>
concept backend_buffer = std::default_initializable<Buf> && std::movable<Buf> &&
                         std::constructible_from<Buf, std::size_t> && requires(Buf& b, const Buf& cb) {
                             { b.data() } -> std::same_as<U*>;
                             { cb.data() } -> std::same_as<const U*>;
                             { cb.size() } -> std::convertible_to<std::size_t>;
                         };

// Memory operations on elements of type U in backend memory (to_host/to_device cross to the host).
template <class B, class U>
concept backend_memory_for = requires(typename B::context& ctx, U* p, const U* cp, index_t n) {
    { B::zero(ctx, p, n) } -> std::same_as<void>;
    { B::copy(ctx, p, cp, n) } -> std::same_as<void>;
    { B::to_host(ctx, p, cp, n) } -> std::same_as<void>;
    { B::to_device(ctx, p, cp, n) } -> std::same_as<void>;
} && backend_buffer<typename B::template buffer<U>, U>;

template <class B>
concept backend_types = requires {
    typename B::param_t;
    typename B::act_t;
    typename B::stat_t;
    typename B::res_t;
    typename B::context;
    { B::name } -> std::convertible_to<const char*>;
    typename std::bool_constant<B::weights_alias_params>;  // a compile-time bool (the model branches on it)
} && std::is_class_v<typename B::context> && std::is_trivially_copyable_v<typename B::param_t> &&
                        std::is_trivially_copyable_v<typename B::act_t> &&
                        std::is_trivially_copyable_v<typename B::stat_t> &&
                        std::is_trivially_copyable_v<typename B::res_t>;

template <class B>
concept backend_memory = backend_memory_for<B, typename B::param_t> && backend_memory_for<B, typename B::act_t> &&
                         backend_memory_for<B, typename B::stat_t> && backend_memory_for<B, typename B::res_t> &&
                         backend_memory_for<B, std::int32_t> &&
                         backend_memory_for<B, float> && requires(typename B::context& ctx) {
                             { B::synchronize(ctx) } -> std::same_as<void>;
                         };

// One requirement per op: &B::op must convert to exactly the op's function pointer type S::op.
template <class B, class S>
concept backend_ops_with = requires {
    static_cast<typename S::linear_forward*>(&B::linear_forward);
    static_cast<typename S::linear_residual_forward*>(&B::linear_residual_forward);
    static_cast<typename S::linear_backward*>(&B::linear_backward);
    static_cast<typename S::add*>(&B::add);
    static_cast<typename S::add_inplace*>(&B::add_inplace);
    static_cast<typename S::add_residual*>(&B::add_residual);
    static_cast<typename S::to_residual*>(&B::to_residual);
    static_cast<typename S::add_params*>(&B::add_params);
    static_cast<typename S::params_to_weights*>(&B::params_to_weights);
    static_cast<typename S::gelu_forward*>(&B::gelu_forward);
    static_cast<typename S::gelu_backward*>(&B::gelu_backward);
    static_cast<typename S::glu_forward*>(&B::glu_forward);
    static_cast<typename S::glu_backward*>(&B::glu_backward);
    static_cast<typename S::tanh_forward*>(&B::tanh_forward);
    static_cast<typename S::tanh_backward*>(&B::tanh_backward);
    static_cast<typename S::dropout_forward*>(&B::dropout_forward);
    static_cast<typename S::dropout_backward*>(&B::dropout_backward);
    static_cast<typename S::layernorm_forward*>(&B::layernorm_forward);
    static_cast<typename S::add_layernorm_forward*>(&B::add_layernorm_forward);
    static_cast<typename S::layernorm_backward*>(&B::layernorm_backward);
    static_cast<typename S::residual_layernorm_forward*>(&B::residual_layernorm_forward);
    static_cast<typename S::residual_layernorm_backward*>(&B::residual_layernorm_backward);
    static_cast<typename S::attention_forward*>(&B::attention_forward);
    static_cast<typename S::attention_backward*>(&B::attention_backward);
    static_cast<typename S::attention_kernels*>(&B::attention_kernels);
    static_cast<typename S::embedding_forward*>(&B::embedding_forward);
    static_cast<typename S::embedding_backward*>(&B::embedding_backward);
    static_cast<typename S::gather_rows*>(&B::gather_rows);
    static_cast<typename S::scatter_add_rows*>(&B::scatter_add_rows);
    static_cast<typename S::cross_entropy*>(&B::cross_entropy);
    static_cast<typename S::squared_error*>(&B::squared_error);
    static_cast<typename S::decoder_cross_entropy*>(&B::decoder_cross_entropy);
    static_cast<typename S::decoder_kernels*>(&B::decoder_kernels);
    static_cast<typename S::dense_labels*>(&B::dense_labels);
    static_cast<typename S::adamw_step*>(&B::adamw_step);
    static_cast<typename S::sum_squares*>(&B::sum_squares);
    static_cast<typename S::scale_inplace*>(&B::scale_inplace);
    static_cast<typename S::mask_batch*>(&B::mask_batch);
};
template <class B>
concept backend_ops = backend_ops_with<B, backend_signatures<B>>;

// Where the backend's memory lives (batch views are typed by it, model/batch.hpp) and how host batches get
// there: a backend in host memory takes them as they are; any other stages them in its staging_buffer and
// sends them with one copy (model/batch_upload.hpp).
template <class B>
concept backend_memory_space =
    requires { typename B::memory_space; } &&
    (std::same_as<typename B::memory_space, host_memory> ||
     (backend_buffer<typename B::template buffer<std::byte>, std::byte> &&
      requires(typename B::staging_buffer& s, typename B::context& ctx, std::byte* device, std::size_t n) {
          { s.acquire(ctx, n) } -> std::same_as<std::byte*>;
          { s.send(ctx, device, n) } -> std::same_as<void>;
      }));

// What the micro-batch planner (model/memory_plan.hpp) asks of a backend: the memory its ops take beyond the
// model's own buffers, per sequence and fixed.
template <class B>
concept backend_scratch = requires(index_t seq, index_t hidden, index_t heads, index_t vocab, index_t decoder_rows) {
    { B::scratch_bytes_per_sequence(seq, hidden, heads, vocab, decoder_rows) } -> std::same_as<std::size_t>;
    { B::fixed_scratch_bytes(vocab) } -> std::same_as<std::size_t>;
};

// A backend: the types, the memory operations and space, every op, and its scratch needs.
template <class B>
concept backend = backend_types<B> && backend_memory<B> && backend_memory_space<B> && backend_ops<B> &&
                  backend_scratch<B>;

}  // namespace cram::ops
