// The race detector's eyes: compiled once into every emulated program (the cram::cuda_emulated target adds it).
// Emulated code is built with AddressSanitizer in its out-of-line mode (--param
// asan-instrumentation-with-call-threshold=0), so every load and store calls __asan_loadN / __asan_storeN. This
// file defines those functions in the program itself, which the linker prefers to the sanitizer runtime's: each
// one tells the race detector about accesses to the running block's shared-memory arena (one compare for all
// others), then calls the runtime's own check. Without AddressSanitizer it is empty, and races go unseen.
#if defined(__SANITIZE_ADDRESS__)

#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "cram/emu/runtime.hpp"

namespace {
using check_fn = void (*)(void*);
using check_n_fn = void (*)(void*, long);

template <class F>
F runtime_check(const char* name) {
    void* f = dlsym(RTLD_NEXT, name);
    if (!f) {
        std::fprintf(stderr, "cram emulated device: the AddressSanitizer runtime has no %s\n", name);
        std::abort();
    }
    return reinterpret_cast<F>(f);
}

inline void watch(void* p, std::size_t bytes, bool write) {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    if (a - cram::emu::detail::g_shared_lo < cram::emu::detail::g_shared_bytes)
        cram::emu::note_shared_access(a, bytes, write);
}
}  // namespace

#define CRAM_EMU_HOOK(size)                                                                     \
    extern "C" void __asan_load##size(void* p) {                                                \
        static const check_fn check = runtime_check<check_fn>("__asan_load" #size);             \
        watch(p, size, false);                                                                  \
        check(p);                                                                               \
    }                                                                                           \
    extern "C" void __asan_store##size(void* p) {                                               \
        static const check_fn check = runtime_check<check_fn>("__asan_store" #size);            \
        watch(p, size, true);                                                                   \
        check(p);                                                                               \
    }
CRAM_EMU_HOOK(1)
CRAM_EMU_HOOK(2)
CRAM_EMU_HOOK(4)
CRAM_EMU_HOOK(8)
CRAM_EMU_HOOK(16)
#undef CRAM_EMU_HOOK

extern "C" void __asan_loadN(void* p, long n) {  // the compiler's own declaration: long, not size_t
    static const check_n_fn check = runtime_check<check_n_fn>("__asan_loadN");
    watch(p, std::size_t(n), false);
    check(p, n);
}
extern "C" void __asan_storeN(void* p, long n) {
    static const check_n_fn check = runtime_check<check_n_fn>("__asan_storeN");
    watch(p, std::size_t(n), true);
    check(p, n);
}

#endif
