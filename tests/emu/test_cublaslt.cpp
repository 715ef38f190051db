// The emulated cuBLASLt (cram/emu/cublaslt.hpp) against a naive reference written here: op(A) and op(B) are
// copied out by hand into row-major arrays and multiplied with a triple loop, the epilogues applied in double.
// Until the core runtime lands, this builds against a stand-in runtime.hpp (which defines
// CRAM_EMU_STUB_RUNTIME); with the real runtime the device memory comes from cudaMalloc.
#if __has_include("cram/emu/runtime.hpp")

#include <doctest/doctest.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cram/emu/toolkit/cublasLt.h"
#include "cram/emu/toolkit/cublas_api.h"
#if !defined(CRAM_EMU_STUB_RUNTIME)
#include "cram/emu/cuda_runtime.hpp"
#endif

namespace {

#if defined(CRAM_EMU_STUB_RUNTIME)
void* dev_alloc(std::size_t bytes) { return cram::emu::stub::alloc(bytes); }
void dev_free(void* p) { cram::emu::stub::release(p); }
bool set_cc(int cc) {
    cram::emu::stub::cc() = cc;
    return true;
}
int fault_count() { return cram::emu::stub::fault_count(); }
constexpr bool faults_observable = true;
#else
// integration point: the core runtime's allocator and device profile
void* dev_alloc(std::size_t bytes) {
    void* p = nullptr;
    REQUIRE(cudaMalloc(&p, bytes) == cudaSuccess);
    return p;
}
void dev_free(void* p) { cudaFree(p); }
// the emulated architecture, its other limits as they were
bool set_cc(int cc) {
    cram::emu::profile p = cram::emu::profile_for(cc);
    p.multiprocessors = cram::emu::device().prof().multiprocessors;
    p.memory = cram::emu::device().prof().memory;
    cram::emu::device().set_profile(p);
    return true;
}
// 1 when the device holds a (sticky) fault, which it then forgets, so the next case starts clean
int fault_count() {
    const int n = cram::emu::device().sticky() != cudaSuccess ? 1 : 0;
    cram::emu::reset_faults();
    return n;
}
constexpr bool faults_observable = true;
#endif

int elem_size(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }
float round_to(cudaDataType_t t, float v) {
    if (t == CUDA_R_16BF) return float(cram::bf16(v));
    if (t == CUDA_R_16F) return float(cram::fp16(v));
    return v;
}
void put(unsigned char* bytes, cudaDataType_t t, std::size_t i, float v) {
    if (t == CUDA_R_32F) {
        std::memcpy(bytes + 4 * i, &v, 4);
    } else {
        const std::uint16_t h = t == CUDA_R_16BF ? cram::bf16(v).bits : cram::fp16(v).bits;
        std::memcpy(bytes + 2 * i, &h, 2);
    }
}
float get(const unsigned char* bytes, cudaDataType_t t, std::size_t i) {
    if (t == CUDA_R_32F) {
        float v;
        std::memcpy(&v, bytes + 4 * i, 4);
        return v;
    }
    std::uint16_t h;
    std::memcpy(&h, bytes + 2 * i, 2);
    return t == CUDA_R_16BF ? cram::bf16::to_float(h) : cram::fp16::to_float(h);
}

std::uint32_t rng_state = 12345;
float random_value() {  // in [-1, 1)
    rng_state = rng_state * 1664525u + 1013904223u;
    return float(rng_state >> 8) / float(1u << 23) - 1.0f;
}

// A column-major strided-batch matrix in emulated device memory, mirrored on the host as floats.
struct Mat {
    cudaDataType_t type = CUDA_R_32F;
    std::int64_t rows = 0, cols = 0, ld = 0, batch = 1, stride = 0;
    int offset = 0;  // bytes between the allocation and the pointer passed on (misalignment tests)
    std::vector<float> host;
    void* base = nullptr;

