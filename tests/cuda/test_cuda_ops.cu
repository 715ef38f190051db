// Every CUDA operation against the CPU oracle (cram::cpu, fp32) on bf16-representable random inputs, at
// crammed-BERT sizes and at odd sizes; outputs are poisoned with NaN before each run and the worst element
// is reported. Skips visibly without a GPU.
#include <cstdint>
#include <vector>

#include "cuda_test_support.hpp"

namespace {

using namespace cram::cuda_test;
namespace cpu = cram::cpu;
namespace cu = cram::cuda;

struct gemm_case {
    bool ta, tb;
    index_t m, n, k;
};

template <class Out>
void run_gemm(cu::context& ctx, const gemm_case& g, float beta) {
    const index_t lda = g.ta ? g.m : g.k, ldb = g.tb ? g.k : g.n;
    const auto a = random_vec(static_cast<std::size_t>(g.m * g.k), 1), b = random_vec(static_cast<std::size_t>(g.k * g.n), 2);
    auto c0 = random_vec(static_cast<std::size_t>(g.m * g.n), 3);
    auto da = upload(ctx, to_bf16(a)), db = upload(ctx, to_bf16(b));
    std::vector<float> ref = c0;
    cpu::gemm<float>(g.ta, g.tb, g.m, g.n, g.k, 1.0f, a.data(), lda, b.data(), ldb, beta, ref.data(), g.n);
    device_buffer<Out> dc(static_cast<std::size_t>(g.m * g.n));
    if (beta == 0.0f) {
        poison(ctx, dc.data(), dc.size());
    } else {
        if constexpr (std::is_same_v<Out, float>)
            dc = upload(ctx, c0);
        else
            dc = upload(ctx, to_bf16(c0));
    }
    cu::gemm<bf16, Out>(ctx, g.ta, g.tb, g.m, g.n, g.k, 1.0f, da.data(), lda, db.data(), ldb, beta, dc.data(), g.n);
    const double rtol = std::is_same_v<Out, float> ? 2e-3 : 1e-2;
    INFO("gemm ta=" << g.ta << " tb=" << g.tb << " m=" << g.m << " n=" << g.n << " k=" << g.k << " beta=" << beta);
    check_close("gemm", download_f(ctx, dc.data(), dc.size()), ref, 2e-2 * std::sqrt(double(g.k)) / 8, rtol);
}

TEST_CASE("cuda gemm: all transposes, bf16 and fp32 outputs, beta 0 and 1, aligned and odd sizes") {
    CRAM_REQUIRE_GPU();
    for (bool ta : {false, true})
        for (bool tb : {false, true})
            for (const auto& s : {gemm_case{ta, tb, 256, 768, 768}, gemm_case{ta, tb, 37, 29, 19}}) {
                run_gemm<float>(ctx, s, 0.0f);
                run_gemm<float>(ctx, s, 1.0f);
                run_gemm<bf16>(ctx, s, 0.0f);
            }
}

TEST_CASE("cuda linear forward (bias epilogue) and backward (din, fp32 dw/dbias accumulate)") {
    CRAM_REQUIRE_GPU();
    struct shape { index_t rows, in_f, out_f; };
    for (const auto s : {shape{512, 768, 2304}, shape{33, 24, 40}}) {
        INFO("rows " << s.rows << " in " << s.in_f << " out " << s.out_f);
        const auto x = random_vec(static_cast<std::size_t>(s.rows * s.in_f), 10), w = random_vec(static_cast<std::size_t>(s.out_f * s.in_f), 11, 0.1f);
        const auto bias = random_vec(static_cast<std::size_t>(s.out_f), 12), dy = random_vec(static_cast<std::size_t>(s.rows * s.out_f), 13);
        const auto dw0 = random_vec(w.size(), 14), db0 = random_vec(bias.size(), 15);
        std::vector<float> y(static_cast<std::size_t>(s.rows * s.out_f)), dx(x.size()), dw = dw0, db = db0;
        cpu::linear_forward(y.data(), x.data(), w.data(), bias.data(), s.rows, s.in_f, s.out_f);
        cpu::linear_backward(dx.data(), dw.data(), db.data(), dy.data(), x.data(), w.data(), s.rows, s.in_f, s.out_f);
        auto dx_ = upload(ctx, to_bf16(x)), dw_ = upload(ctx, to_bf16(w)), dbias = upload(ctx, to_bf16(bias)),
             ddy = upload(ctx, to_bf16(dy));
        auto gy = poisoned<bf16>(ctx, y.size()), gdx = poisoned<bf16>(ctx, x.size());
        auto gdw = upload(ctx, dw0), gdb = upload(ctx, db0);
        cu::backend::linear_forward(ctx, gy.data(), dx_.data(), dw_.data(), dbias.data(), s.rows, s.in_f, s.out_f);
        cu::backend::linear_backward(ctx, gdx.data(), gdw.data(), gdb.data(), ddy.data(), dx_.data(), dw_.data(), s.rows,
                                     s.in_f, s.out_f);
        check_close("linear y", download_f(ctx, gy.data(), y.size()), y, 2e-2, 1e-2);
        check_close("linear dx", download_f(ctx, gdx.data(), dx.size()), dx, 2e-2, 1e-2);
        check_close("linear dw", download_f(ctx, gdw.data(), dw.size()), dw, 1e-2, 2e-3);
        check_close("linear dbias", download_f(ctx, gdb.data(), db.size()), db, 1e-2, 2e-3);
    }
}

TEST_CASE("cuda layernorm forward and backward (fp32 statistics, vector and scalar paths)") {
    CRAM_REQUIRE_GPU();
    struct shape { index_t rows, cols; };
    for (const auto s : {shape{1024, 768}, shape{7, 37}, shape{5, 1000}}) {
        INFO("rows " << s.rows << " cols " << s.cols);
        const std::size_t n = static_cast<std::size_t>(s.rows * s.cols);
        auto x = random_vec(n, 20, 3.0f);
        for (std::size_t i = 0; i < n; ++i) x[i] = cram::round_to_bf16(x[i] + 0.5f);  // a non-zero mean
        const auto w = random_vec(static_cast<std::size_t>(s.cols), 21), b = random_vec(static_cast<std::size_t>(s.cols), 22);
        const auto dy = random_vec(n, 23), din0 = random_vec(n, 24);
        std::vector<float> y(n), mean(static_cast<std::size_t>(s.rows)), rstd(mean.size()), din = din0, dw(w.size()), db(b.size());
        cpu::layernorm_forward(y.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), s.rows, s.cols, 1e-12f);
        cpu::layernorm_backward(din.data(), dw.data(), db.data(), dy.data(), x.data(), mean.data(), rstd.data(),
                                w.data(), s.rows, s.cols);
        auto gx = upload(ctx, to_bf16(x)), gw = upload(ctx, to_bf16(w)), gb = upload(ctx, to_bf16(b)),
             gdy = upload(ctx, to_bf16(dy)), gdin = upload(ctx, to_bf16(din0));
        auto gy = poisoned<bf16>(ctx, n);
        auto gmean = poisoned<float>(ctx, mean.size()), grstd = poisoned<float>(ctx, mean.size());
        auto gdw = upload(ctx, std::vector<float>(w.size(), 0.0f)), gdb = upload(ctx, std::vector<float>(b.size(), 0.0f));
        cu::backend::layernorm_forward(ctx, gy.data(), gmean.data(), grstd.data(), gx.data(), gw.data(), gb.data(),
                                       s.rows, s.cols, 1e-12f);
        cu::backend::layernorm_backward(ctx, gdin.data(), gdw.data(), gdb.data(), gdy.data(), gx.data(), gmean.data(),
                                        grstd.data(), gw.data(), s.rows, s.cols);
        check_close("layernorm y", download_f(ctx, gy.data(), n), y, 1e-2, 1e-2);
        check_close("layernorm mean", download_f(ctx, gmean.data(), mean.size()), mean, 1e-5, 1e-4);
        check_close("layernorm rstd", download_f(ctx, grstd.data(), rstd.size()), rstd, 1e-5, 1e-4);
        check_close("layernorm din", download_f(ctx, gdin.data(), n), din, 2e-2, 1e-2);
        check_close("layernorm dw", download_f(ctx, gdw.data(), dw.size()), dw, 1e-2, 1e-3);
        check_close("layernorm db", download_f(ctx, gdb.data(), db.size()), db, 1e-2, 1e-3);
    }
}

