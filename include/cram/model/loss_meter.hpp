// A running loss in backend memory: loss kernels add their sums to a device scalar without a host
// synchronisation per micro-step; take() reads the mean per counted item when the caller logs.
#pragma once

#include <cstdint>

#include "cram/core/platform.hpp"

namespace cram {

template <class Backend>
class loss_meter {
public:
    using param_t = typename Backend::param_t;

    explicit loss_meter(typename Backend::context& ctx) : sum_(1) { Backend::zero(ctx, sum_.data(), 1); }

    param_t* sum() { return sum_.data(); }  // where the loss ops accumulate
    void count(std::int64_t items) { count_ += items; }

    // Mean per item since the last take, then reset (synchronises a device backend).
    double take(typename Backend::context& ctx) {
        const loss_total t = take_total(ctx);
        return t.count > 0 ? t.sum / t.count : 0.0;
    }
    // The sum and the item count since the last take, then reset: what data-parallel ranks add up.
    struct loss_total {
        double sum = 0, count = 0;
    };
    loss_total take_total(typename Backend::context& ctx) {
        param_t s{};
        Backend::to_host(ctx, &s, sum_.data(), 1);
        Backend::zero(ctx, sum_.data(), 1);
        const loss_total t{static_cast<double>(s), static_cast<double>(count_)};
        count_ = 0;
        return t;
    }

private:
    typename Backend::template buffer<param_t> sum_;
    std::int64_t count_ = 0;
};

}  // namespace cram
