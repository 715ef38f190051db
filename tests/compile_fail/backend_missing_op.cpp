// Must NOT compile: a backend that lacks one op (tanh_backward) is rejected by the ops::backend concept,
// and the compiler's note names the failed requirement (tests/compile_fail.cmake looks for it).
#include "cram/cpu/backend.hpp"

// Everything of the CPU backend but tanh_backward: the alias hides the inherited function, so for name
// lookup this backend has no op of that name, exactly as if it had never been written.
struct missing_tanh_backward : cram::cpu::backend<float> {
    using tanh_backward = void;
};
static_assert(cram::ops::backend<missing_tanh_backward>, "a backend must implement every op");
