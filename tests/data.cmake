# Extra tests of the data area: the fuzz targets (tests/fuzz/). Included from tests/CMakeLists.txt.
option(CRAM_BUILD_FUZZ "Build the data layer's fuzz targets and their bounded ctest runs" ON)
if(CRAM_BUILD_FUZZ)
  include(${CMAKE_CURRENT_LIST_DIR}/fuzz/CMakeLists.txt)
endif()
