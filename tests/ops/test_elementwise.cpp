// cram/ops/elementwise.hpp: the residual add and its accumulating in-place form, by hand, including
// the aliasing the model relies on (out == a).
#include <vector>

#include "cram/ops/elementwise.hpp"
#include "test_support.hpp"

namespace {
using vec = std::vector<double>;
}  // namespace

TEST_CASE("add and add_inplace, by hand") {
    const vec a = {1, -2, 0.5}, b = {0.25, 2, -3};
    vec out(3, -7.0);
    cram::ops::add(out.data(), a.data(), b.data(), 3);
    CHECK(out == vec{1.25, 0, -2.5});  // overwritten, not accumulated
    vec acc = {10, 20, 30};
    cram::ops::add_inplace(acc.data(), a.data(), 3);
    CHECK(acc == vec{11, 18, 30.5});
    cram::ops::add_inplace(acc.data(), b.data(), 2);  // only the first n elements
    CHECK(acc == vec{11.25, 20, 30.5});
    vec x = {1, 2, 3};
    cram::ops::add(x.data(), x.data(), b.data(), 3);  // out aliasing an input
    CHECK(x == vec{1.25, 4, 0});
}
