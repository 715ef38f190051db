// The emulated CUDA device: the project's kernels, compiled for the host, run on the CPU with the semantics a
// GPU gives them and the checks a GPU's tools make (docs/cuda.md, "The emulated device").
// - Execution: a launch runs its blocks one after another on the calling thread; each CUDA thread of a block is
//   a fiber (Boost.Context's fcontext: a few nanoseconds a switch, no system call), so __syncthreads() is a block
//   rendezvous and the warp intrinsics are warp rendezvous that honour their mask. A barrier some threads never
//   reach (they exited, or wait at another barrier) and a collective whose mask names an exited or absent lane
//   are faults that name the kernel, the block and the threads, not hangs.
// - Memory: device allocations are tracked (a kernel argument or a copy outside a live one is a fault naming the
//   kernel or call and the argument); shared memory is a per-block arena sized by the launch and the kernel's
//   __shared__ variables, within the limits of the emulated architecture (sm_90 or sm_75, CRAM_EMU_ARCH), its
//   gaps poisoned for AddressSanitizer; a race detector watches every instrumented access to it (race_hooks.cpp).
// - Streams execute in order, synchronously; events record the host clock.
// Faults are sticky, as on a GPU: every later call returns the error, and cudaGetErrorString gives the
// emulator's account of it. One device, one host thread at a time (a process-wide lock).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <cxxabi.h>
#include <dlfcn.h>
#include <sys/mman.h>
#include <unistd.h>

#include <boost/context/detail/fcontext.hpp>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CRAM_EMU_ASAN 1
#endif

#include "cram/emu/types.hpp"

namespace cram::emu {

// ---- the architecture being emulated --------------------------------------------------------------
// Limits from the CUDA C Programming Guide's table of compute capabilities. multiprocessors is small on purpose:
// grids sized from it stay small and their grid-stride loops take several turns.
struct profile {
    int cc = 90;  // compute capability x 10
    const char* arch = "sm_90";
    std::size_t shared_per_block = 48 * 1024;        // without an opt-in
    std::size_t shared_per_block_optin = 227 * 1024;  // with cudaFuncAttributeMaxDynamicSharedMemorySize
    std::size_t shared_per_sm = 228 * 1024;
    std::size_t static_shared_max = 48 * 1024;  // statically declared __shared__ variables
    int max_threads_per_block = 1024;
    int max_threads_per_sm = 2048;
    int max_blocks_per_sm = 32;
    int multiprocessors = 4;
    std::size_t memory = std::size_t(4) << 30;
};

inline profile profile_for(int cc) {
    profile p;
    p.cc = cc;
    if (cc == 75) {
        p.arch = "sm_75";
        p.shared_per_block_optin = 64 * 1024;
        p.shared_per_sm = 64 * 1024;
        p.max_threads_per_sm = 1024;
        p.max_blocks_per_sm = 16;
    } else if (cc == 80) {
        p.arch = "sm_80";
        p.shared_per_block_optin = 163 * 1024;
        p.shared_per_sm = 164 * 1024;
    } else {
        p.cc = 90;
    }
    return p;
}

namespace detail {
inline long env_long(const char* name, long fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    if (!end || *end) {
        std::fprintf(stderr, "cram emulated device: %s=%s is not a number; using %ld\n", name, v, fallback);
        return fallback;
    }
    return x;
}
inline profile profile_from_environment() {
    const long cc = env_long("CRAM_EMU_ARCH", 90);
    if (cc != 90 && cc != 80 && cc != 75)
        std::fprintf(stderr, "cram emulated device: CRAM_EMU_ARCH=%ld is not 90, 80 or 75; emulating sm_90\n", cc);
    profile p = profile_for(int(cc));
    p.multiprocessors = int(std::clamp(env_long("CRAM_EMU_SMS", 4), 1L, 256L));
    p.memory = std::size_t(std::max(16L, env_long("CRAM_EMU_MEMORY_MB", 4096))) << 20;
    return p;
}

struct allocation {
    std::size_t bytes;
    bool pinned;  // cudaMallocHost: host memory
};
struct kernel_attributes {
    std::size_t max_dynamic_shared;  // the opt-in
    std::size_t static_shared = 0;   // learnt when the kernel first runs
    bool max_set = false;
};
struct event_state {
    bool timing = true, recorded = false;
    std::chrono::steady_clock::time_point at{};
};
}  // namespace detail

// ---- the device's state ----------------------------------------------------------------------------
class device_state {
public:
    device_state() : prof_(detail::profile_from_environment()) {}

    std::recursive_mutex& lock() { return mutex_; }
    const profile& prof() const { return prof_; }
    // Switches the emulated architecture (tests of the sm_75 limits); the device must hold no allocation.
    void set_profile(const profile& p) { prof_ = p; }

    // Faults: sticky, as an illegal address is on a GPU.
    cudaError_t sticky() const { return sticky_; }
    void raise(cudaError_t code, std::string message, bool is_sticky) {
        std::fprintf(stderr, "cram emulated device: %s\n", message.c_str());
        if (is_sticky && sticky_ == cudaSuccess) sticky_ = code;
        last_ = code;
        messages_[code] = std::move(message);
    }
    // The error the next cudaGetLastError returns; with a sticky fault, that fault again after every call.
    cudaError_t take_last() {
        const cudaError_t e = last_;
        last_ = sticky_;
        return e;
    }
    cudaError_t peek_last() const { return last_; }
    void set_last(cudaError_t e) { last_ = e; }
    const char* message(cudaError_t code) const {
        const auto it = messages_.find(code);
        return it == messages_.end() ? nullptr : it->second.c_str();
    }
    // Forgets a fault: cudaDeviceReset, and the emulator's own tests of what faults.
    void clear_faults() {
        sticky_ = cudaSuccess;
        last_ = cudaSuccess;
        messages_.clear();
    }

