// cram/cuda/embedding.hpp against the CPU oracle (cram/ops/embedding.hpp): scaled sinusoidal and learned
// positions with token types, forward and backward (fp32 atomics; the padding row frozen or not), the
// out-of-vocabulary report through the device error word, and the row gather/scatter (16-bit atomics: native
// for fp16, and for bf16 on sm_80+, a compare-and-swap loop below), for bf16 and fp16 storage. Skips visibly
// without a GPU.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace ops = cram::ops;
namespace cu = cram::cuda;

TEST_CASE_TEMPLATE("cuda embeddings: scaled sinusoidal and learned positions with token types, forward and backward", T,
                   bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    struct shape { index_t batch, seq, hidden, vocab, types; bool learned; };
    for (const auto s : {shape{8, 128, 768, 32768, 0, false}, shape{3, 11, 24, 50, 3, true}}) {
        INFO("batch " << s.batch << " seq " << s.seq << " hidden " << s.hidden << " learned " << s.learned);
        const index_t rows = s.batch * s.seq;
        std::vector<std::int32_t> ids(static_cast<std::size_t>(rows)), types(static_cast<std::size_t>(rows));
        cram::philox_stream rng(60, 0, 0);
        for (auto& i : ids) i = std::int32_t(rng.next_below(std::uint32_t(std::min<index_t>(s.vocab, 97))));  // repeats
        for (auto& t : types) t = s.types ? std::int32_t(rng.next_below(std::uint32_t(s.types))) : 0;
        const auto word = random_vec_as<T>(static_cast<std::size_t>(s.vocab * s.hidden), 61);
        const auto pos = random_vec_as<T>(static_cast<std::size_t>(s.seq * s.hidden), 62);
        const auto type_tab = random_vec_as<T>(static_cast<std::size_t>(std::max<index_t>(s.types, 1) * s.hidden), 63);
        const std::vector<float> scale{round_to<T>(0.036f)};
        const float* sc = s.learned ? nullptr : scale.data();
        const float* tt = s.types ? type_tab.data() : nullptr;
        const std::int32_t* ti = s.types ? types.data() : nullptr;
        std::vector<float> out(static_cast<std::size_t>(rows * s.hidden));
        ops::embedding_forward(out.data(), ids.data(), ti, word.data(), pos.data(), sc, tt, s.batch, s.seq, s.hidden,
                               s.vocab, s.types);
        const auto dout = random_vec_as<T>(out.size(), 64);
        std::vector<float> dword(word.size()), dpos(pos.size()), dscale(1), dtype(type_tab.size());
        // the ids include 0: the padding row (padding_idx) is frozen in one shape and learns in the other
        const std::int32_t pad = s.learned ? -1 : 0;
        ops::embedding_backward(dword.data(), s.learned ? dpos.data() : nullptr, s.learned ? nullptr : dscale.data(),
                                s.types ? dtype.data() : nullptr, dout.data(), ids.data(), ti, pos.data(), sc, s.batch,
                                s.seq, s.hidden, s.vocab, pad);
        if (pad == 0) CHECK(std::count(ids.begin(), ids.end(), 0) > 0);
        auto gids = upload(ctx, ids), gtypes = upload(ctx, types);
        auto gword = upload(ctx, to_storage<T>(word)), gpos = upload(ctx, to_storage<T>(pos)),
             gscale = upload(ctx, to_storage<T>(scale)), gtt = upload(ctx, to_storage<T>(type_tab)),
             gdout = upload(ctx, to_storage<T>(dout));
        auto gout = poisoned<T>(ctx, out.size());
        auto zeros = [&](std::size_t n) { return upload(ctx, std::vector<float>(n, 0.0f)); };
        auto gdword = zeros(dword.size()), gdpos = zeros(dpos.size()), gdscale = zeros(1), gdtype = zeros(dtype.size());
        B::embedding_forward(ctx, gout.data(), gids.data(), s.types ? gtypes.data() : nullptr, gword.data(),
                                       gpos.data(), s.learned ? nullptr : gscale.data(), s.types ? gtt.data() : nullptr,
                                       s.batch, s.seq, s.hidden, s.vocab, s.types);
        B::embedding_backward(ctx, gdword.data(), s.learned ? gdpos.data() : nullptr,
                                        s.learned ? nullptr : gdscale.data(), s.types ? gdtype.data() : nullptr,
                                        gdout.data(), gids.data(), s.types ? gtypes.data() : nullptr, gpos.data(),
                                        s.learned ? nullptr : gscale.data(), s.batch, s.seq, s.hidden, s.vocab, pad);
        B::synchronize(ctx);  // no device error may have been recorded
        check_close("embedding out", download_f(ctx, gout.data(), out.size()), out, 1e-2, 1e-2);
        check_close("embedding dword", download(ctx, gdword.data(), dword.size()), dword, 1e-3, 1e-3);
        if (s.learned)
            check_close("embedding dpositions", download(ctx, gdpos.data(), dpos.size()), dpos, 1e-3, 1e-3);
        else
            check_close("embedding dscale", download(ctx, gdscale.data(), 1), dscale, 1e-2, 1e-3);
        if (s.types) check_close("embedding dtype", download(ctx, gdtype.data(), dtype.size()), dtype, 1e-3, 1e-3);
    }
}

