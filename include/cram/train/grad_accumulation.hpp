// How the micro-batches of one optimizer step add up to its gradient.
//
// in_place: every micro-batch's backward adds into the same gradient buffer (no memory, no extra pass);
// the rounding then depends on how the kernels fold a new product into what is there.
//
// pairwise: every micro-batch's gradient is computed on its own (into zeroed buffers) and the step's
// gradient is one fixed binary tree over the micro-batches: [0, n) splits into [0, ceil(n/2)) and the
// rest, recursively. Because the tree depends on n alone, a block of micro-batches that is a node of it
// can be summed anywhere: N data-parallel ranks (N a power of two) each holding n/N consecutive
// micro-batches compute exactly the nodes of the lower levels, and the rank sum (dist/mpi.hpp's recursive
// halving and doubling) completes the same tree, so they reproduce one process's gradient bit for bit. It costs up to
// ceil(log2 n) gradient-sized buffers and one copy or add of the gradients per micro-batch; its rounding
// error also grows with log n instead of n.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/core/platform.hpp"
#include "cram/ops/backend.hpp"

namespace cram::train {

enum class grad_accumulation { in_place, pairwise };

inline grad_accumulation parse_grad_accumulation(std::string_view s) {
    if (s == "in-place") return grad_accumulation::in_place;
    if (s == "pairwise") return grad_accumulation::pairwise;
    CRAM_THROW("unknown gradient accumulation '", s, "': use in-place or pairwise");
}
inline const char* to_string(grad_accumulation g) { return g == grad_accumulation::pairwise ? "pairwise" : "in-place"; }

// The additions due after leaf k (0-based) of the pairwise tree over n leaves arrives: the number of
// tree nodes whose last leaf is k. Evaluating the tree left to right with a stack, leaf k is pushed and
// then this many times the top two are replaced by their sum.
inline int pairwise_merges_after(std::int64_t k, std::int64_t n) {
    CRAM_CHECK(k >= 0 && k < n, "internal: leaf ", k, " of a pairwise tree over ", n);
    int merges = 0;
    std::int64_t lo = 0, hi = n;
    while (hi - lo > 1) {
        if (hi - 1 == k) ++merges;
        const std::int64_t mid = lo + (hi - lo + 1) / 2;
        if (k < mid)
            hi = mid;
        else
            lo = mid;
    }
    return merges;
}

// The pairwise accumulation of one step over a backend's gradient buffer. The current micro-batch's
// gradient is always in `grads` (the buffer the model's backward writes); finished subtrees wait on a
// stack of buffers of the same size, allocated the first time the tree is that deep and kept.
template <ops::backend Backend>
class pairwise_accumulator {
public:
    using param_t = typename Backend::param_t;

    pairwise_accumulator(typename Backend::context& ctx, param_t* grads, std::size_t n)
        : ctx_(ctx), grads_(grads), n_(n) {}

    // Before the first micro-batch of a step of `leaves` micro-batches (grads zeroed by the caller).
    void begin(std::int64_t leaves) {
        CRAM_CHECK(leaves >= 1, "internal: a step of ", leaves, " micro-batches");
        leaves_ = leaves;
        next_ = 0;
        depth_ = 0;
    }
    // After micro-batch `next` has added its gradient to grads: the tree's additions, then (unless it was
    // the last) the partial sum set aside and grads zeroed for the next micro-batch.
    void after_micro_batch() {
        CRAM_CHECK(next_ < leaves_, "internal: more micro-batches than the step planned (", leaves_, ")");
        for (int m = pairwise_merges_after(next_, leaves_); m > 0; --m) {
            CRAM_CHECK(depth_ > 0, "internal: pairwise tree underflow");
            Backend::add_params(ctx_, grads_, slot(--depth_), index_t(n_));
        }
        if (++next_ < leaves_) {
            Backend::copy(ctx_, slot(depth_++), grads_, index_t(n_));
            Backend::zero(ctx_, grads_, index_t(n_));
        }
    }
    // A step cut short (the budget ended inside it): the subtrees set aside are added to grads, innermost
    // first, so grads holds the sum of the micro-batches that ran.
    void finish_early() {
        while (depth_ > 0) Backend::add_params(ctx_, grads_, slot(--depth_), index_t(n_));
    }
    std::size_t buffers() const { return stack_.size(); }  // gradient-sized buffers allocated so far

private:
    param_t* slot(int i) {
        while (int(stack_.size()) <= i) stack_.push_back(std::make_unique<typename Backend::template buffer<param_t>>(n_));
        return stack_[std::size_t(i)]->data();
    }

    typename Backend::context& ctx_;
    param_t* grads_;
    std::size_t n_;
    std::vector<std::unique_ptr<typename Backend::template buffer<param_t>>> stack_;
    std::int64_t leaves_ = 0, next_ = 0;
    int depth_ = 0;
};

}  // namespace cram::train