TEST_CASE("cuda elementwise: add, GELU, GELU-GLU, tanh forward and backward") {
    CRAM_REQUIRE_GPU();
    for (const index_t rows : {index_t(256), index_t(3)}) {
        const index_t inner = rows == 3 ? 13 : 1536;
        INFO("rows " << rows << " inner " << inner);
        const std::size_t n = static_cast<std::size_t>(rows * 2 * inner), m = static_cast<std::size_t>(rows * inner);
        const auto in = random_vec(n, 30, 3.0f), dout = random_vec(m, 31), other = random_vec(n, 32);
        std::vector<float> glu(m), dglu(n), ge(n), dge(n), th(n), dth(n), sum(n);
        cpu::glu_forward(glu.data(), in.data(), rows, inner);
        cpu::glu_backward(dglu.data(), dout.data(), in.data(), rows, inner);
        cpu::gelu_forward(ge.data(), in.data(), index_t(n));
        cpu::gelu_backward(dge.data(), other.data(), in.data(), index_t(n));
        cpu::tanh_forward(th.data(), in.data(), index_t(n));
        cpu::add(sum.data(), in.data(), other.data(), index_t(n));
        std::vector<float> th_b(n);
        for (std::size_t i = 0; i < n; ++i) th_b[i] = cram::round_to_bf16(th[i]);  // backward reads the stored output
        cpu::tanh_backward(dth.data(), other.data(), th_b.data(), index_t(n));
        auto gin = upload(ctx, to_bf16(in)), gdo = upload(ctx, to_bf16(dout)), got = upload(ctx, to_bf16(other));
        auto gth_in = upload(ctx, to_bf16(th_b));
        auto g1 = poisoned<bf16>(ctx, m), g2 = poisoned<bf16>(ctx, n), g3 = poisoned<bf16>(ctx, n),
             g4 = poisoned<bf16>(ctx, n), g5 = poisoned<bf16>(ctx, n), g6 = poisoned<bf16>(ctx, n),
             g7 = poisoned<bf16>(ctx, n);
        cu::backend::glu_forward(ctx, g1.data(), gin.data(), rows, inner);
        cu::backend::glu_backward(ctx, g2.data(), gdo.data(), gin.data(), rows, inner);
        cu::backend::gelu_forward(ctx, g3.data(), gin.data(), index_t(n));
        cu::backend::gelu_backward(ctx, g4.data(), got.data(), gin.data(), index_t(n));
        cu::backend::tanh_forward(ctx, g5.data(), gin.data(), index_t(n));
        cu::backend::tanh_backward(ctx, g6.data(), got.data(), gth_in.data(), index_t(n));
        cu::backend::add(ctx, g7.data(), gin.data(), got.data(), index_t(n));
        check_close("glu", download_f(ctx, g1.data(), m), glu, 1e-2, 1e-2);
        check_close("glu backward", download_f(ctx, g2.data(), n), dglu, 1e-2, 1e-2);
        check_close("gelu", download_f(ctx, g3.data(), n), ge, 1e-2, 1e-2);
        check_close("gelu backward", download_f(ctx, g4.data(), n), dge, 1e-2, 1e-2);
        check_close("tanh", download_f(ctx, g5.data(), n), th, 1e-2, 1e-2);
        check_close("tanh backward", download_f(ctx, g6.data(), n), dth, 1e-2, 1e-2);
        check_close("add", download_f(ctx, g7.data(), n), sum, 1e-2, 1e-2);
        // add_inplace accumulates
        cu::backend::add_inplace(ctx, got.data(), gin.data(), index_t(n));
        check_close("add_inplace", download_f(ctx, got.data(), n), sum, 1e-2, 1e-2);
    }
}

