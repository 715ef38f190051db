// cram/ops/embedding.hpp: the sinusoid table's entries, the embedding sum by hand, finite-difference
// gradients of every table (learned and scaled sinusoidal positions, token types), the id checks, and the
// row gather whose backward is the scatter-add.
#include <cmath>
#include <cstdint>
#include <vector>

#include "cram/core/error.hpp"
#include "cram/ops/embedding.hpp"
#include "fd_support.hpp"

using namespace cram::test;

// ---- sinusoid table ------------------------------------------------------------------------------
TEST_CASE("sinusoidal position table entries") {
    // PE(pos, 2i) = sin(pos / 10000^(2i/H)), PE(pos, 2i+1) = cos(...), H = 8
    const int seq = 3, H = 8;
    vec t(seq * H);
    cram::ops::sinusoidal_table<double>(t.data(), seq, H);
    auto at = [&](int pos, int col) { return t[std::size_t(pos * H + col)]; };
    for (int c = 0; c < H; ++c) CHECK(at(0, c) == (c % 2 == 0 ? 0.0 : 1.0));
    CHECK(at(1, 0) == doctest::Approx(std::sin(1.0)).epsilon(1e-14));
    CHECK(at(1, 1) == doctest::Approx(std::cos(1.0)).epsilon(1e-14));
    CHECK(at(1, 2) == doctest::Approx(std::sin(0.1)).epsilon(1e-14));    // 10000^(2/8) = 10
    CHECK(at(1, 3) == doctest::Approx(std::cos(0.1)).epsilon(1e-14));
    CHECK(at(1, 4) == doctest::Approx(std::sin(0.01)).epsilon(1e-14));   // 10000^(4/8) = 100
    CHECK(at(1, 6) == doctest::Approx(std::sin(0.001)).epsilon(1e-14));  // 10000^(6/8) = 1000
    CHECK(at(1, 7) == doctest::Approx(std::cos(0.001)).epsilon(1e-14));
    CHECK(at(2, 2) == doctest::Approx(std::sin(0.2)).epsilon(1e-14));
    CHECK(at(2, 5) == doctest::Approx(std::cos(0.02)).epsilon(1e-14));
}

// ---- embeddings ----------------------------------------------------------------------------------
TEST_CASE("embedding forward: word + scale * position + token type, by hand") {
    // hidden 2, vocab 3, seq 2, batch 1; ids [2, 0], types [1, 0]
    const vec word = {0, 0, 1, 2, 10, 20};  // rows 0, 1, 2
    const vec pos = {0.5, -0.5, 1, 3};      // rows for s = 0, 1
    const vec type = {100, 200, 300, 400};  // rows for type 0, 1
    const vec scale = {2.0};
    const ivec ids = {2, 0}, types = {1, 0};
    vec out(4);
    cram::ops::embedding_forward<double>(out.data(), ids.data(), types.data(), word.data(), pos.data(), scale.data(),
                                         type.data(), 1, 2, 2, 3, 2);
    // token 0: [10, 20] + 2*[.5, -.5] + [300, 400] = [311, 419]; token 1: [0, 0] + 2*[1, 3] + [100, 200]
    CRAM_CHECK_CLOSE(out, (vec{311, 419, 102, 206}), 0, 0);
    cram::ops::embedding_forward<double>(out.data(), ids.data(), nullptr, word.data(), pos.data(), nullptr, nullptr, 1,
                                         2, 2, 3, 0);
    CRAM_CHECK_CLOSE(out, (vec{10.5, 19.5, 1, 3}), 0, 0);
    const ivec bad = {3, 0};
    CHECK_THROWS_AS(cram::ops::embedding_forward<double>(out.data(), bad.data(), nullptr, word.data(), pos.data(),
                                                         nullptr, nullptr, 1, 2, 2, 3, 0),
                    cram::error);
}

