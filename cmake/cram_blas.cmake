# Finds OpenBLAS for the CPU backend's fp32 GEMMs when CRAM_BLAS asks for it (ON: required, AUTO: when
# present) and sets CRAM_HAS_BLAS and CRAM_CBLAS_INCLUDE_DIR. Included from the top-level CMakeLists.txt.
# OpenBLAS, not any BLAS: the choice was measured (docs/dependencies.md), and a reference BLAS found by
# accident would be slower than cram's own GEMM.
set(CRAM_HAS_BLAS OFF)
if(NOT CRAM_BLAS STREQUAL "OFF")
  set(BLA_VENDOR OpenBLAS)
  if(CRAM_BLAS STREQUAL "ON")
    find_package(BLAS REQUIRED)
  else()
    find_package(BLAS QUIET)
  endif()
  # cblas.h: Debian keeps it in the multiarch include directory; other distributions under openblas/.
  find_path(CRAM_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas openblas-pthread)
  if(BLAS_FOUND AND CRAM_CBLAS_INCLUDE_DIR)
    set(CRAM_HAS_BLAS ON)
  elseif(CRAM_BLAS STREQUAL "ON")
    message(FATAL_ERROR "CRAM_BLAS=ON but OpenBLAS's cblas.h was not found (Debian: libopenblas-dev)")
  endif()
endif()
message(STATUS "cram: CPU fp32 GEMMs through OpenBLAS ${CRAM_HAS_BLAS}")