    // Device allocations: base -> size.
    std::map<std::uintptr_t, detail::allocation>& allocations() { return allocations_; }
    std::size_t& used() { return used_; }
    // The live allocation holding [p, p + bytes), or null.
    const std::pair<const std::uintptr_t, detail::allocation>* find(const void* p, std::size_t bytes = 1,
                                                                     bool pinned = false) const {
        const auto a = reinterpret_cast<std::uintptr_t>(p);
        auto it = allocations_.upper_bound(a);
        if (it == allocations_.begin()) return nullptr;
        --it;
        if (it->second.pinned != pinned) return nullptr;
        const std::uintptr_t end = it->first + it->second.bytes;
        if (a < it->first || a > end || bytes > end - a) return nullptr;
        if (bytes == 0 && a == end && it->second.bytes != 0) return &*it;  // one past the end, nothing read
        return a < end || it->second.bytes == 0 ? &*it : nullptr;
    }

    std::map<const void*, detail::kernel_attributes>& kernels() { return kernels_; }
    detail::kernel_attributes& kernel(const void* k) {
        auto it = kernels_.find(k);
        if (it == kernels_.end()) it = kernels_.emplace(k, detail::kernel_attributes{prof_.shared_per_block}).first;
        return it->second;
    }
    std::set<const void*>& streams() { return streams_; }
    std::map<const void*, detail::event_state>& events() { return events_; }

private:
    std::recursive_mutex mutex_;
    profile prof_;
    cudaError_t sticky_ = cudaSuccess, last_ = cudaSuccess;
    std::map<cudaError_t, std::string> messages_;
    std::map<std::uintptr_t, detail::allocation> allocations_;
    std::size_t used_ = 0;
    std::map<const void*, detail::kernel_attributes> kernels_;
    std::set<const void*> streams_;
    std::map<const void*, detail::event_state> events_;
};

inline device_state& device() {
    static device_state d;
    return d;
}

// What the emulated libraries (cuBLASLt, NCCL) ask of the device.
inline int current_cc() { return device().prof().cc; }
inline bool device_range_ok(const void* p, std::size_t bytes) { return device().find(p, bytes) != nullptr; }
inline void fault(int code, std::string message) { device().raise(cudaError_t(code), std::move(message), true); }
inline void reset_faults() { device().clear_faults(); }

// ---- fibers, blocks and collectives ----------------------------------------------------------------
namespace detail {
namespace bctx = boost::context::detail;

enum class wait_kind : std::uint8_t { none, block, warp };
enum class thread_state : std::uint8_t { ready, waiting, done };

struct fiber_thread {
    uint3 idx{};
    unsigned linear = 0, warp = 0, lane = 0;
    bctx::fcontext_t ctx = nullptr;
    thread_state state = thread_state::ready;
    wait_kind waiting_for = wait_kind::none;
    std::byte* stack = nullptr;
    std::size_t stack_bytes = 0;
    void* fake_stack = nullptr;
};

// One collective in progress: the participants' argument pointers, the last to arrive runs the operation.
struct collective {
    const char* name = nullptr;
    unsigned mask = 0, arrived = 0;  // warp collectives: lane bits
    std::array<void*, 32> args{};
};

struct warp_state {
    unsigned exists = 0, exited = 0;  // lanes of the block's threads in this warp; lanes that returned
    std::vector<collective> open;
    std::uint32_t epoch = 0;  // completed full-warp collectives (race ordering)
};

// A piece of shared memory, for the race detector's messages.
struct shared_piece {
    std::size_t offset, bytes;
    const char* name;
    bool dynamic;
};

struct block_state {
    const char* kernel = "";
    dim3 block_idx, block_dim, grid_dim;
    unsigned threads = 0, done = 0;
    std::vector<fiber_thread>* fibers = nullptr;
    std::vector<warp_state> warps;
    // block-wide collectives (__syncthreads, cub): one open at a time
    const char* block_name = nullptr;
    const void* block_key = nullptr;
    unsigned block_arrived = 0;
    std::vector<void*> block_args;
    std::uint32_t block_epoch = 0;        // completed block collectives (race ordering)
    std::uint32_t syncthreads_count = 0;  // completed __syncthreads() (CUB's reuse rule)
    std::map<const void*, std::uint32_t> storage_used;  // cub TempStorage -> syncthreads_count at its last use
    // the scheduler's context while a fiber runs
    bctx::fcontext_t scheduler = nullptr;
    const void* main_stack_bottom = nullptr;
    std::size_t main_stack_bytes = 0;
    void* main_fake_stack = nullptr;
    void (*invoke)(void*) = nullptr;
    void* payload = nullptr;
    std::string fault;  // set: the block stops
    cudaError_t fault_code = cudaSuccess;
    bool aborting = false;  // after a fault: waiting fibers are resumed only to unwind
    // reads of shared bytes no thread had written yet: a fault unless written by another thread before the next
    // barrier (then it is a race, reported at that write)
    std::vector<std::pair<std::size_t, int>> unwritten_reads;
    // shared memory
    std::size_t dynamic_bytes = 0, static_bytes = 0, used = 0;
    std::vector<std::pair<const void*, std::size_t>> statics;  // key -> offset
    std::vector<shared_piece> pieces;
    std::uint32_t serial = 0;  // this block's number since the program started (the shadow's validity)
};

// Thrown inside a fiber to unwind its frames (destructors run) when its block faults.
struct fiber_abort {};

inline block_state* g_block = nullptr;
inline fiber_thread* g_thread = nullptr;

inline std::string dim_str(uint3 d) {
    char s[48];  // snprintf, not operator+: GCC 12's -Wrestrict misfires on the concatenation
    std::snprintf(s, sizeof s, "(%u,%u,%u)", d.x, d.y, d.z);
    return s;
}
inline std::string thread_str(const block_state& b, const fiber_thread& t) {
    (void)b;
    return "thread " + dim_str(t.idx) + " [warp " + std::to_string(t.warp) + " lane " + std::to_string(t.lane) + "]";
}
inline std::string where(const block_state& b) {
    return std::string("kernel ") + b.kernel + ", block " + dim_str(b.block_idx);
}
inline std::string hex(unsigned v) {
    char s[16];
    std::snprintf(s, sizeof s, "0x%08x", v);
    return s;
}

// ---- the shared-memory arena and its shadow --------------------------------------------------------
constexpr std::size_t arena_bytes = std::size_t(512) << 10;  // room for 227 KiB and the poisoned gaps
constexpr std::size_t shared_gap = 64;                       // poisoned bytes between two pieces

struct shadow_entry {
    std::uint32_t serial = 0;  // block serial the entry belongs to (others: not yet written this block)
    std::int32_t writer = -1;  // linear thread id of the last write, -1 none
    std::uint32_t w_block = 0, w_warp = 0;
    std::int32_t reader = -1;  // a reader since the last write; -2: several
    std::int32_t reader_warp = -1;  // the readers' warp when they share one, else -1
    std::uint32_t r_block = 0, r_warp = 0;
};

struct arena_state {
    std::byte* base = nullptr;
    std::vector<shadow_entry> shadow;
    arena_state() {
        void* p = nullptr;
        if (posix_memalign(&p, 4096, arena_bytes) != 0) std::abort();
        base = static_cast<std::byte*>(p);
        shadow.resize(arena_bytes);
    }
};
inline arena_state& arena() {
    static arena_state a;
    return a;
}
// The range the race detector watches (the arena while a block runs; empty otherwise) and who accesses it.
inline std::uintptr_t g_shared_lo = 0, g_shared_bytes = 0;
inline int g_accessor = -1;  // >= 0: the emulator acts for this thread (WMMA's per-lane loads and stores)
inline bool g_race_enabled = true;

inline void poison(void* p, std::size_t n) {
#if defined(CRAM_EMU_ASAN)
    ASAN_POISON_MEMORY_REGION(p, n);
#else
    (void)p, (void)n;
#endif
}
inline void unpoison(void* p, std::size_t n) {
#if defined(CRAM_EMU_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(p, n);
#else
    (void)p, (void)n;
#endif
}

[[noreturn]] inline void kernel_fault(cudaError_t code, std::string message);
inline void check_unwritten_reads(block_state& b);

inline std::size_t take_shared(block_state& b, std::size_t bytes, std::size_t align) {
    const std::size_t start = b.used == 0 ? 0 : b.used + shared_gap;
    const std::size_t offset = (start + align - 1) / align * align;
    if (offset + bytes > arena_bytes)
        kernel_fault(cudaErrorLaunchOutOfResources, where(b) + ": shared memory arena exhausted");
    std::byte* p = arena().base + offset;
    unpoison(p, bytes);
    std::memset(p, 0xFF, bytes);  // shared memory starts as garbage: NaN in every float format
    b.used = offset + bytes;
    return offset;
}

// ---- fiber switching ------------------------------------------------------------------------------
inline void start_switch(void** save, const void* bottom, std::size_t bytes) {
#if defined(CRAM_EMU_ASAN)
    __sanitizer_start_switch_fiber(save, bottom, bytes);
#else
    (void)save, (void)bottom, (void)bytes;
#endif
}
inline void finish_switch(void* save, const void** bottom_old, std::size_t* bytes_old) {
#if defined(CRAM_EMU_ASAN)
    __sanitizer_finish_switch_fiber(save, bottom_old, bytes_old);
#else
    (void)save, (void)bottom_old, (void)bytes_old;
#endif
}

// From a fiber back to the block's scheduler; returns when the scheduler resumes this fiber.
inline void yield_to_scheduler() {
    fiber_thread* me = g_thread;
    block_state* b = g_block;
    start_switch(&me->fake_stack, b->main_stack_bottom, b->main_stack_bytes);
    const bctx::transfer_t t = bctx::jump_fcontext(b->scheduler, nullptr);
    finish_switch(me->fake_stack, &b->main_stack_bottom, &b->main_stack_bytes);
    b->scheduler = t.fctx;
    g_thread = me;
    if (b->aborting) throw fiber_abort{};
}
// Resumed fibers that had left for good: none, ever. Volatile, so that the compiler cannot prove leave_fiber never
// returns: AddressSanitizer instruments every call of a noreturn function with __asan_handle_no_return, a system
// call (sigaltstack) for each of the millions of threads that exit.
inline volatile bool g_fiber_resumed_after_leaving = false;

// Leaves the fiber for good (it returned, or the block faulted). Never returns, though not declared so (above).
inline void leave_fiber() {
    block_state* b = g_block;
    start_switch(nullptr, b->main_stack_bottom, b->main_stack_bytes);
    bctx::jump_fcontext(b->scheduler, nullptr);
    g_fiber_resumed_after_leaving = true;
    if (g_fiber_resumed_after_leaving) std::abort();
}

[[noreturn]] inline void kernel_fault(cudaError_t code, std::string message) {
    block_state* b = g_block;
    if (!b || !g_thread) {  // not inside a kernel: an emulator misuse on the host
        std::fprintf(stderr, "cram emulated device: %s\n", message.c_str());
        std::abort();
    }
    if (b->fault.empty()) {
        b->fault = std::move(message);
        b->fault_code = code;
    }
    throw fiber_abort{};  // unwinds the kernel's frames to fiber_entry
}

inline fiber_thread& thread_at(block_state& b, unsigned linear) { return (*b.fibers)[linear]; }

// A thread returned from the kernel: a barrier or a collective still waiting for it can never complete.
inline void thread_exited() {
    block_state& b = *g_block;
    fiber_thread& me = *g_thread;
    warp_state& w = b.warps[me.warp];
    me.state = thread_state::done;
    ++b.done;
    w.exited |= 1u << me.lane;
    if (b.block_arrived > 0 && b.fault.empty()) {
        b.fault = where(b) + ": " + thread_str(b, me) + " exited while " + std::to_string(b.block_arrived) +
                  " thread(s) of the block wait at " + b.block_name +
                  ", which can then never complete (a barrier in code some threads skip)";
        b.fault_code = cudaErrorLaunchFailure;
    }
    for (const collective& c : w.open)
        if ((c.mask & (1u << me.lane)) && b.fault.empty()) {
            b.fault = where(b) + ": " + thread_str(b, me) + " exited while lanes " + hex(c.arrived) +
                      " of its warp wait at " +
                      c.name + " with mask " + hex(c.mask) + ", which names it";
            b.fault_code = cudaErrorLaunchFailure;
        }
    leave_fiber();
}

}  // namespace detail

// The calling thread's coordinates (threadIdx and friends).
inline const detail::fiber_thread& this_thread() {
    if (!detail::g_thread) {
        std::fprintf(stderr, "cram emulated device: threadIdx/blockIdx read outside a kernel\n");
        std::abort();
    }
    return *detail::g_thread;
}
inline const detail::block_state& this_block() {
    this_thread();
    return *detail::g_block;
}

// Every thread of the block calls this with the same name and key (a cub TempStorage, or null); returns when
// all have. The last to arrive runs op(args), args[i] being thread i's `mine`. A barrier for the race detector.
template <class Op>
void block_collective(const char* name, const void* key, void* mine, Op&& op) {
    using namespace detail;
    block_state& b = *g_block;
    fiber_thread& me = *g_thread;
    if (b.done > 0) {
        unsigned first = 0;
        while (thread_at(b, first).state != thread_state::done) ++first;
        kernel_fault(cudaErrorLaunchFailure, where(b) + ": " + thread_str(b, me) + " reached " + name + " after " +
                                                 std::to_string(b.done) + " thread(s) of the block exited (first: " +
                                                 thread_str(b, thread_at(b, first)) +
                                                 "): the barrier can never complete");
    }
    if (b.block_arrived == 0) {
        b.block_name = name;
        b.block_key = key;
    } else if (std::strcmp(b.block_name, name) != 0 || b.block_key != key) {
        kernel_fault(cudaErrorLaunchFailure, where(b) + ": " + thread_str(b, me) + " reached " + name + " while " +
                                                 std::to_string(b.block_arrived) + " thread(s) wait at " +
                                                 b.block_name + " (divergent barriers)");
    }
    if (key && b.block_arrived == 0) {
        const auto it = b.storage_used.find(key);
        if (it != b.storage_used.end() && it->second == b.syncthreads_count)
            kernel_fault(cudaErrorLaunchFailure,
                         where(b) + ": " + name +
                             " reuses a TempStorage without a __syncthreads() since its last use (CUB requires one "
                             "before temporary storage is reused)");
    }
    b.block_args[me.linear] = mine;
    if (++b.block_arrived < b.threads) {
        me.state = thread_state::waiting;
        me.waiting_for = wait_kind::block;
        yield_to_scheduler();
        return;
    }
    op(b.block_args);
    if (!b.unwritten_reads.empty()) check_unwritten_reads(b);
    b.block_arrived = 0;
    ++b.block_epoch;
    if (key)
        b.storage_used[key] = b.syncthreads_count;
    else
        ++b.syncthreads_count;
    for (fiber_thread& t : *b.fibers)
        if (t.state == thread_state::waiting && t.waiting_for == wait_kind::block) {
            t.state = thread_state::ready;
            t.waiting_for = wait_kind::none;
        }
}

// Every lane named in `mask` calls this with the same mask and name; returns when all have. The last to arrive
// runs op(args), args[lane] being that lane's `mine` (null for lanes outside the mask).
template <class Op>
void warp_collective(const char* name, unsigned mask, void* mine, Op&& op) {
    using namespace detail;
    block_state& b = *g_block;
    fiber_thread& me = *g_thread;
    warp_state& w = b.warps[me.warp];
    const unsigned bit = 1u << me.lane;
    if (!(mask & bit))
        kernel_fault(cudaErrorIllegalInstruction, where(b) + ": " + thread_str(b, me) + " calls " + name +
                                                      " with mask " + hex(mask) + ", which does not name the caller");
    if (mask & ~w.exists)
        kernel_fault(cudaErrorIllegalInstruction,
                     where(b) + ": " + thread_str(b, me) + " calls " + name + " with mask " + hex(mask) +
                         ", naming lanes " + hex(mask & ~w.exists) + " that this warp does not have (block of " +
                         std::to_string(b.threads) + " threads)");
    if (mask & w.exited)
        kernel_fault(cudaErrorLaunchFailure, where(b) + ": " + thread_str(b, me) + " calls " + name + " with mask " +
                                                 hex(mask) + ", naming lanes " + hex(mask & w.exited) +
                                                 " that have exited: it can never complete");
    collective* slot = nullptr;
    for (collective& c : w.open) {
        if (c.mask == mask && std::strcmp(c.name, name) == 0 && !(c.arrived & bit)) {
            slot = &c;
            break;
        }
        if (c.mask & mask)
            kernel_fault(cudaErrorLaunchFailure,
                         where(b) + ": lanes of warp " + std::to_string(me.warp) + " disagree: lane " +
                             std::to_string(me.lane) + " calls " + name + " with mask " + hex(mask) + " while lanes " +
                             hex(c.arrived) + " wait at " + c.name + " with mask " + hex(c.mask));
    }
    if (!slot) {
        w.open.push_back(collective{name, mask, 0, {}});
        slot = &w.open.back();
    }
    slot->args[me.lane] = mine;
    slot->arrived |= bit;
    if (slot->arrived != mask) {
        me.state = thread_state::waiting;
        me.waiting_for = wait_kind::warp;
        yield_to_scheduler();
        return;
    }
    const std::array<void*, 32> args = slot->args;
    w.open.erase(w.open.begin() + (slot - w.open.data()));
    op(args);
    if (mask == w.exists) ++w.epoch;
    for (unsigned l = 0; l < 32; ++l)
        if ((mask & (1u << l)) && l != me.lane) {
            fiber_thread& t = thread_at(b, me.warp * 32 + l);
            t.state = thread_state::ready;
            t.waiting_for = wait_kind::none;
        }
}

// ---- shared memory -------------------------------------------------------------------------------
// The block's instance of a statically declared __shared__ variable (CRAM_SHARED): keyed by the address of a
// static of the declaring function, so every thread of the block gets the same object.
template <class T>
T& static_shared(const void* key, const char* name) {
    static_assert(std::is_trivially_copyable_v<T>, "__shared__ variables have no constructors");
    using namespace detail;
    block_state& b = *g_block;
    for (const auto& [k, offset] : b.statics)
        if (k == key) return *reinterpret_cast<T*>(arena().base + offset);
    const profile& p = device().prof();
    if (b.static_bytes + sizeof(T) > p.static_shared_max)
        kernel_fault(cudaErrorLaunchOutOfResources,
                     where(b) + ": __shared__ " + name + " takes the kernel's static shared memory to " +
                         std::to_string(b.static_bytes + sizeof(T)) + " bytes, over the " +
                         std::to_string(p.static_shared_max) + " a kernel may declare");
    if (b.static_bytes + sizeof(T) + b.dynamic_bytes > p.shared_per_block_optin)
        kernel_fault(cudaErrorLaunchOutOfResources,
                     where(b) + ": __shared__ " + name + " takes static + dynamic shared memory to " +
                         std::to_string(b.static_bytes + sizeof(T) + b.dynamic_bytes) + " bytes, over " + p.arch +
                         "'s " + std::to_string(p.shared_per_block_optin) + " per block");
    const std::size_t offset = take_shared(b, sizeof(T), std::max<std::size_t>(alignof(T), 16));
    b.static_bytes += sizeof(T);
    b.statics.emplace_back(key, offset);
    b.pieces.push_back({offset, sizeof(T), name, false});
    return *reinterpret_cast<T*>(arena().base + offset);
}
// The block's dynamic shared memory (CRAM_DYNAMIC_SHARED), as many bytes as the launch asked for.
template <class T>
T* dynamic_shared(const char* name) {
    using namespace detail;
    block_state& b = *g_block;
    for (shared_piece& piece : b.pieces)
        if (piece.dynamic) {
            if (piece.name == nullptr || std::strcmp(piece.name, "dynamic") == 0) piece.name = name;
            return reinterpret_cast<T*>(arena().base + piece.offset);
        }
    return reinterpret_cast<T*>(arena().base);  // no dynamic bytes: every access is outside the arena's pieces
}

// ---- the race detector ------------------------------------------------------------------------------
namespace detail {
inline std::string shared_location(const block_state& b, std::size_t offset) {
    for (const shared_piece& p : b.pieces)
        if (offset >= p.offset && offset < p.offset + p.bytes)
            return std::string(p.dynamic ? "dynamic shared '" : "__shared__ '") + p.name + "' + " +
                   std::to_string(offset - p.offset);
    return "shared offset " + std::to_string(offset);
}
inline std::string thread_name(const block_state& b, int linear) {
    if (linear < 0) return linear == -2 ? "several threads" : "no thread";
    return thread_str(b, (*b.fibers)[unsigned(linear)]);
}
// Whether an access by thread `t` at (block epoch, warp epoch) is ordered before now, for thread `now`.
inline bool ordered(const block_state& b, int, std::uint32_t block_epoch, std::uint32_t warp_epoch, int warp_of_t,
                    unsigned now_warp) {
    if (block_epoch != b.block_epoch) return true;
    return warp_of_t >= 0 && unsigned(warp_of_t) == now_warp && warp_epoch != b.warps[now_warp].epoch;
}
[[noreturn]] inline void race(const block_state& b, const char* hazard, int first, int second, std::size_t offset,
                              const char* second_does) {
    kernel_fault(cudaErrorLaunchFailure, "racecheck: " + where(b) + ": " + hazard + " hazard on " +
                                             shared_location(b, offset) + ": " + thread_name(b, second) + " " +
                                             second_does + " it after " + thread_name(b, first) +
                                             " with no __syncthreads() or __syncwarp() between");
}
}  // namespace detail

namespace detail {
// At a barrier and at the block's end: a shared byte read before any thread wrote it, and still not written (a
// write by another thread in between is reported as a race when it happens).
inline void check_unwritten_reads(block_state& b) {
    for (const auto& [off, t] : b.unwritten_reads) {
        const shadow_entry& e = arena().shadow[off];
        if (e.serial != b.serial || e.writer == -1) {
            b.unwritten_reads.clear();
            if (g_thread)
                kernel_fault(cudaErrorLaunchFailure, "initcheck: " + where(b) + ": " + thread_name(b, t) + " reads " +
                                                         shared_location(b, off) +
                                                         ", which no thread of the block has written");
            b.fault = "initcheck: " + where(b) + ": " + thread_name(b, t) + " reads " + shared_location(b, off) +
                      ", which no thread of the block has written";
            b.fault_code = cudaErrorLaunchFailure;
            return;
        }
    }
    b.unwritten_reads.clear();
}
}  // namespace detail

// Called for every instrumented load and store (race_hooks.cpp) inside the arena while a block runs.
inline void note_shared_access(std::uintptr_t address, std::size_t bytes, bool write) {
    using namespace detail;
    if (!g_race_enabled || !g_block || !g_thread) return;
    const block_state& b = *g_block;
    if (!b.fault.empty()) return;
    const int t = g_accessor >= 0 ? g_accessor : int(g_thread->linear);
    const unsigned warp = unsigned(t) / 32;
    const std::uint32_t be = b.block_epoch, we = b.warps[warp].epoch;
    arena_state& a = arena();
    const std::size_t first = address - g_shared_lo;
    for (std::size_t off = first; off < first + bytes && off < arena_bytes; ++off) {
        shadow_entry& e = a.shadow[off];
        if (e.serial != b.serial) e = shadow_entry{b.serial};
        if (write) {
            if (e.writer >= 0 && e.writer != t &&
                !ordered(b, e.writer, e.w_block, e.w_warp, e.writer / 32, warp))
                race(b, "write-after-write", e.writer, t, off, "writes");
            if (e.reader != -1 && e.reader != t && !ordered(b, e.reader, e.r_block, e.r_warp, e.reader_warp, warp))
                race(b, "write-after-read", e.reader, t, off, "writes");
            e.writer = t;
            e.w_block = be;
            e.w_warp = we;
            e.reader = -1;
            e.reader_warp = -1;
        } else {
            if (e.writer == -1 && g_block->unwritten_reads.size() < 64) g_block->unwritten_reads.emplace_back(off, t);
            if (e.writer >= 0 && e.writer != t && !ordered(b, e.writer, e.w_block, e.w_warp, e.writer / 32, warp))
                race(b, "read-after-write", e.writer, t, off, "reads");
            if (e.reader == -1 || ordered(b, e.reader, e.r_block, e.r_warp, e.reader_warp, warp)) {
                e.reader = t;
                e.reader_warp = int(warp);
            } else if (e.reader != t) {
                e.reader = -2;
                if (e.reader_warp != int(warp)) e.reader_warp = -1;
            }
            e.r_block = be;
            e.r_warp = we;
        }
    }
}

// The emulator acts for lane `linear` of the block while this lives (WMMA's loads and stores).
class acting_for {
public:
    explicit acting_for(unsigned linear) : saved_(detail::g_accessor) { detail::g_accessor = int(linear); }
    ~acting_for() { detail::g_accessor = saved_; }
    acting_for(const acting_for&) = delete;
    acting_for& operator=(const acting_for&) = delete;

private:
    int saved_;
};

// ---- running a launch --------------------------------------------------------------------------------
namespace detail {

struct stack_pool {
    std::size_t bytes = std::size_t(std::clamp(env_long("CRAM_EMU_STACK_KB", 128), 64L, 8192L)) << 10;
    std::vector<std::byte*> stacks;
    // stacks of a faulted block, which fibers left mid-frame: unpoisoned whole before reuse (every stack for every
    // block would cost a memset of its shadow each time)
    std::vector<bool> dirty;
    std::byte* get(std::size_t i) {
        while (stacks.size() <= i) {
            const std::size_t guard = std::size_t(sysconf(_SC_PAGESIZE));
            void* p = mmap(nullptr, bytes + guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
            if (p == MAP_FAILED) {
                std::fprintf(stderr, "cram emulated device: cannot map a fiber stack\n");
                std::abort();
            }
            mprotect(p, guard, PROT_NONE);  // a fiber that overflows its stack faults instead of corrupting
            stacks.push_back(static_cast<std::byte*>(p) + guard);
            dirty.push_back(false);
        }
        return stacks[i];
    }
};
inline stack_pool& stacks() {
    static stack_pool s;
    return s;
}

inline void fiber_entry(bctx::transfer_t t) {
    block_state* b = g_block;
    b->scheduler = t.fctx;
    finish_switch(nullptr, &b->main_stack_bottom, &b->main_stack_bytes);
    try {
        b->invoke(b->payload);
    } catch (const fiber_abort&) {
        g_thread->state = thread_state::done;
        leave_fiber();
    }
    thread_exited();
}

inline std::uint32_t& block_serial() {
    static std::uint32_t s = 0;
    return s;
}

// Runs one block to completion or to its first fault; returns the fault ("" when none).
inline void run_block(block_state& b, std::vector<fiber_thread>& fibers) {
    const unsigned n = b.threads;
    stack_pool& pool = stacks();
    fibers.assign(n, fiber_thread{});
    b.fibers = &fibers;
    b.warps.assign((n + 31) / 32, warp_state{});
    for (unsigned i = 0; i < n; ++i) {
        fiber_thread& t = fibers[i];
        t.linear = i;
        t.idx = {i % b.block_dim.x, (i / b.block_dim.x) % b.block_dim.y, i / (b.block_dim.x * b.block_dim.y)};
        t.warp = i / 32;
        t.lane = i % 32;
        b.warps[t.warp].exists |= 1u << t.lane;
        t.stack = pool.get(i);
        t.stack_bytes = pool.bytes;
        // AddressSanitizer's redzones of frames that never returned stay poisoned: those of fiber_entry and what it
        // calls to leave (the top of every used stack), and a faulted block's whole stacks
        if (pool.dirty[i]) {
            unpoison(t.stack, t.stack_bytes);
            pool.dirty[i] = false;
        } else {
            constexpr std::size_t top = 16 << 10;
            unpoison(t.stack + t.stack_bytes - top, top);
        }
        t.ctx = bctx::make_fcontext(t.stack + t.stack_bytes, t.stack_bytes, fiber_entry);
    }
    b.block_args.assign(n, nullptr);
    for (;;) {
        bool ran = false;
        for (unsigned i = 0; i < n && b.fault.empty(); ++i) {
            fiber_thread& t = fibers[i];
            if (t.state != thread_state::ready) continue;
            ran = true;
            g_thread = &t;
            start_switch(&b.main_fake_stack, t.stack, t.stack_bytes);
            const bctx::transfer_t back = bctx::jump_fcontext(t.ctx, nullptr);
            finish_switch(b.main_fake_stack, nullptr, nullptr);
            t.ctx = back.fctx;
        }
        g_thread = nullptr;
        if (!b.fault.empty()) {
            // unwind the fibers still waiting, so that their frames' destructors run
            b.aborting = true;
            for (unsigned i = 0; i < n; ++i) pool.dirty[i] = true;
            for (fiber_thread& t : fibers) {
                if (t.state != thread_state::waiting) continue;
                g_thread = &t;
                start_switch(&b.main_fake_stack, t.stack, t.stack_bytes);
                bctx::jump_fcontext(t.ctx, nullptr);
                finish_switch(b.main_fake_stack, nullptr, nullptr);
            }
            g_thread = nullptr;
            return;
        }
        if (b.done == n) {
            check_unwritten_reads(b);
            return;
        }
        if (!ran) {
            // every live thread waits for one that never comes
            std::string who;
            if (b.block_arrived > 0)
                who += std::to_string(b.block_arrived) + " thread(s) wait at " + b.block_name;
            for (std::size_t w = 0; w < b.warps.size(); ++w)
                for (const collective& c : b.warps[w].open)
                    who += (who.empty() ? "" : "; ") + std::string("warp ") + std::to_string(w) + " lanes " +
                           hex(c.arrived) + " wait at " + c.name + " for lanes " + hex(c.mask & ~c.arrived);
            b.fault = where(b) + ": deadlock: " + who + " (the threads they wait for are blocked elsewhere)";
            b.fault_code = cudaErrorLaunchFailure;
            return;
        }
    }
}

inline std::string kernel_name(const char* expression, const void* kernel) {
    std::string name = expression;
    if (name.find('<') != std::string::npos && name.find("::") == std::string::npos) return name;
    Dl_info info{};
    if (dladdr(kernel, &info) && info.dli_sname) {
        int status = 0;
        char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
        if (status == 0 && demangled) {
            name = demangled;
            std::free(demangled);
            const std::size_t paren = name.find('(');  // drop the parameter list
            if (paren != std::string::npos) name.resize(paren);
        }
    }
    return name;
}

template <class P>
const char* parameter_kind() {
    if constexpr (std::is_pointer_v<P>)
        return "pointer";
    else
        return "value";
}

// A pointer argument must point into a live device allocation (null is allowed: optional pointers).
template <class P>
bool check_argument(const std::string& kernel, std::size_t index, const P& value, std::string& why) {
    if constexpr (std::is_pointer_v<P>) {
        if (value == nullptr) return true;
        const device_state& d = device();
        if (d.find(value, 0)) return true;
        char buf[64];
        std::snprintf(buf, sizeof buf, "%p", static_cast<const void*>(value));
        why = "kernel " + kernel + ": argument " + std::to_string(index) + " (" + std::string(buf) + ") is " +
              (d.find(value, 0, true) ? "pinned host memory (cudaMallocHost)"
                                      : "not inside a live device allocation (a host pointer, or one freed)");
        return false;
    } else {
        (void)kernel, (void)index, (void)value, (void)why;
        return true;
    }
}

template <class... P, std::size_t... I>
bool check_arguments(const std::string& kernel, const std::tuple<P...>& args, std::string& why,
                     std::index_sequence<I...>) {
    return (check_argument(kernel, I, std::get<I>(args), why) && ...);
}

template <class F, class Tuple>
struct kernel_call {
    F* kernel;
    Tuple* args;
    static void run(void* self) {
        auto* c = static_cast<kernel_call*>(self);
        std::apply(*c->kernel, *c->args);
    }
};

inline bool valid_stream(cudaStream_t s) { return s == nullptr || device().streams().count(s) > 0; }

}  // namespace detail

// The launch CRAM_LAUNCH makes: configuration first, arguments at the call.
template <class... P>
class kernel_launch {
public:
    using kernel_t = void(P...);
    kernel_launch(const char* expression, dim3 grid, dim3 block, std::size_t shared, cudaStream_t stream,
                  kernel_t* kernel)
        : expression_(expression), grid_(grid), block_(block), shared_(shared), stream_(stream), kernel_(kernel) {}