TEST_CASE("embedding backward: learned positions, scaled sinusoidal positions, token types") {
    const int batch = 2, seq = 3, hidden = 4, vocab = 6, types = 3;
    const ivec ids = {1, 4, 1, 5, 0, 4};  // repeats: gradients of a row add up
    const ivec type_ids = {0, 2, 1, 1, 0, 2};
    const vec r = random_vec(std::size_t(batch) * seq * hidden, 60);

    SUBCASE("learned positions") {
        vec word = random_vec(vocab * hidden, 61), pos = random_vec(seq * hidden, 62);
        auto loss = [&] {
            vec out(std::size_t(batch) * seq * hidden);
            cram::ops::embedding_forward<double>(out.data(), ids.data(), nullptr, word.data(), pos.data(), nullptr,
                                                 nullptr, batch, seq, hidden, vocab, 0);
            return dot(r, out);
        };
        const double pf = 0.125;
        vec dword(word.size(), pf), dpos(pos.size(), pf);
        cram::ops::embedding_backward<double>(dword.data(), dpos.data(), nullptr, nullptr, r.data(), ids.data(),
                                              nullptr, pos.data(), nullptr, batch, seq, hidden, vocab);
        check_fd("word embedding", word, minus(dword, pf), loss);
        check_fd("learned positions", pos, minus(dpos, pf), loss);
    }
    SUBCASE("scaled sinusoidal positions") {
        vec word = random_vec(vocab * hidden, 63), table(seq * hidden), scale = {0.7};
        cram::ops::sinusoidal_table<double>(table.data(), seq, hidden);
        auto loss = [&] {
            vec out(std::size_t(batch) * seq * hidden);
            cram::ops::embedding_forward<double>(out.data(), ids.data(), nullptr, word.data(), table.data(),
                                                 scale.data(), nullptr, batch, seq, hidden, vocab, 0);
            return dot(r, out);
        };
        const double pf = 0.125;
        vec dword(word.size(), pf), dscale = {pf};
        cram::ops::embedding_backward<double>(dword.data(), nullptr, dscale.data(), nullptr, r.data(), ids.data(),
                                              nullptr, table.data(), scale.data(), batch, seq, hidden, vocab);
        check_fd("word embedding (sinusoidal)", word, minus(dword, pf), loss);
        check_fd("position scale", scale, minus(dscale, pf), loss);
    }
    SUBCASE("token types, given and defaulted to type 0") {
        for (const bool given : {true, false}) {
            CAPTURE(given);
            const std::int32_t* tids = given ? type_ids.data() : nullptr;
            vec word = random_vec(vocab * hidden, 64), pos = random_vec(seq * hidden, 65),
                type = random_vec(types * hidden, 66);
            auto loss = [&] {
                vec out(std::size_t(batch) * seq * hidden);
                cram::ops::embedding_forward<double>(out.data(), ids.data(), tids, word.data(), pos.data(), nullptr,
                                                     type.data(), batch, seq, hidden, vocab, types);
                return dot(r, out);
            };
            vec dword(word.size(), 0.0), dpos(pos.size(), 0.0), dtype(type.size(), 0.0);
            cram::ops::embedding_backward<double>(dword.data(), dpos.data(), nullptr, dtype.data(), r.data(),
                                                  ids.data(), tids, pos.data(), nullptr, batch, seq, hidden, vocab);
            check_fd("token-type table", type, dtype, loss);
            check_fd("word embedding (types)", word, dword, loss);
            if (!given)  // only row 0 is used
                for (int i = hidden; i < types * hidden; ++i) CHECK(dtype[std::size_t(i)] == 0.0);
        }
    }
}

TEST_CASE("embedding backward rejects an id outside the vocabulary it is given") {
    // The CPU checks what the GPU kernel bounds its scatter by: an id >= vocab must not write past the table.
    const int seq = 2, hidden = 2, vocab = 3;
    const ivec ids = {2, 3};
    const vec dout = {1, 2, 3, 4}, pos = {0, 0, 0, 0};
    vec dword(std::size_t(vocab) * hidden, 0.0);
    CHECK_THROWS_AS(cram::ops::embedding_backward<double>(dword.data(), nullptr, nullptr, nullptr, dout.data(),
                                                          ids.data(), nullptr, pos.data(), nullptr, 1, seq, hidden,
                                                          vocab),
                    cram::error);
    // with a vocabulary that holds id 3 the same call accumulates both rows: row 2 += [1, 2], row 3 += [3, 4]
    vec dword4(std::size_t(4) * hidden, 0.5);
    cram::ops::embedding_backward<double>(dword4.data(), nullptr, nullptr, nullptr, dout.data(), ids.data(), nullptr,
                                          pos.data(), nullptr, 1, seq, hidden, 4);
    CRAM_CHECK_CLOSE(dword4, (vec{0.5, 0.5, 0.5, 0.5, 1.5, 2.5, 3.5, 4.5}), 0, 0);
}