    Mat(cudaDataType_t t, std::int64_t r, std::int64_t c, std::int64_t ld_, std::int64_t b, std::int64_t stride_,
        int offset_ = 0)
        : type(t), rows(r), cols(c), ld(ld_), batch(b), stride(stride_), offset(offset_) {
        host.resize(span());
        for (float& v : host) v = round_to(type, random_value());
        base = dev_alloc(bytes() + std::size_t(offset));
        upload();
    }
    ~Mat() { dev_free(base); }
    Mat(const Mat&) = delete;
    Mat& operator=(const Mat&) = delete;
    std::size_t span() const { return std::size_t((batch - 1) * stride + (cols - 1) * ld + rows); }
    std::size_t bytes() const { return span() * std::size_t(elem_size(type)); }
    void* ptr() const { return static_cast<unsigned char*>(base) + offset; }
    float& at(std::int64_t b, std::int64_t i, std::int64_t j) { return host[std::size_t(b * stride + i + j * ld)]; }
    void upload() {
        for (std::size_t i = 0; i < host.size(); ++i) put(static_cast<unsigned char*>(ptr()), type, i, host[i]);
    }
    std::vector<float> download() const {
        std::vector<float> out(host.size());
        for (std::size_t i = 0; i < out.size(); ++i) out[i] = get(static_cast<const unsigned char*>(ptr()), type, i);
        return out;
    }
};

struct Problem {
    cudaDataType_t tab = CUDA_R_32F, tcd = CUDA_R_32F;
    int b_type = -1;  // B's type when it differs from A's (refusal tests)
    cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
    bool ta = false, tb = false;
    std::int64_t m = 5, n = 7, k = 3;
    std::int64_t pad_a = 0, pad_b = 0, pad_c = 0, pad_d = 0;  // ld = rows + pad
    std::int64_t lda = -1;                                     // explicit lda (refusal tests)
    int batch = 1;
    int batch_attr = INT_MIN;  // a batch count set on the layouts other than `batch` (refusal tests)
    std::int64_t stride_gap = 0;
    float alpha = 1.0f, beta = 0.0f;
    bool in_place = false;
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    int bias_type = -1;
    std::int64_t aux_ld = -1;  // default: m rounded up to 8
    std::uint32_t pref_align[4] = {256, 256, 256, 256};
    int a_offset = 0, bias_offset = 0;
    int requested = 1, use_algo = 0;
    bool d_outside = false;  // hand cublasLtMatmul a D pointer past the end of its allocation
    bool null_algo = false;
};
struct Outcome {
    cublasStatus_t heuristic = CUBLAS_STATUS_INTERNAL_ERROR, matmul = CUBLAS_STATUS_INTERNAL_ERROR;
    int found = 0;
    std::vector<cublasLtMatmulHeuristicResult_t> results;
    std::string why;  // cram::emu::cublaslt_last_error() after the matmul call
};

double gelu_ref(double x) { return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); }
double gelu_grad_ref(double x) {  // by central difference: independent of the analytic form under test
    const double h = 1e-4;
    return (gelu_ref(x + h) - gelu_ref(x - h)) / (2 * h);
}

bool close(double got, double want, cudaDataType_t t) {
    const double rel = t == CUDA_R_32F ? 2e-5 : t == CUDA_R_16F ? 2.0 / 1024 : 2.0 / 128;
    return std::fabs(got - want) <= rel * std::fabs(want) + (t == CUDA_R_32F ? 1e-5 : 1e-3);
}

