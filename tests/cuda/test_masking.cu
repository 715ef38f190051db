// cram/cuda/masking.hpp against the host: masking on the device equals cram::mask_batch (the CPU op
// ops::mask_batch) bit for bit. Skips visibly without a GPU.
#include <cstdint>
#include <vector>

#include "cram/model/batch.hpp"
#include "cram/model/masking.hpp"
#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE("cuda masking on the device equals cram::mask_batch on the host, bit for bit") {
    CRAM_REQUIRE_GPU();
    for (const int seq : {128, 37}) {
        const int batch = 67;
        std::vector<std::int32_t> tokens(static_cast<std::size_t>(batch) * seq);
        cram::philox_stream rng(110, 0, 0);
        for (auto& t : tokens) t = 5 + std::int32_t(rng.next_below(32768 - 5));
        cram::masking_options opt;
        const auto ref = cram::mask_batch(tokens.data(), batch, seq, opt, 1234, 1000000007ull);
        cu::device_mlm_batch db(batch, seq);
        db.mask(ctx, tokens.data(), batch, opt, 1234, 1000000007ull);
        const auto view = cram::mlm_view(db);
        REQUIRE(view.num_masked == int(ref.masked_positions.size()));
        const auto ids = download(ctx, view.ids, ref.ids.size());
        const auto pos = download(ctx, view.masked_positions, ref.masked_positions.size());
        const auto tgt = download(ctx, view.masked_targets, ref.masked_targets.size());
        CHECK(ids == ref.ids);
        CHECK(pos == ref.masked_positions);
        CHECK(tgt == ref.masked_targets);
    }
}

}  // namespace
