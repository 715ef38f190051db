# The ops/ layer's one-name rule, checked when the project is configured: every include/cram/ops/<x>.hpp
# has its kernels in include/cram/cuda/<x>.hpp and its tests in tests/ops/test_<x>.cpp (CPU) and
# tests/cuda/test_<x>.cu (CUDA parity). Also runs as a script (cmake -DCRAM_LAYOUT_ROOT=<dir> -P this
# file), which the ops_layout_check test uses to see it fail on a tree that breaks the rule.

if(CMAKE_SCRIPT_MODE_FILE)
  cmake_minimum_required(VERSION 3.25)  # script mode starts with old policies (IN_LIST needs CMP0057)
endif()

# Headers in ops/ that are not an op family, each with the reason.
set(cram_ops_layout_exempt
    backend  # the backend concept: it states the contract of every family and has no kernels of its own
    vector_math  # the CPU ops' vectorisable row math (exp, sums); tested in tests/ops/test_vector_math.cpp
)

function(cram_check_ops_layout root)
  set(depends)
  if(NOT CMAKE_SCRIPT_MODE_FILE)
    set(depends CONFIGURE_DEPENDS)  # adding or deleting any of these files re-runs the check
  endif()
  file(GLOB headers ${depends} RELATIVE ${root}/include/cram/ops ${root}/include/cram/ops/*.hpp)
  file(GLOB twins ${depends} ${root}/include/cram/cuda/*.hpp ${root}/tests/ops/*.cpp ${root}/tests/cuda/*.cu)
  set(problems)
  foreach(exempt IN LISTS cram_ops_layout_exempt)
    if(NOT EXISTS ${root}/include/cram/ops/${exempt}.hpp)
      list(APPEND problems "cram_ops_layout_exempt names ${exempt}, but include/cram/ops/${exempt}.hpp does not exist")
    endif()
  endforeach()
  foreach(header IN LISTS headers)
    string(REGEX REPLACE "\\.hpp$" "" family ${header})
    if(family IN_LIST cram_ops_layout_exempt)
      continue()
    endif()
    foreach(twin include/cram/cuda/${family}.hpp tests/ops/test_${family}.cpp tests/cuda/test_${family}.cu)
      if(NOT EXISTS ${root}/${twin})
        list(APPEND problems "include/cram/ops/${header} has no ${twin}")
      endif()
    endforeach()
  endforeach()
  if(problems)
    list(JOIN problems "\n  " text)
    message(FATAL_ERROR "cram ops layout check failed:\n  ${text}\n"
                        "Each op family keeps one name: ops/<x>.hpp (contract, shared rules, CPU code), "
                        "cuda/<x>.hpp (kernels), tests/ops/test_<x>.cpp and tests/cuda/test_<x>.cu "
                        "(docs/architecture.md). Add the missing file, or list a header that is not an op "
                        "family in cram_ops_layout_exempt (tests/ops_layout.cmake) with the reason.")
  endif()
endfunction()

if(CMAKE_SCRIPT_MODE_FILE)
  cram_check_ops_layout(${CRAM_LAYOUT_ROOT})
  return()
endif()

cram_check_ops_layout(${PROJECT_SOURCE_DIR})

# The check must be able to fail: a tree with a family whose CUDA test is missing is rejected, and the
# message names the missing file.
set(broken ${CMAKE_CURRENT_BINARY_DIR}/ops_layout_broken)
file(REMOVE_RECURSE ${broken})
file(WRITE ${broken}/include/cram/ops/backend.hpp "")
file(WRITE ${broken}/include/cram/ops/example.hpp "")
file(WRITE ${broken}/include/cram/cuda/example.hpp "")
file(WRITE ${broken}/tests/ops/test_example.cpp "")
add_test(NAME ops_layout_check
         COMMAND ${CMAKE_COMMAND} -DCRAM_LAYOUT_ROOT=${broken} -P ${CMAKE_CURRENT_LIST_FILE})
set_tests_properties(ops_layout_check PROPERTIES
                     PASS_REGULAR_EXPRESSION "ops/example.hpp has no[\n ]+tests/cuda/test_example.cu"
                     LABELS cpu)
