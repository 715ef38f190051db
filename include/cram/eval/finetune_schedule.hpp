// Fine-tuning schedule helpers that need no model: the learning-rate factor of the GLUE protocol (linear
// warm-up over the first 10% of the steps, then cosine decay to 0, as Hugging Face's
// get_cosine_schedule_with_warmup), the training subset, and batch iteration with a per-epoch shuffle
// that depends only on (seed, epoch) and is the same on every platform.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <string_view>
#include <vector>

#include "cram/core/error.hpp"

namespace cram::eval {

// Warm-up steps for `total` optimizer steps: ceil(fraction * total), as transformers'
// TrainingArguments.get_warmup_steps (the -1e-9 keeps 0.1 * 100 from rounding up to 11).
inline std::int64_t warmup_steps(std::int64_t total, double fraction = 0.1) {
    CRAM_CHECK(total >= 0 && fraction >= 0.0 && fraction <= 1.0, "warmup_steps: total ", total, " and fraction ",
               fraction, " (need total >= 0, fraction in [0, 1])");
    return static_cast<std::int64_t>(std::ceil(fraction * double(total) - 1e-9));
}

// The learning-rate factor of the update with 0-based index `step` of `total`: step / warmup during the
// warm-up (the first update has factor 0, as in Hugging Face), then 0.5 (1 + cos(pi (step - warmup) /
// (total - warmup))), reaching 0 at step == total. Steps past `total` stay at 0.
inline double warmup_cosine_factor(std::int64_t step, std::int64_t total, std::int64_t warmup) {
    if (step < warmup) return double(step) / double(std::max<std::int64_t>(1, warmup));
    const double progress =
        std::min(1.0, double(step - warmup) / double(std::max<std::int64_t>(1, total - warmup)));
    return std::max(0.0, 0.5 * (1.0 + std::cos(3.14159265358979323846 * progress)));
}

// The same with the protocol's 10% warm-up worked out from `total`.
inline double cosine_with_warmup(std::int64_t step, std::int64_t total, double warmup_fraction = 0.1) {
    return warmup_cosine_factor(step, total, warmup_steps(total, warmup_fraction));
}

namespace detail {
inline std::uint64_t splitmix64(std::uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}
// Fisher-Yates with a splitmix64 stream: the same order on every platform (std::shuffle's is not fixed).
inline void shuffle_indices(std::vector<std::size_t>& v, std::uint64_t seed) {
    std::uint64_t state = seed;
    for (std::size_t i = v.size(); i > 1; --i) {
        state = splitmix64(state);
        const std::size_t j = std::size_t(state % i);  // modulo bias < i / 2^64: irrelevant here
        std::swap(v[i - 1], v[j]);
    }
}
inline std::uint64_t name_key(std::string_view s) {  // FNV-1a: std::hash differs between libraries
    std::uint64_t h = 0xCBF29CE484222325ull;
    for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
    return h;
}
}  // namespace detail

// The training examples a run uses: all of [0, n), or (max_train > 0) a fixed subset of max_train of them,
// in ascending order, the same for every seed (so a seed median still measures fine-tuning variance).
inline std::vector<std::size_t> training_subset(std::size_t n, std::size_t max_train = 0) {
    std::vector<std::size_t> idx(n);
    std::iota(idx.begin(), idx.end(), std::size_t{0});
    if (max_train > 0 && max_train < n) {
        detail::shuffle_indices(idx, 0x5EEDF00Dull);
        idx.resize(max_train);
        std::sort(idx.begin(), idx.end());
    }
    return idx;
}

// Batches of `batch` example indices, reshuffled every epoch. Epoch e's order is a function of (seed, e)
// alone — not of the epochs visited before — so a run can be resumed or replayed at any epoch. The last
// batch of an epoch holds the remainder (batch size n mod batch when that is not 0), as a PyTorch
// DataLoader with drop_last=False.
//
//   epoch_batches b(training_subset(n), 16, seed);
//   for (int e = 0; e < epochs; ++e) {
//       b.shuffle(e);
//       for (std::int64_t i = 0; i < b.batches_per_epoch(); ++i) use(b.batch(i));  // a span of indices
//   }
class epoch_batches {
public:
    epoch_batches(std::vector<std::size_t> examples, int batch, std::uint64_t seed)
        : base_(std::move(examples)), order_(base_), batch_(batch), seed_(seed) {
        CRAM_CHECK(batch > 0, "epoch_batches: batch size must be positive, got ", batch);
        CRAM_CHECK(!base_.empty(), "epoch_batches: no examples to iterate over");
    }

    std::size_t examples() const { return base_.size(); }
    int batch_size() const { return batch_; }
    std::int64_t batches_per_epoch() const { return (std::int64_t(base_.size()) + batch_ - 1) / batch_; }

    // Puts the examples in epoch `epoch`'s order (any integer; the fine-tuning loop uses 0, 1, ...).
    const std::vector<std::size_t>& shuffle(std::int64_t epoch) {
        order_ = base_;
        detail::shuffle_indices(order_, detail::splitmix64(seed_ ^ detail::splitmix64(std::uint64_t(epoch) + 1)));
        return order_;
    }
    const std::vector<std::size_t>& order() const { return order_; }

    // Batch i of the current order: indices into the task's examples.
    std::span<const std::size_t> batch(std::int64_t i) const {
        CRAM_CHECK(i >= 0 && i < batches_per_epoch(), "epoch_batches: batch ", i, " outside [0, ",
                   batches_per_epoch(), ")");
        const std::size_t begin = std::size_t(i) * std::size_t(batch_);
        return {order_.data() + begin, std::min(std::size_t(batch_), order_.size() - begin)};
    }

private:
    std::vector<std::size_t> base_, order_;
    int batch_;
    std::uint64_t seed_;
};

}  // namespace cram::eval
