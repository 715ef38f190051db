# Finds the CUDA compiler and toolkit when CRAM_CUDA asks for them (ON: required, AUTO: when nvcc is
# there) and sets CRAM_HAS_CUDA. Included from the top-level CMakeLists.txt.
set(CRAM_HAS_CUDA OFF)
if(NOT CRAM_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  # nvcc is rarely on PATH on a fresh machine; the toolkit's default location is the next best guess.
  if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
      # No GPU to detect on build machines: name the targets: Turing (sm_75, the cramming paper's RTX 2080 Ti,
      # fp16), Ampere and Hopper (bf16). sm_70 (Volta) needs a CUDA 12 toolkit: CUDA 13 dropped it.
      set(CMAKE_CUDA_ARCHITECTURES 75 80 90)
    endif()
    enable_language(CUDA)
    find_package(CUDAToolkit REQUIRED)
    set(CRAM_HAS_CUDA ON)
  elseif(CRAM_CUDA STREQUAL "ON")
    message(FATAL_ERROR "CRAM_CUDA=ON but no CUDA compiler was found (set CMAKE_CUDA_COMPILER)")
  endif()
endif()
message(STATUS "cram: CUDA backend ${CRAM_HAS_CUDA}")