TEST_CASE("cuda dropout drops exactly the CPU's elements (same Philox addressing)") {
    CRAM_REQUIRE_GPU();
    for (const index_t n : {index_t(1) << 20, index_t(1001)}) {
        const auto in = random_vec(static_cast<std::size_t>(n), 40);
        std::vector<float> ref(static_cast<std::size_t>(n));
        cpu::dropout_forward(ref.data(), in.data(), n, 0.1f, 0x5EEDull << 33 | 7u, 5u);
        auto gin = upload(ctx, to_bf16(in));
        auto gout = poisoned<bf16>(ctx, static_cast<std::size_t>(n));
        cu::backend::dropout_forward(ctx, gout.data(), gin.data(), n, 0.1f, 0x5EEDull << 33 | 7u, 5u);
        const auto got = download_f(ctx, gout.data(), static_cast<std::size_t>(n));
        std::size_t mismatched = 0, dropped = 0;
        for (index_t i = 0; i < n; ++i) {
            mismatched += (got[static_cast<std::size_t>(i)] == 0.0f) != (ref[static_cast<std::size_t>(i)] == 0.0f) && in[static_cast<std::size_t>(i)] != 0.0f;
            dropped += ref[static_cast<std::size_t>(i)] == 0.0f;
        }
        INFO("n " << n << ": " << mismatched << " mask mismatches, " << dropped << " dropped");
        CHECK(mismatched == 0);
        CHECK(dropped > 0);
        check_close("dropout", got, ref, 1e-2, 1e-2);
    }
}

