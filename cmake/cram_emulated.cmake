# The emulated CUDA device (include/cram/emu/, docs/cuda.md "The emulated device"): the CUDA backend's own source
# compiled by the host compiler against host versions of the toolkit's headers, its kernels run on the CPU as
# fibers. Needs Boost.Context (Debian: libboost-context-dev) and no CUDA toolkit. Sets CRAM_HAS_CUDA_EMULATED and,
# when found, the target cram::cuda_emulated, which a program links instead of cram::cuda.
# CRAM_EMU_SANITIZE (ON by default) builds emulated programs with AddressSanitizer and UBSan, AddressSanitizer in
# its out-of-line mode: the race detector (include/cram/emu/race_hooks.cpp) sees every load and store through it.
set(CRAM_CUDA_EMULATED "AUTO" CACHE STRING "Build the CUDA suites and app against the emulated device: ON, OFF or AUTO")
set_property(CACHE CRAM_CUDA_EMULATED PROPERTY STRINGS ON OFF AUTO)
option(CRAM_EMU_SANITIZE "Build emulated programs with AddressSanitizer (and the race detector) and UBSan" ON)
set(CRAM_HAS_CUDA_EMULATED OFF)
if(NOT CRAM_CUDA_EMULATED STREQUAL "OFF")
  if(CRAM_CUDA_EMULATED STREQUAL "ON")
    find_package(Boost 1.74 CONFIG REQUIRED COMPONENTS context)
  else()
    find_package(Boost 1.74 CONFIG QUIET COMPONENTS context)
  endif()
  if(TARGET Boost::context)
    set(CRAM_HAS_CUDA_EMULATED ON)
    add_library(cram_cuda_emulated INTERFACE)
    add_library(cram::cuda_emulated ALIAS cram_cuda_emulated)
    add_library(cram::emu ALIAS cram_cuda_emulated)  # the name tests/headers.cmake checks cram/emu/ against
    # the toolkit's header names, resolved to the emulator's: only on emulated programs' include path
    target_include_directories(cram_cuda_emulated INTERFACE ${PROJECT_SOURCE_DIR}/include/cram/emu/toolkit)
    target_compile_definitions(cram_cuda_emulated INTERFACE CRAM_CUDA_EMULATED=1 CRAM_WITH_CUDA=1)
    target_link_libraries(cram_cuda_emulated INTERFACE cram_core Boost::context ${CMAKE_DL_LIBS})
    # CUDA's `#pragma unroll` means nothing to the host compiler. -O1 (after the build type's -O3, so it wins): the
    # emulated suites compile in about half the time, and run within CI's minutes all the same (docs/cuda.md)
    target_compile_options(cram_cuda_emulated INTERFACE -Wno-unknown-pragmas -O1)
    target_sources(cram_cuda_emulated INTERFACE ${PROJECT_SOURCE_DIR}/include/cram/emu/race_hooks.cpp)
    if(CRAM_EMU_SANITIZE)
      set(cram_emu_sanitizers -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
      target_compile_options(cram_cuda_emulated INTERFACE ${cram_emu_sanitizers}
                                                          --param=asan-instrumentation-with-call-threshold=0)
      target_link_options(cram_cuda_emulated INTERFACE ${cram_emu_sanitizers})
    endif()
    # kernel names in the emulator's messages come from the dynamic symbol table (dladdr)
    target_link_options(cram_cuda_emulated INTERFACE -rdynamic)
  elseif(CRAM_CUDA_EMULATED STREQUAL "ON")
    message(FATAL_ERROR "CRAM_CUDA_EMULATED=ON but Boost.Context was not found (Debian: libboost-context-dev)")
  endif()
endif()
message(STATUS "cram: emulated CUDA device ${CRAM_HAS_CUDA_EMULATED} (sanitizers ${CRAM_EMU_SANITIZE})")