TEST_CASE("embedding backward leaves the padding row's gradient zero (padding_idx), by hand") {
    // batch 1, seq 4, hidden 2, vocab 3, pad id 0; ids [0, 2, 0, 1]; dout rows [1, 2], [3, 4], [5, 6], [7, 8];
    // scaled sinusoidal positions with table rows [1, 0], [0, 1], [1, 1], [2, 0] and scale 0.5.
    //   word row 0 (pad): no gradient, although tokens 0 and 2 are pads: stays at its start value 0.25
    //   word row 1: dout row 3 = [7, 8];  word row 2: dout row 1 = [3, 4]   (+ 0.25)
    //   position scale: sum over all four tokens, pads included (only the pad's word row is frozen, as in
    //   PyTorch): 1*1 + 0*2 + 0*3 + 1*4 + 1*5 + 1*6 + 2*7 + 0*8 = 30
    const ivec ids = {0, 2, 0, 1};
    const vec dout = {1, 2, 3, 4, 5, 6, 7, 8}, table = {1, 0, 0, 1, 1, 1, 2, 0}, scale = {0.5};
    vec dword(6, 0.25), dscale = {0.0};
    cram::ops::embedding_backward<double>(dword.data(), nullptr, dscale.data(), nullptr, dout.data(), ids.data(),
                                          nullptr, table.data(), scale.data(), 1, 4, 2, 3, 0);
    CRAM_CHECK_CLOSE(dword, (vec{0.25, 0.25, 7.25, 8.25, 3.25, 4.25}), 0, 0);
    CHECK(dscale[0] == 30.0);
    // pad_id -1: no padding row, row 0 gets dout rows 0 and 2 = [6, 8]
    vec all(6, 0.25);
    cram::ops::embedding_backward<double>(all.data(), nullptr, nullptr, nullptr, dout.data(), ids.data(), nullptr,
                                          table.data(), nullptr, 1, 4, 2, 3, -1);
    CRAM_CHECK_CLOSE(all, (vec{6.25, 8.25, 7.25, 8.25, 3.25, 4.25}), 0, 0);
    // another pad id: row 2 is frozen instead, row 0 learns
    vec pad2(6, 0.0);
    cram::ops::embedding_backward<double>(pad2.data(), nullptr, nullptr, nullptr, dout.data(), ids.data(), nullptr,
                                          table.data(), nullptr, 1, 4, 2, 3, 2);
    CRAM_CHECK_CLOSE(pad2, (vec{6, 8, 7, 8, 0, 0}), 0, 0);
}

// ---- gather / scatter ----------------------------------------------------------------------------
TEST_CASE("gather_rows backward is scatter_add_rows (duplicates accumulate)") {
    const int rows = 5, cols = 3;
    const ivec pick = {2, 0, 2, 4};
    vec in = random_vec(rows * cols, 70);
    const vec r = random_vec(pick.size() * cols, 71);
    auto loss = [&] {
        vec out(pick.size() * cols);
        cram::ops::gather_rows<double>(out.data(), in.data(), pick.data(), cram::index_t(pick.size()), cols);
        return dot(r, out);
    };
    const double pf = 1.5;
    vec din(in.size(), pf);
    cram::ops::scatter_add_rows<double>(din.data(), r.data(), pick.data(), cram::index_t(pick.size()), cols);
    check_fd("gather", in, minus(din, pf), loss);
    for (int c = 0; c < cols; ++c) {
        CHECK(din[std::size_t(1 * cols + c)] == pf);  // row 1 and 3 never gathered
        CHECK(din[std::size_t(3 * cols + c)] == pf);
    }
}