Outcome run(const Problem& pr) {
    Outcome out;
    const cudaDataType_t tb_type = pr.b_type >= 0 ? cudaDataType_t(pr.b_type) : pr.tab;
    const std::int64_t m = pr.m, n = pr.n, k = pr.k, batch = pr.batch;
    const std::int64_t a_rows = pr.ta ? k : m, a_cols = pr.ta ? m : k;
    const std::int64_t b_rows = pr.tb ? n : k, b_cols = pr.tb ? k : n;
    const std::int64_t lda = pr.lda >= 0 ? pr.lda : a_rows + pr.pad_a, ldb = b_rows + pr.pad_b;
    const std::int64_t ldc = m + pr.pad_c, ldd = pr.in_place ? ldc : m + pr.pad_d;
    const auto stride_of = [&](std::int64_t ld, std::int64_t cols) { return batch > 1 ? ld * cols + pr.stride_gap : 0; };
    const std::int64_t lda_alloc = std::max<std::int64_t>(lda, 1);
    Mat A(pr.tab, a_rows, a_cols, lda_alloc, batch, stride_of(lda_alloc, a_cols), pr.a_offset);
    Mat B(tb_type, b_rows, b_cols, ldb, batch, stride_of(ldb, b_cols));
    Mat C(pr.tcd, m, n, ldc, batch, stride_of(ldc, n));
    Mat Dm(pr.tcd, m, n, ldd, batch, stride_of(ldd, n));
    for (float& v : Dm.host) v = 77.0f;  // padding must survive
    Dm.upload();
    Mat& D = pr.in_place ? C : Dm;
    const bool bias_in = pr.epi == CUBLASLT_EPILOGUE_BIAS || pr.epi == CUBLASLT_EPILOGUE_GELU_BIAS ||
                         pr.epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    const bool bias_out = pr.epi == CUBLASLT_EPILOGUE_DGELU_BGRAD || pr.epi == CUBLASLT_EPILOGUE_BGRADA ||
                          pr.epi == CUBLASLT_EPILOGUE_BGRADB;
    const bool aux_out = pr.epi == CUBLASLT_EPILOGUE_GELU_AUX || pr.epi == CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    const bool aux_in = pr.epi == CUBLASLT_EPILOGUE_DGELU || pr.epi == CUBLASLT_EPILOGUE_DGELU_BGRAD;
    const std::int64_t bias_len = pr.epi == CUBLASLT_EPILOGUE_BGRADB ? n : m;
    const cudaDataType_t bias_t = pr.bias_type >= 0 ? cudaDataType_t(pr.bias_type) : pr.tcd;
    Mat bias(bias_t, bias_len, 1, bias_len, 1, 0, pr.bias_offset);
    const std::int64_t aux_ld = pr.aux_ld >= 0 ? pr.aux_ld : (m + 7) / 8 * 8;
    Mat aux(pr.tcd, m, n, std::max<std::int64_t>(aux_ld, m), 1, 0);
    for (float& v : aux.host) v = round_to(pr.tcd, 3.0f * random_value());
    aux.upload();

    cublasLtHandle_t h = nullptr;
    REQUIRE(cublasLtCreate(&h) == CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulDesc_t desc = nullptr;
    REQUIRE(cublasLtMatmulDescCreate(&desc, pr.compute, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    const cublasOperation_t opa = pr.ta ? CUBLAS_OP_T : CUBLAS_OP_N, opb = pr.tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa) == 0);
    REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb) == 0);
    REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &pr.epi, sizeof pr.epi) == 0);
    if (bias_in || bias_out) {
        const void* bp = bias.ptr();
        REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp) == 0);
        if (pr.bias_type >= 0) {
            const std::int32_t bt = pr.bias_type;
            REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof bt) == 0);
        }
    }
    if (aux_in || aux_out) {
        const void* ap = aux.ptr();
        REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &ap, sizeof ap) == 0);
        REQUIRE(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &aux_ld, sizeof aux_ld) ==
                0);
    }
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr, ld = nullptr;
    REQUIRE(cublasLtMatrixLayoutCreate(&la, pr.tab, a_rows, a_cols, lda) == 0);
    REQUIRE(cublasLtMatrixLayoutCreate(&lb, tb_type, b_rows, b_cols, ldb) == 0);
    REQUIRE(cublasLtMatrixLayoutCreate(&lc, pr.tcd, m, n, ldc) == 0);
    REQUIRE(cublasLtMatrixLayoutCreate(&ld, pr.tcd, m, n, ldd) == 0);
    if (batch > 1 || pr.batch_attr != INT_MIN) {
        const std::int32_t count = pr.batch_attr != INT_MIN ? pr.batch_attr : std::int32_t(batch);
        const Mat* mats[4] = {&A, &B, &C, &D};
        cublasLtMatrixLayout_t ls[4] = {la, lb, lc, ld};
        for (int i = 0; i < 4; ++i) {
            REQUIRE(cublasLtMatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count) ==
                    0);
            const std::int64_t s = mats[i]->stride;
            REQUIRE(cublasLtMatrixLayoutSetAttribute(ls[i], CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s,
                                                     sizeof s) == 0);
        }
    }
    cublasLtMatmulPreference_t pref = nullptr;
    REQUIRE(cublasLtMatmulPreferenceCreate(&pref) == 0);
    const cublasLtMatmulPreferenceAttributes_t al_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    for (int i = 0; i < 4; ++i)
        REQUIRE(cublasLtMatmulPreferenceSetAttribute(pref, al_attr[i], &pr.pref_align[i], sizeof(std::uint32_t)) == 0);
    const std::uint64_t ws = 1 << 20;
    REQUIRE(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws) == 0);

    out.results.resize(std::size_t(std::max(pr.requested, 1)));
    out.heuristic = cublasLtMatmulAlgoGetHeuristic(h, desc, la, lb, lc, ld, pref, pr.requested, out.results.data(),
                                                   &out.found);
    const cublasLtMatmulAlgo_t* algo =
        !pr.null_algo && out.heuristic == CUBLAS_STATUS_SUCCESS && out.found > pr.use_algo
            ? &out.results[std::size_t(pr.use_algo)].algo
            : nullptr;
    void* d_ptr = pr.d_outside ? static_cast<unsigned char*>(D.ptr()) + D.bytes() : D.ptr();
    void* workspace = dev_alloc(1024);
    out.matmul = cublasLtMatmul(h, desc, &pr.alpha, A.ptr(), la, B.ptr(), lb, &pr.beta, C.ptr(), lc, d_ptr, ld, algo,
                                workspace, 1024, nullptr);
    out.why = cram::emu::cublaslt_last_error();

    if (out.matmul == CUBLAS_STATUS_SUCCESS) {
        const std::vector<float> got = D.download();
        // untouched: every element of D's span that is not in a batch's m x n block
        std::vector<bool> in_block(got.size(), false);
        std::vector<double> bgrad(std::size_t(bias_len), 0.0);
        for (std::int64_t b = 0; b < batch; ++b) {
            // op(A) as an m x k row-major array, op(B) as k x n row-major, by hand
            std::vector<float> ar(std::size_t(m * k)), br(std::size_t(k * n));
            for (std::int64_t i = 0; i < m; ++i)
                for (std::int64_t q = 0; q < k; ++q) ar[std::size_t(i * k + q)] = pr.ta ? A.at(b, q, i) : A.at(b, i, q);
            for (std::int64_t q = 0; q < k; ++q)
                for (std::int64_t j = 0; j < n; ++j) br[std::size_t(q * n + j)] = pr.tb ? B.at(b, j, q) : B.at(b, q, j);
            for (std::int64_t i = 0; i < m; ++i) {
                for (std::int64_t j = 0; j < n; ++j) {
                    float s = 0.0f;
                    for (std::int64_t q = 0; q < k; ++q) s += ar[std::size_t(i * k + q)] * br[std::size_t(q * n + j)];
                    double v = double(pr.alpha) * s;
                    if (pr.beta != 0.0f) v += double(pr.beta) * C.at(b, i, j);  // C's host copy: still the input
                    if (bias_in) v += bias.at(0, i, 0);
                    if (aux_out) {
                        const float aux_got = get(static_cast<const unsigned char*>(aux.ptr()), pr.tcd,
                                                  std::size_t(i + j * aux_ld));
                        CHECK_MESSAGE(close(aux_got, v, pr.tcd), "aux(", i, ",", j, ") ", aux_got, " vs ", v);
                    }
                    if (pr.epi == CUBLASLT_EPILOGUE_GELU || aux_out || pr.epi == CUBLASLT_EPILOGUE_GELU_BIAS)
                        v = gelu_ref(v);
                    if (aux_in) v *= gelu_grad_ref(aux.at(0, i, j));
                    if (pr.epi == CUBLASLT_EPILOGUE_DGELU_BGRAD) bgrad[std::size_t(i)] += v;
                    const std::size_t at = std::size_t(b * D.stride + i + j * D.ld);
                    in_block[at] = true;
                    CHECK_MESSAGE(close(got[at], v, pr.tcd), "D(", b, ";", i, ",", j, ") = ", got[at], ", want ", v);
                }
            }
            if (pr.epi == CUBLASLT_EPILOGUE_BGRADA)
                for (std::int64_t i = 0; i < m; ++i)
                    for (std::int64_t q = 0; q < k; ++q) bgrad[std::size_t(i)] += ar[std::size_t(i * k + q)];
            if (pr.epi == CUBLASLT_EPILOGUE_BGRADB)
                for (std::int64_t j = 0; j < n; ++j)
                    for (std::int64_t q = 0; q < k; ++q) bgrad[std::size_t(j)] += br[std::size_t(q * n + j)];
        }
        if (!pr.in_place)
            for (std::size_t i = 0; i < got.size(); ++i)
                if (!in_block[i]) CHECK_MESSAGE(got[i] == 77.0f, "D padding element ", i, " was written");
        if (bias_out) {
            const std::vector<float> g = bias.download();
            for (std::int64_t i = 0; i < bias_len; ++i)
                CHECK_MESSAGE(close(g[std::size_t(i)], bgrad[std::size_t(i)], bias_t), "bias grad ", i);
        }
    }
    dev_free(workspace);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la);
    cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(h);
    return out;
}