    template <class... A>
    void operator()(A&&... arguments) const {
        static_assert(sizeof...(A) == sizeof...(P), "CRAM_LAUNCH: wrong number of kernel arguments");
        std::tuple<std::remove_cv_t<P>...> args(std::forward<A>(arguments)...);
        run(args);
    }

private:
    template <class Tuple>
    void run(Tuple& args) const {
        using namespace detail;
        device_state& d = device();
        const std::lock_guard<std::recursive_mutex> lock(d.lock());
        if (d.sticky() != cudaSuccess) {
            d.set_last(d.sticky());
            return;
        }
        const profile& p = d.prof();
        const std::string name = kernel_name(expression_, reinterpret_cast<const void*>(kernel_));
        const std::uint64_t threads = std::uint64_t(block_.x) * block_.y * block_.z;
        const auto refuse = [&](cudaError_t e, const std::string& why) {
            d.raise(e, "launch of " + name + " refused: " + why, false);
        };
        if (threads == 0 || threads > std::uint64_t(p.max_threads_per_block) || block_.x > 1024 || block_.y > 1024 ||
            block_.z > 64)
            return refuse(cudaErrorInvalidConfiguration,
                          "block " + dim_str(block_) + " (" + std::to_string(threads) + " threads; at most " +
                              std::to_string(p.max_threads_per_block) + ", z at most 64)");
        if (grid_.x == 0 || grid_.y == 0 || grid_.z == 0 || grid_.x > 2147483647u || grid_.y > 65535 ||
            grid_.z > 65535)
            return refuse(cudaErrorInvalidConfiguration, "grid " + dim_str(grid_));
        const kernel_attributes& attributes = d.kernel(reinterpret_cast<const void*>(kernel_));
        if (shared_ > attributes.max_dynamic_shared)
            return refuse(cudaErrorInvalidValue,
                          std::to_string(shared_) + " bytes of dynamic shared memory, over the kernel's limit of " +
                              std::to_string(attributes.max_dynamic_shared) +
                              (attributes.max_set ? " (its cudaFuncAttributeMaxDynamicSharedMemorySize)"
                                                  : " (48 KiB without cudaFuncAttributeMaxDynamicSharedMemorySize)"));
        if (!valid_stream(stream_)) return refuse(cudaErrorInvalidResourceHandle, "the stream is not a live stream");
        std::string why;
        if (!check_arguments(name, args, why, std::index_sequence_for<P...>{})) {
            d.raise(cudaErrorIllegalAddress, why, true);
            return;
        }
        kernel_call<kernel_t, Tuple> call{kernel_, &args};
        std::vector<fiber_thread> fibers;
        for (unsigned z = 0; z < grid_.z; ++z)
            for (unsigned y = 0; y < grid_.y; ++y)
                for (unsigned x = 0; x < grid_.x; ++x) {
                    block_state b;
                    b.kernel = name.c_str();
                    b.block_idx = dim3(x, y, z);
                    b.block_dim = block_;
                    b.grid_dim = grid_;
                    b.threads = unsigned(threads);
                    b.invoke = &kernel_call<kernel_t, Tuple>::run;
                    b.payload = &call;
                    b.serial = ++block_serial();
                    b.dynamic_bytes = shared_;
                    arena_state& a = arena();
                    poison(a.base, arena_bytes);
                    if (shared_ > 0) {
                        b.pieces.push_back({take_shared(b, shared_, 128), shared_, "dynamic", true});
                    }
                    g_block = &b;
                    g_shared_lo = reinterpret_cast<std::uintptr_t>(a.base);
                    g_shared_bytes = arena_bytes;
                    run_block(b, fibers);
                    g_shared_lo = g_shared_bytes = 0;
                    g_block = nullptr;
                    g_thread = nullptr;
                    unpoison(a.base, arena_bytes);
                    d.kernel(reinterpret_cast<const void*>(kernel_)).static_shared = b.static_bytes;
                    if (!b.fault.empty()) {
                        d.raise(b.fault_code, b.fault, true);
                        return;
                    }
                }
    }

    const char* expression_;
    dim3 grid_, block_;
    std::size_t shared_;
    cudaStream_t stream_;
    kernel_t* kernel_;
};

template <class... P>
kernel_launch<P...> launch(const char* expression, dim3 grid, dim3 block, std::size_t shared, cudaStream_t stream,
                           void (*kernel)(P...)) {
    return kernel_launch<P...>(expression, grid, block, shared, stream, kernel);
}

}  // namespace cram::emu