TEST_CASE("cuda attention forward and backward (crammed shape; odd shapes with key lengths; GEMM and fused paths)") {
    CRAM_REQUIRE_GPU();
    struct shape { index_t batch, seq, heads, hd; bool lengths; };
    struct restore_flag {
        cu::context& c;
        ~restore_flag() { c.fused_attention = false; }
    } restore{ctx};
    for (const bool fused : {false, true})
    for (const auto s : {shape{4, 128, 12, 64, false}, shape{3, 37, 3, 16, true}, shape{3, 37, 2, 64, true}}) {
        ctx.fused_attention = fused;
        INFO("batch " << s.batch << " seq " << s.seq << " heads " << s.heads << " head_dim " << s.hd << " fused "
                      << fused);
        const index_t h = s.heads * s.hd, rows = s.batch * s.seq;
        const auto qkv = random_vec(static_cast<std::size_t>(rows * 3 * h), 50, 1.5f), dout = random_vec(static_cast<std::size_t>(rows * h), 51);
        std::vector<std::int32_t> len;
        if (s.lengths) len = {37, 20, 1};
        const std::int32_t* lp = s.lengths ? len.data() : nullptr;
        std::vector<float> out(static_cast<std::size_t>(rows * h)), probs(static_cast<std::size_t>(s.batch * s.heads * s.seq * s.seq)),
            dqkv(qkv.size());
        cpu::attention_forward(out.data(), probs.data(), qkv.data(), lp, s.batch, s.seq, s.heads, s.hd);
        auto gqkv = upload(ctx, to_bf16(qkv)), gdout = upload(ctx, to_bf16(dout));
        device_buffer<std::int32_t> glen;
        if (s.lengths) glen = upload(ctx, len);
        auto gout = poisoned<bf16>(ctx, out.size()), gprobs = poisoned<bf16>(ctx, probs.size()),
             gdqkv = poisoned<bf16>(ctx, dqkv.size());
        cu::backend::attention_forward(ctx, gout.data(), gprobs.data(), gqkv.data(), glen.data(), s.batch, s.seq,
                                       s.heads, s.hd);
        const auto got_probs = download_f(ctx, gprobs.data(), probs.size());
        // backward against the CPU fed with the GPU's (bf16) probabilities, as the GPU itself is
        cpu::attention_backward(dqkv.data(), dout.data(), qkv.data(), got_probs.data(), lp, s.batch, s.seq, s.heads,
                                s.hd);
        cu::backend::attention_backward(ctx, gdqkv.data(), gdout.data(), gqkv.data(), gprobs.data(), glen.data(),
                                        s.batch, s.seq, s.heads, s.hd);
        check_close("attention probs", got_probs, probs, 2e-3, 1e-2);
        check_close("attention out", download_f(ctx, gout.data(), out.size()), out, 1e-2, 1e-2);
        // q, k and v parts separately, each against its own scale (dQ and dK are ~100x smaller than dV)
        const auto got_d = download_f(ctx, gdqkv.data(), dqkv.size());
        const char* names[3] = {"attention dq", "attention dk", "attention dv"};
        for (int part = 0; part < 3; ++part) {
            std::vector<float> g, r;
            for (index_t row = 0; row < rows; ++row)
                for (index_t c = 0; c < h; ++c) {
                    const auto i = static_cast<std::size_t>(row * 3 * h + part * h + c);
                    g.push_back(got_d[i]);
                    r.push_back(dqkv[i]);
                }
            check_close_scaled(names[part], g, r, 2e-2, 2e-2);
        }
    }
}