void expect_ok(const Problem& p) {
    const Outcome o = run(p);
    CHECK(o.heuristic == CUBLAS_STATUS_SUCCESS);
    CHECK_MESSAGE(o.matmul == CUBLAS_STATUS_SUCCESS, o.why);
}

}  // namespace

TEST_CASE("emulated cuBLASLt: every transpose combination, with ld > rows") {
    for (int t = 0; t < 4; ++t) {
        Problem p;
        p.ta = t & 1;
        p.tb = t & 2;
        p.m = 6;
        p.n = 9;
        p.k = 5;
        p.pad_a = 3;
        p.pad_b = 1;
        p.pad_d = 2;
        CAPTURE(t);
        expect_ok(p);
    }
}

TEST_CASE("emulated cuBLASLt: types in and out") {
    const cudaDataType_t types[3] = {CUDA_R_32F, CUDA_R_16BF, CUDA_R_16F};
    for (cudaDataType_t ab : types)
        for (cudaDataType_t cd : {ab, CUDA_R_32F}) {
            Problem p;
            p.tab = ab;
            p.tcd = cd;
            p.m = 13;
            p.n = 11;
            p.k = 17;
            p.tb = true;
            p.alpha = 0.5f;
            p.beta = 0.25f;
            CAPTURE(int(ab));
            CAPTURE(int(cd));
            expect_ok(p);
        }
}

