// Single-precision GEMM throughput of whichever CBLAS this is linked with, on the shapes cram's models
// multiply (crammed_tiny / crammed_mini micro-batches of 8 x 128 tokens), one call at a time on one thread:
// how cram calls the BLAS (cram's pool runs one single-threaded call per tile). Built and run twice, against
// OpenBLAS and BLIS, by compare_blas.sh; prints one line per shape and a JSON object.
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <vector>

namespace {
struct shape {
    const char* what;
    bool ta, tb;
    int m, n, k;
};
}  // namespace

int main() {
    const shape shapes[] = {
        {"square 512", false, true, 512, 512, 512},
        {"tiny QKV forward", false, true, 1024, 384, 128},
        {"tiny FFN in forward", false, true, 1024, 512, 128},
        {"tiny FFN out forward", false, true, 1024, 128, 256},
        {"tiny decoder logits", false, true, 256, 8192, 128},
        {"tiny FFN out input grad", false, false, 1024, 256, 128},
        {"tiny FFN in weight grad", true, false, 512, 128, 1024},
        {"mini decoder weight grad", true, false, 32768, 256, 256},
    };
    std::printf("{\"shapes\": [\n");
    bool first = true;
    for (const shape& s : shapes) {
        std::vector<float> a(std::size_t(s.m) * s.k, 0.5f), b(std::size_t(s.k) * s.n, 0.25f), c(std::size_t(s.m) * s.n);
        auto call = [&] {
            cblas_sgemm(CblasRowMajor, s.ta ? CblasTrans : CblasNoTrans, s.tb ? CblasTrans : CblasNoTrans, s.m, s.n,
                        s.k, 1.0f, a.data(), s.ta ? s.m : s.k, b.data(), s.tb ? s.k : s.n, 0.0f, c.data(), s.n);
        };
        for (int i = 0; i < 3; ++i) call();
        int calls = 0;
        double seconds = 0;
        const auto t0 = std::chrono::steady_clock::now();
        while (seconds < 0.5) {
            call();
            ++calls;
            seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        }
        const double gflops = 2.0 * s.m * s.n * s.k * calls / seconds / 1e9;
        std::printf("%s  {\"what\": \"%s\", \"op\": \"%c%c\", \"m\": %d, \"n\": %d, \"k\": %d, \"gflops\": %.1f}",
                    first ? "" : ",\n", s.what, s.ta ? 'T' : 'N', s.tb ? 'T' : 'N', s.m, s.n, s.k, gflops);
        std::fflush(stdout);
        first = false;
    }
    std::printf("\n]}\n");
}
