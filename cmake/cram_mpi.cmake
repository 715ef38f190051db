# Finds what data-parallel training runs on (docs/distributed.md), both optional: MPI (its C API, through
# FindMPI's CXX component; Debian's
# libopenmpi-dev) when CRAM_MPI asks for it (ON: required, AUTO: when present), which starts the ranks and
# carries the CPU backend's gradient sums; and, in a CUDA build with MPI, NCCL (nccl.h and libnccl from the
# CUDA toolkit or the system) for the GPU's. Sets CRAM_HAS_MPI and CRAM_HAS_NCCL. Included from the
# top-level CMakeLists.txt after cram_cuda.
set(CRAM_HAS_MPI OFF)
if(NOT CRAM_MPI STREQUAL "OFF")
  set(MPI_CXX_SKIP_MPICXX ON)  # MPI's C API from C++; not the deprecated C++ bindings
  if(CRAM_MPI STREQUAL "ON")
    find_package(MPI REQUIRED COMPONENTS CXX)
  else()
    find_package(MPI QUIET COMPONENTS CXX)
  endif()
  if(MPI_CXX_FOUND)
    set(CRAM_HAS_MPI ON)
  endif()
endif()
message(STATUS "cram: data parallelism over MPI ${CRAM_HAS_MPI}")

set(CRAM_HAS_NCCL OFF)
if(CRAM_HAS_MPI AND CRAM_HAS_CUDA)
  find_path(CRAM_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(CRAM_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(CRAM_NCCL_INCLUDE_DIR AND CRAM_NCCL_LIBRARY)
    set(CRAM_HAS_NCCL ON)
  endif()
  message(STATUS "cram: GPU gradient sums over NCCL ${CRAM_HAS_NCCL}")
endif()