TEST_CASE("cuda embeddings: scaled sinusoidal and learned positions with token types, forward and backward") {
    CRAM_REQUIRE_GPU();
    struct shape { index_t batch, seq, hidden, vocab, types; bool learned; };
    for (const auto s : {shape{8, 128, 768, 32768, 0, false}, shape{3, 11, 24, 50, 3, true}}) {
        INFO("batch " << s.batch << " seq " << s.seq << " hidden " << s.hidden << " learned " << s.learned);
        const index_t rows = s.batch * s.seq;
        std::vector<std::int32_t> ids(static_cast<std::size_t>(rows)), types(static_cast<std::size_t>(rows));
        cram::philox_stream rng(60, 0, 0);
        for (auto& i : ids) i = std::int32_t(rng.next_below(std::uint32_t(std::min<index_t>(s.vocab, 97))));  // repeats
        for (auto& t : types) t = s.types ? std::int32_t(rng.next_below(std::uint32_t(s.types))) : 0;
        const auto word = random_vec(static_cast<std::size_t>(s.vocab * s.hidden), 61);
        const auto pos = random_vec(static_cast<std::size_t>(s.seq * s.hidden), 62);
        const auto type_tab = random_vec(static_cast<std::size_t>(std::max<index_t>(s.types, 1) * s.hidden), 63);
        const std::vector<float> scale{cram::round_to_bf16(0.036f)};
        const float* sc = s.learned ? nullptr : scale.data();
        const float* tt = s.types ? type_tab.data() : nullptr;
        const std::int32_t* ti = s.types ? types.data() : nullptr;
        std::vector<float> out(static_cast<std::size_t>(rows * s.hidden));
        cpu::embedding_forward(out.data(), ids.data(), ti, word.data(), pos.data(), sc, tt, s.batch, s.seq, s.hidden,
                               s.vocab, s.types);
        const auto dout = random_vec(out.size(), 64);
        std::vector<float> dword(word.size()), dpos(pos.size()), dscale(1), dtype(type_tab.size());
        cpu::embedding_backward(dword.data(), s.learned ? dpos.data() : nullptr, s.learned ? nullptr : dscale.data(),
                                s.types ? dtype.data() : nullptr, dout.data(), ids.data(), ti, pos.data(), sc, s.batch,
                                s.seq, s.hidden);
        auto gids = upload(ctx, ids), gtypes = upload(ctx, types);
        auto gword = upload(ctx, to_bf16(word)), gpos = upload(ctx, to_bf16(pos)), gscale = upload(ctx, to_bf16(scale)),
             gtt = upload(ctx, to_bf16(type_tab)), gdout = upload(ctx, to_bf16(dout));
        auto gout = poisoned<bf16>(ctx, out.size());
        auto zeros = [&](std::size_t n) { return upload(ctx, std::vector<float>(n, 0.0f)); };
        auto gdword = zeros(dword.size()), gdpos = zeros(dpos.size()), gdscale = zeros(1), gdtype = zeros(dtype.size());
        cu::backend::embedding_forward(ctx, gout.data(), gids.data(), s.types ? gtypes.data() : nullptr, gword.data(),
                                       gpos.data(), s.learned ? nullptr : gscale.data(), s.types ? gtt.data() : nullptr,
                                       s.batch, s.seq, s.hidden, s.vocab, s.types);
        cu::backend::embedding_backward(ctx, gdword.data(), s.learned ? gdpos.data() : nullptr,
                                        s.learned ? nullptr : gdscale.data(), s.types ? gdtype.data() : nullptr,
                                        gdout.data(), gids.data(), s.types ? gtypes.data() : nullptr, gpos.data(),
                                        s.learned ? nullptr : gscale.data(), s.batch, s.seq, s.hidden);
        cu::backend::synchronize(ctx);  // no device error may have been recorded
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

TEST_CASE("cuda gather_rows and scatter_add_rows") {
    CRAM_REQUIRE_GPU();
    const index_t rows = 64, cols = 768, n = 20;
    const auto src = random_vec(static_cast<std::size_t>(rows * cols), 70), part = random_vec(static_cast<std::size_t>(n * cols), 71);
    std::vector<std::int32_t> idx(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = std::int32_t((i * 7) % rows);
    std::vector<float> gathered(static_cast<std::size_t>(n * cols)), scattered = src;
    cpu::gather_rows(gathered.data(), src.data(), idx.data(), n, cols);
    cpu::scatter_add_rows(scattered.data(), part.data(), idx.data(), n, cols);
    auto gsrc = upload(ctx, to_bf16(src)), gpart = upload(ctx, to_bf16(part));
    auto gidx = upload(ctx, idx);
    auto gg = poisoned<bf16>(ctx, gathered.size());
    cu::backend::gather_rows(ctx, gg.data(), gsrc.data(), gidx.data(), n, cols);
    cu::backend::scatter_add_rows(ctx, gsrc.data(), gpart.data(), gidx.data(), n, cols);
    check_close("gather_rows", download_f(ctx, gg.data(), gathered.size()), gathered, 0, 0);
    check_close("scatter_add_rows", download_f(ctx, gsrc.data(), scattered.size()), scattered, 1e-2, 1e-2);
}

TEST_CASE("cuda losses: cross-entropy with ignored rows, squared error, fused sparse decoder") {
    CRAM_REQUIRE_GPU();
    {  // classifier cross-entropy
        const index_t n = 37, classes = 3;
        const auto logits = random_vec(static_cast<std::size_t>(n * classes), 80, 4.0f);
        std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
        for (index_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = i % 5 == 4 ? cpu::ignore_label : std::int32_t(i % 3);
        std::vector<float> dl(logits.size());
        const double loss = cpu::cross_entropy(dl.data(), logits.data(), labels.data(), n, classes, 0.25f);
        auto gl = upload(ctx, to_bf16(logits));
        auto glab = upload(ctx, labels);
        auto gdl = poisoned<bf16>(ctx, dl.size());
        auto gloss = upload(ctx, std::vector<float>{1.5f});  // accumulates
        cu::backend::cross_entropy(ctx, gloss.data(), gdl.data(), gl.data(), glab.data(), n, classes, 0.25f);
        check_close("cross_entropy loss", download(ctx, gloss.data(), 1), {float(loss + 1.5)}, 1e-3, 1e-4);
        check_close("cross_entropy dlogits", download_f(ctx, gdl.data(), dl.size()), dl, 1e-3, 1e-2);
    }
    {  // regression
        const index_t n = 16;
        const auto pred = random_vec(static_cast<std::size_t>(n), 81, 3.0f), target = random_vec(static_cast<std::size_t>(n), 82, 3.0f);
        std::vector<float> dp(pred.size());
        const double loss = cpu::squared_error(dp.data(), pred.data(), target.data(), n, 0.5f);
        auto gp = upload(ctx, to_bf16(pred));
        auto gt = upload(ctx, target);
        auto gdp = poisoned<bf16>(ctx, dp.size());
        auto gloss = upload(ctx, std::vector<float>{0.0f});
        cu::backend::squared_error(ctx, gloss.data(), gdp.data(), gp.data(), gt.data(), n, 0.5f);
        check_close("squared_error loss", download(ctx, gloss.data(), 1), {float(loss)}, 1e-4, 1e-4);
        check_close("squared_error dpred", download_f(ctx, gdp.data(), dp.size()), dp, 1e-3, 1e-2);
    }
    struct shape { index_t n, h, vocab; bool bias; };
    for (const auto s : {shape{1536, 768, 32768, false}, shape{37, 24, 1001, true}}) {
        INFO("decoder n " << s.n << " h " << s.h << " vocab " << s.vocab);
        const auto hid = random_vec(static_cast<std::size_t>(s.n * s.h), 90), w = random_vec(static_cast<std::size_t>(s.vocab * s.h), 91, 0.1f);
        const auto bias = random_vec(static_cast<std::size_t>(s.vocab), 92);
        std::vector<std::int32_t> targets(static_cast<std::size_t>(s.n));
        cram::philox_stream rng(93, 0, 0);
        for (auto& t : targets) t = std::int32_t(rng.next_below(std::uint32_t(s.vocab)));
        targets[3] = cpu::ignore_label;
        const float dscale = 1.0f / float(s.n);
        std::vector<float> dh(hid.size()), dw(w.size(), 0.0f), db(bias.size(), 0.0f);
        const double loss = cpu::decoder_cross_entropy(dh.data(), dw.data(), s.bias ? db.data() : nullptr, hid.data(),
                                                       w.data(), s.bias ? bias.data() : nullptr, targets.data(), s.n,
                                                       s.h, s.vocab, dscale);
        auto ghid = upload(ctx, to_bf16(hid)), gw = upload(ctx, to_bf16(w)), gb = upload(ctx, to_bf16(bias));
        auto gt = upload(ctx, targets);
        auto gdh = poisoned<bf16>(ctx, dh.size());
        auto gdw = upload(ctx, std::vector<float>(dw.size(), 0.0f)), gdb = upload(ctx, std::vector<float>(db.size(), 0.0f));
        auto gloss = upload(ctx, std::vector<float>{0.0f});
        cu::backend::decoder_cross_entropy(ctx, gloss.data(), gdh.data(), gdw.data(), s.bias ? gdb.data() : nullptr,
                                           ghid.data(), gw.data(), s.bias ? gb.data() : nullptr, gt.data(), s.n, s.h,
                                           s.vocab, dscale);
        check_close("decoder loss", download(ctx, gloss.data(), 1), {float(loss)}, 1e-2, 2e-3);
        check_close_scaled("decoder dhidden", download_f(ctx, gdh.data(), dh.size()), dh, 2e-2, 2e-2);
        CHECK(relative_error(download(ctx, gdw.data(), dw.size()), dw) < 2e-2);
        if (s.bias) check_close("decoder dbias", download(ctx, gdb.data(), db.size()), db, 1e-5, 2e-2);
        // evaluation: loss only, same value
        auto gloss2 = upload(ctx, std::vector<float>{0.0f});
        cu::backend::decoder_cross_entropy(ctx, gloss2.data(), static_cast<bf16*>(nullptr), static_cast<float*>(nullptr),
                                           static_cast<float*>(nullptr), ghid.data(), gw.data(),
                                           s.bias ? gb.data() : nullptr, gt.data(), s.n, s.h, s.vocab, dscale);
        check_close("decoder eval loss", download(ctx, gloss2.data(), 1), {float(loss)}, 1e-2, 2e-3);
    }
}

TEST_CASE("cuda AdamW step and sum of squares") {
    CRAM_REQUIRE_GPU();
    for (const index_t n : {index_t(3) << 20, index_t(77)}) {
        auto p = random_vec(static_cast<std::size_t>(n), 100), g = random_vec(static_cast<std::size_t>(n), 101, 0.01f);
        auto m = random_vec(static_cast<std::size_t>(n), 102, 0.01f), v = random_vec(static_cast<std::size_t>(n), 103, 1e-4f);
        for (auto& x : v) x = std::abs(x);
        auto gp = upload(ctx, p), gg = upload(ctx, g), gm = upload(ctx, m), gv = upload(ctx, v);
        cpu::adamw_hparams hp{1e-3f, 0.9f, 0.98f, 1e-12f, 0.01f, 7};
        cpu::adamw_step(p.data(), g.data(), m.data(), v.data(), n, hp, 0.5f);
        cu::backend::adamw_step(ctx, gp.data(), gg.data(), gm.data(), gv.data(), n, hp, 0.5f);
        check_close("adamw params", download(ctx, gp.data(), p.size()), p, 1e-6, 1e-5);
        check_close("adamw m", download(ctx, gm.data(), m.size()), m, 1e-8, 1e-5);
        check_close("adamw v", download(ctx, gv.data(), v.size()), v, 1e-10, 1e-5);
        const double ref = cpu::sum_squares(g.data(), n);
        const double got = cu::backend::sum_squares(ctx, gg.data(), n);
        INFO("sum_squares got " << got << " ref " << ref);
        CHECK(ref > 0);
        CHECK(std::abs(got - ref) <= 1e-5 * ref);
    }
}

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
        const auto view = db.view();
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