TEST_CASE("emulated cuBLASLt: strided batches, beta, C != D and in place") {
    Problem p;
    p.tab = CUDA_R_16BF;
    p.tcd = CUDA_R_16BF;
    p.batch = 3;
    p.stride_gap = 5;  // batch pointers are then only 2-byte aligned: say so in the preference
    for (std::uint32_t& a : p.pref_align) a = 2;
    p.m = 8;
    p.n = 6;
    p.k = 4;
    p.pad_c = 1;
    p.pad_d = 3;  // C and D may have different leading dimensions when C != D
    p.alpha = 2.0f;
    p.beta = -1.5f;
    p.ta = true;
    expect_ok(p);
    p.in_place = true;
    p.pad_d = 0;
    expect_ok(p);
}

TEST_CASE("emulated cuBLASLt: a larger problem, all k in one fp32 sum") {
    Problem p;
    p.tab = CUDA_R_16BF;
    p.tcd = CUDA_R_32F;
    p.m = 64;
    p.n = 37;
    p.k = 300;
    p.tb = true;
    expect_ok(p);
}

TEST_CASE("emulated cuBLASLt: epilogues") {
    const cublasLtEpilogue_t epis[] = {CUBLASLT_EPILOGUE_BIAS,      CUBLASLT_EPILOGUE_GELU,
                                       CUBLASLT_EPILOGUE_GELU_AUX,  CUBLASLT_EPILOGUE_GELU_BIAS,
                                       CUBLASLT_EPILOGUE_GELU_AUX_BIAS, CUBLASLT_EPILOGUE_DGELU,
                                       CUBLASLT_EPILOGUE_DGELU_BGRAD, CUBLASLT_EPILOGUE_BGRADA,
                                       CUBLASLT_EPILOGUE_BGRADB};
    for (cublasLtEpilogue_t e : epis)
        for (cudaDataType_t t : {CUDA_R_32F, CUDA_R_16BF}) {
            Problem p;
            p.tab = t;
            p.tcd = t;
            p.epi = e;
            p.m = 12;
            p.n = 10;
            p.k = 7;
            p.tb = true;
            p.beta = 0.5f;
            p.aux_ld = 16;
            CAPTURE(int(e));
            CAPTURE(int(t));
            expect_ok(p);
        }
}