TEST_CASE("cuda embedding reports an out-of-vocabulary id at synchronize") {
    CRAM_REQUIRE_GPU();
    std::vector<std::int32_t> ids{1, 2, 99};
    auto gids = upload(ctx, ids);
    auto word = upload(ctx, to_bf16(random_vec(10 * 8, 1))), pos = upload(ctx, to_bf16(random_vec(3 * 8, 2)));
    auto out = poisoned<bf16>(ctx, 3 * 8);
    cu::backend::embedding_forward(ctx, out.data(), gids.data(), nullptr, word.data(), pos.data(), nullptr, nullptr, 1,
                                   3, 8, 10, 0);
    CHECK_THROWS_AS(cu::backend::synchronize(ctx), cram::error);
    cu::backend::synchronize(ctx);  // the error word was cleared
}

TEST_CASE_TEMPLATE("cuda gather_rows and scatter_add_rows (distinct and repeated rows)", T, bf16, fp16) {
    CRAM_REQUIRE_GPU();
    using B = gpu_backend<T>;
    const index_t rows = 64, cols = 768, n = 20;
    const auto src = random_vec_as<T>(static_cast<std::size_t>(rows * cols), 70),
               part = random_vec_as<T>(static_cast<std::size_t>(n * cols), 71);
    // distinct rows, then rows that repeat (several atomic adds to one element; neighbouring 16-bit elements
    // always share a 32-bit word, which the compare-and-swap path below sm_80 must not mix up)
    for (const bool repeats : {false, true}) {
        INFO("repeated rows " << repeats);
        std::vector<std::int32_t> idx(static_cast<std::size_t>(n));
        for (index_t i = 0; i < n; ++i)
            idx[static_cast<std::size_t>(i)] = std::int32_t(repeats ? (i * 7) % 3 : (i * 7) % rows);
        std::vector<float> gathered(static_cast<std::size_t>(n * cols)), scattered = src;
        ops::gather_rows(gathered.data(), src.data(), idx.data(), n, cols);
        ops::scatter_add_rows(scattered.data(), part.data(), idx.data(), n, cols);
        auto gsrc = upload(ctx, to_storage<T>(src)), gpart = upload(ctx, to_storage<T>(part));
        auto gidx = upload(ctx, idx);
        auto gg = poisoned<T>(ctx, gathered.size());
        B::gather_rows(ctx, gg.data(), gsrc.data(), gidx.data(), n, cols);
        B::scatter_add_rows(ctx, gsrc.data(), gpart.data(), gidx.data(), n, cols);
        check_close("gather_rows", download_f(ctx, gg.data(), gathered.size()), gathered, 0, 0);
        // repeated rows round after every add, in an order the atomics choose: a looser absolute tolerance
        check_close("scatter_add_rows", download_f(ctx, gsrc.data(), scattered.size()), scattered,
                    repeats ? 3e-2 : 1e-2, 1e-2);
    }
}

}  // namespace
