// mpi_communicator's gradient sum under mpirun (tests/dist.cmake runs it on 1, 2, 3, 4 and 8 ranks): on a
// power-of-two rank count every element must equal, bit for bit, the aligned binary tree over the ranks'
// values computed here from its definition (what one process's pairwise accumulation computes); on any
// count every rank must end with the same bits, close to the exact sum. Sizes cover odd lengths, fewer
// elements than ranks and more than one message chunk. Exits non-zero on the first mismatch.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "cram/dist/mpi.hpp"

namespace {

// Rank r's value at i: magnitudes over six decades and both signs, so that summation order shows.
float value(int r, std::size_t i) {
    std::uint64_t h = (std::uint64_t(r) + 1) * 0x9E3779B97F4A7C15ull ^ (std::uint64_t(i) * 0xBF58476D1CE4E5B9ull);
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 29;
    const float mantissa = float(h % 2000001) / 1000000.0f - 1.0f;
    return std::ldexp(mantissa, int((h >> 40) % 21) - 10);
}

// [lo, hi) = [lo, lo + ceil(n/2)) + the rest, as train/grad_accumulation.hpp defines the tree.
float tree(std::size_t i, int lo, int hi) {
    if (hi - lo == 1) return value(lo, i);
    const int mid = lo + (hi - lo + 1) / 2;
    return tree(i, lo, mid) + tree(i, mid, hi);
}

}  // namespace

int main(int argc, char** argv) {
    cram::dist::mpi_session session(&argc, &argv);
    cram::dist::mpi_communicator comm(60);
    const int n = comm.size(), me = comm.rank();
    const bool power_of_two = (n & (n - 1)) == 0;
    int failures = 0;
    for (const std::size_t len : {std::size_t(1), std::size_t(3), std::size_t(1000003), (std::size_t(1) << 22) + 5}) {
        std::vector<float> g(len);
        for (std::size_t i = 0; i < len; ++i) g[i] = value(me, i);
        comm.sum_gradients(g.data(), len);
        // every rank holds rank 0's bits
        std::vector<float> root = g;
        comm.broadcast(root.data(), len * sizeof(float));
        if (std::memcmp(root.data(), g.data(), len * sizeof(float)) != 0) {
            std::fprintf(stderr, "rank %d of %d, %zu elements: not the same bits as rank 0\n", me, n, len);
            ++failures;
        }
        for (std::size_t i = 0; i < len; i += (len > 100000 ? 997 : 1)) {
            double exact = 0;
            for (int r = 0; r < n; ++r) exact += value(r, i);
            const bool ok = power_of_two ? g[i] == tree(i, 0, n)
                                         : std::fabs(g[i] - exact) <= 1e-5 * (1.0 + std::fabs(exact)) * n;
            if (!ok) {
                std::fprintf(stderr, "rank %d of %d, element %zu of %zu: %.9g, expected %.9g (%s)\n", me, n, i, len,
                             double(g[i]), power_of_two ? double(tree(i, 0, n)) : exact,
                             power_of_two ? "the tree over ranks, bit for bit" : "the exact sum, closely");
                if (++failures > 5) break;
            }
        }
    }
    if (me == 0)
        std::printf("%d ranks: gradient sums %s (%s)\n", n, failures ? "FAIL" : "ok",
                    power_of_two ? "bit for bit the tree over ranks" : "the same bits everywhere, close to exact");
    double f = failures;
    comm.max(&f, 1);
    return f > 0 ? 1 : 0;
}