TEST_CASE("emulated cuBLASLt: the heuristic offers two interchangeable algorithms") {
    Problem p;
    p.requested = 8;
    for (int i = 0; i < 2; ++i) {
        p.use_algo = i;
        const Outcome o = run(p);
        REQUIRE(o.heuristic == CUBLAS_STATUS_SUCCESS);
        CHECK(o.found == 2);
        CHECK(o.matmul == CUBLAS_STATUS_SUCCESS);
        for (int r = 0; r < o.found; ++r) {
            CHECK(o.results[std::size_t(r)].state == CUBLAS_STATUS_SUCCESS);
            CHECK(o.results[std::size_t(r)].workspaceSize == 0);
            for (int s = 0; s < r; ++s)
                CHECK(std::memcmp(&o.results[std::size_t(r)].algo, &o.results[std::size_t(s)].algo,
                                  sizeof(cublasLtMatmulAlgo_t)) != 0);
        }
    }
    p.requested = 1;
    CHECK(run(p).found == 1);
    p.null_algo = true;  // an implicit heuristic query
    expect_ok(p);
}

TEST_CASE("emulated cuBLASLt: documented refusals") {
    SUBCASE("leading dimension below rows") {
        Problem p;
        p.lda = p.m - 1;
        const Outcome o = run(p);
        CHECK(o.heuristic == CUBLAS_STATUS_NOT_SUPPORTED);
        CHECK(o.found == 0);
        CHECK(o.matmul == CUBLAS_STATUS_INVALID_VALUE);
    }
    SUBCASE("a pointer less aligned than the preference the algorithm was found with") {
        Problem p;
        p.tab = p.tcd = CUDA_R_16BF;
        p.a_offset = 2;  // bf16-aligned, not 16-byte aligned
        Outcome o = run(p);
        CHECK(o.heuristic == CUBLAS_STATUS_SUCCESS);
        CHECK(o.matmul == CUBLAS_STATUS_INVALID_VALUE);
        p.pref_align[0] = 2;  // the caller said A may be only 2-byte aligned
        expect_ok(p);
        p.a_offset = 1;  // below the element size: refused whatever the preference
        o = run(p);
        CHECK(o.matmul == CUBLAS_STATUS_INVALID_VALUE);
        p.pref_align[0] = 1;
        CHECK(run(p).heuristic == CUBLAS_STATUS_NOT_SUPPORTED);
    }
    SUBCASE("a bias less aligned than the descriptor's pointer at query time") {
        Problem p;
        p.epi = CUBLASLT_EPILOGUE_BIAS;
        p.bias_offset = 4;  // the heuristic sees this pointer too: consistent, runs
        expect_ok(p);
        p.bias_offset = 2;  // not float-aligned
        CHECK(run(p).heuristic == CUBLAS_STATUS_NOT_SUPPORTED);
    }
    SUBCASE("bf16 needs compute capability 8.0") {
        const int original_cc = cram::emu::current_cc();  // the suite may run at sm_75 itself
        if (!set_cc(75)) {
            MESSAGE("no way to select a compute capability 7.5 device here: skipped");
            return;
        }
        Problem p;
        p.tab = p.tcd = CUDA_R_16BF;
        const Outcome o = run(p);
        set_cc(original_cc);
        CHECK(o.heuristic == CUBLAS_STATUS_NOT_SUPPORTED);
        CHECK(o.matmul == CUBLAS_STATUS_ARCH_MISMATCH);
        set_cc(75);
        p.tab = p.tcd = CUDA_R_16F;  // fp16 runs there
        const Outcome f = run(p);
        set_cc(original_cc);
        CHECK(f.matmul == CUBLAS_STATUS_SUCCESS);
    }
    SUBCASE("unsupported type combinations") {
        Problem p;
        p.tab = CUDA_R_16BF;
        p.tcd = CUDA_R_16F;  // bf16 in, fp16 out
        Outcome o = run(p);
        CHECK(o.heuristic == CUBLAS_STATUS_NOT_SUPPORTED);
        CHECK(o.matmul == CUBLAS_STATUS_NOT_SUPPORTED);
        p.tab = CUDA_R_32F;
        p.tcd = CUDA_R_16BF;  // fp32 in, bf16 out
        CHECK(run(p).matmul == CUBLAS_STATUS_NOT_SUPPORTED);
        p.tab = p.tcd = CUDA_R_16BF;
        p.b_type = CUDA_R_16F;  // A and B differ
        CHECK(run(p).matmul == CUBLAS_STATUS_NOT_SUPPORTED);
        p.b_type = -1;
        p.epi = CUBLASLT_EPILOGUE_BIAS;
        p.bias_type = CUDA_R_32F;  // the bias has D's type
        CHECK(run(p).heuristic == CUBLAS_STATUS_NOT_SUPPORTED);
        Problem q;
        q.compute = CUBLAS_COMPUTE_32F_FAST_TF32;  // fp32 only
        expect_ok(q);
        q.tab = q.tcd = CUDA_R_16F;
        CHECK(run(q).matmul == CUBLAS_STATUS_NOT_SUPPORTED);
    }
    SUBCASE("batch count below 1") {
        Problem p;
        p.batch_attr = 0;
        const Outcome o = run(p);
        CHECK(o.heuristic == CUBLAS_STATUS_NOT_SUPPORTED);
        CHECK(o.matmul == CUBLAS_STATUS_INVALID_VALUE);
    }
    SUBCASE("aux leading dimension not a multiple of 8") {
        Problem p;
        p.epi = CUBLASLT_EPILOGUE_GELU_AUX;
        p.aux_ld = 12;
        p.m = 10;
        CHECK(run(p).matmul == CUBLAS_STATUS_INVALID_VALUE);
    }
    SUBCASE("an operand outside device memory is a device fault") {
        if (!faults_observable) {
            MESSAGE("a device fault is sticky in the real runtime: tested elsewhere");
            return;
        }
        Problem p;
        p.d_outside = true;
        for (std::uint32_t& a : p.pref_align) a = 4;
        const int before = fault_count();
        CHECK(run(p).matmul == CUBLAS_STATUS_EXECUTION_FAILED);
        CHECK(fault_count() == before + 1);
    }
}

