// A training step on the CPU backend allocates nothing once warm: the ops keep their scratch per thread, the
// pool's tasks fit std::function's inline storage. Counted with a replaced global operator new (this test
// binary's only replacement; it counts while a flag is up and otherwise behaves as the standard one).
// Covers crammed_tiny at the demo's micro-batch, with and without dropout (fine-tuning's attention path).
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "cram/cram.hpp"
#include "test_support.hpp"

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
}  // namespace

// GCC flags free() on memory from a replaced operator new as mismatched; here the pair is malloc/free.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
    if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

TEST_CASE("a warm CPU training step (forward, backward, norm, AdamW) allocates nothing") {
    constexpr auto C = cram::presets::crammed_tiny;
    using backend = cram::cpu::backend<float>;
    const int batch = 8, seq = 128;
    backend::context ctx;
    cram::train::training_state<backend> params(ctx, cram::cpu_bert<C>::layout());
    cram::cpu_bert<C> model(ctx, cram::bind_bert<C, backend>(params), batch, seq);
    params.init(1, cram::model_options{}.init_std, C.hidden, cram::model_options{}.pad_id);
    std::vector<std::int32_t> tokens(std::size_t(batch) * seq);
    cram::philox_stream rng(3, 0, 0);
    for (auto& t : tokens) t = 5 + std::int32_t(rng.next_below(C.vocab - 5));
    cram::masking_options mo;
    mo.vocab = C.vocab;
    const auto mb = cram::mask_batch(tokens.data(), batch, seq, mo, 1, 0);
    const cram::train::adamw_options o;
    // Without OpenBLAS, cram's own GEMM transposes B in a buffer each thread keeps and grows on first use;
    // inside attention's parts which thread first meets the largest shape is the scheduler's choice, so only
    // one thread makes "warm" deterministic there. With OpenBLAS every scratch is sized by the op's caller.
    if (!cram::ops::gemm_uses_blas) cram::set_cpu_threads(1);
    for (const float dropout : {0.0f, 0.1f}) {
        CAPTURE(dropout);
        cram::forward_options fo;
        fo.dropout = dropout;
        fo.attention_dropout = dropout;
        fo.seed = 7;
        for (long step = 1; step <= 3; ++step) {
            const long before = allocations.load();
            counting = step > 1;  // the first step sizes the scratch buffers
            params.zero_grads();
            model.mlm_forward_backward(mb.view(), fo);
            params.adamw_step(o, o.lr, step, cram::train::clip_scale(params.grad_norm(), o.clip_norm));
            counting = false;
            if (step > 1) CHECK(allocations.load() - before == 0);
        }
    }
    cram::set_cpu_threads(0);
    CHECK(std::isfinite(model.take_mlm_loss()));
}
