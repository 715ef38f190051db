// cram/ops/backend.hpp: both CPU backends satisfy the concept (cpu/backend.hpp asserts it too), and the
// concept rejects what it exists to reject: an op whose signature differs from the contract in one
// parameter type, and the old variadic forwarding members. (A backend missing an op entirely is the
// compile-fail case tests/compile_fail/backend_missing_op.cpp, which also checks the diagnostic.)
#include <cstdint>
#include <utility>
#include <vector>

#include "cram/cpu/backend.hpp"
#include "cram/ops/backend.hpp"
#include "test_support.hpp"

namespace {

using cpu_float = cram::cpu::backend<float>;
using cpu_double = cram::cpu::backend<double>;

// add() declared on float for a backend whose activations are double: a caller would convert silently.
struct wrong_add_type : cpu_double {
    static void add(context&, float*, const float*, const float*, cram::index_t) {}
};
// the forwarding style the backends used before the concept: accepts anything, checks nothing
struct variadic_add : cpu_float {
    template <class... A>
    static void add(context& ctx, A&&... a) {
        cpu_float::add(ctx, std::forward<A>(a)...);
    }
};
// a return type the contract does not have
struct sum_squares_as_float : cpu_float {
    static float sum_squares(context&, const float*, cram::index_t) { return 0.0f; }
};

static_assert(cram::ops::backend<cpu_float>);
static_assert(cram::ops::backend<cpu_double>);
static_assert(!cram::ops::backend<wrong_add_type>);
static_assert(!cram::ops::backend_ops<wrong_add_type>);
static_assert(cram::ops::backend_types<wrong_add_type> && cram::ops::backend_memory<wrong_add_type>);
static_assert(!cram::ops::backend<variadic_add>);
static_assert(!cram::ops::backend<sum_squares_as_float>);
// buffers: owning, typed; a raw pointer is not one
static_assert(cram::ops::backend_buffer<std::vector<float>, float>);
static_assert(!cram::ops::backend_buffer<float*, float>);
static_assert(!cram::ops::backend_buffer<std::vector<float>, double>);

}  // namespace

TEST_CASE("the CPU backends satisfy ops::backend; wrong signatures and variadic forwarding do not") {
    // The checks above are compile-time; this case records them in the suite's output.
    CHECK(cram::ops::backend<cpu_float>);
    CHECK(cram::ops::backend<cpu_double>);
    CHECK_FALSE(cram::ops::backend<wrong_add_type>);
    CHECK_FALSE(cram::ops::backend<variadic_add>);
    CHECK_FALSE(cram::ops::backend<sum_squares_as_float>);
}

TEST_CASE("the CPU backend's ops forward to cram::ops (dense_labels, scale_inplace, add, by hand)") {
    // Ops the model reaches only through the backend, checked through it against hand-derived values.
    cpu_double::context ctx;
    std::vector<std::int32_t> labels(4, 0);
    const std::vector<std::int32_t> pos = {2}, tgt = {9};
    cpu_double::dense_labels(ctx, labels.data(), 4, pos.data(), tgt.data(), 1);
    CHECK(labels == std::vector<std::int32_t>{-100, -100, 9, -100});
    std::vector<double> x = {2, -4}, y = {0.5, 0.25}, out(2);
    cpu_double::scale_inplace(ctx, x.data(), 0.5, 2);
    CHECK(x == std::vector<double>{1, -2});
    cpu_double::add(ctx, out.data(), x.data(), y.data(), 2);
    CHECK(out == std::vector<double>{1.5, -1.75});
    cpu_double::add_inplace(ctx, out.data(), y.data(), 2);
    CHECK(out == std::vector<double>{2, -1.5});
    CHECK(cpu_double::sum_squares(ctx, out.data(), 2) == 6.25);
    // losses add to the accumulator: (3 - 1)^2 = 4 on top of 1; gradient 0.5 * 2 (3 - 1) = 2
    double loss = 1;
    const std::vector<double> pred = {3};
    const std::vector<float> target = {1.0f};
    std::vector<double> dpred(1);
    cpu_double::squared_error(ctx, &loss, dpred.data(), pred.data(), target.data(), 1, 0.5);
    CHECK(loss == 5.0);
    CHECK(dpred[0] == 2.0);
}