TEST_CASE("emulated cuBLASLt: API protocol") {
    cublasLtHandle_t h = nullptr;
    REQUIRE(cublasLtCreate(&h) == CUBLAS_STATUS_SUCCESS);
    cublasLtMatmulDesc_t desc = nullptr;
    REQUIRE(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) == CUBLAS_STATUS_SUCCESS);
    const std::int64_t wrong_size = CUBLAS_OP_T;
    CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &wrong_size, sizeof wrong_size) ==
          CUBLAS_STATUS_INVALID_VALUE);
    std::size_t need = 0;
    CHECK(cublasLtMatmulDescGetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, nullptr, 0, &need) ==
          CUBLAS_STATUS_SUCCESS);
    CHECK(need == 4);
    std::uint32_t epi = 0;
    CHECK(cublasLtMatmulDescGetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi, nullptr) == 0);
    CHECK(epi == CUBLASLT_EPILOGUE_DEFAULT);
    cublasLtMatrixLayout_t l = nullptr;
    REQUIRE(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 4, 4, 4) == 0);
    cublasLtMatmulPreference_t pref = nullptr;
    REQUIRE(cublasLtMatmulPreferenceCreate(&pref) == 0);
    cublasLtMatmulHeuristicResult_t r[2];
    int found = -1;
    CHECK(cublasLtMatmulAlgoGetHeuristic(h, desc, l, l, l, l, pref, 0, r, &found) == CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasLtMatmulAlgoGetHeuristic(h, desc, l, l, l, l, pref, 2, r, &found) == CUBLAS_STATUS_SUCCESS);
    CHECK(found == 2);
    // an algorithm is tied to the problem it was found for
    cublasLtMatrixLayout_t l5 = nullptr;
    REQUIRE(cublasLtMatrixLayoutCreate(&l5, CUDA_R_32F, 5, 5, 5) == 0);
    void* mem = dev_alloc(5 * 5 * 4);
    std::memset(mem, 0, 5 * 5 * 4);
    const float one = 1.0f, zero = 0.0f;
    CHECK(cublasLtMatmul(h, desc, &one, mem, l5, mem, l5, &zero, mem, l5, mem, l5, &r[0].algo, nullptr, 0, nullptr) ==
          CUBLAS_STATUS_INVALID_VALUE);
    CHECK(cublasLtMatmul(nullptr, desc, &one, mem, l5, mem, l5, &zero, mem, l5, mem, l5, nullptr, nullptr, 0,
                         nullptr) == CUBLAS_STATUS_NOT_INITIALIZED);
    CHECK(std::string(cublasLtGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED)) == "CUBLAS_STATUS_NOT_SUPPORTED");
    dev_free(mem);
    cublasLtMatrixLayoutDestroy(l5);
    cublasLtMatrixLayoutDestroy(l);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatmulDescDestroy(desc);
    cublasLtDestroy(h);
}

#endif  // __has_include("cram/emu/runtime.hpp")
