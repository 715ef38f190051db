# Compile-fail checks: impossible configs must be rejected at compile time with validate_config's
# readable static_assert message, and a backend missing an op by the ops::backend concept, whose
# diagnostic names the op's requirement. Each case runs the compiler in syntax-only mode at test time and
# passes when the expected message appears; control_ok must compile cleanly.
set(cram_compile_fail_cases
    "hidden_heads\;hidden must be a multiple of heads"
    "glu_odd\;intermediate must be even"
    "pre_norm_without_final\;a pre-norm model needs final_norm"
    "backend_missing_op\;S::tanh_backward")
foreach(entry ${cram_compile_fail_cases})
  list(GET entry 0 case)
  list(GET entry 1 message)
  add_test(NAME compile_fail_${case}
           COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only -I${PROJECT_SOURCE_DIR}/include
                   ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/${case}.cpp)
  set_tests_properties(compile_fail_${case} PROPERTIES PASS_REGULAR_EXPRESSION "${message}" LABELS cpu)
endforeach()
add_test(NAME compile_fail_control_ok
         COMMAND ${CMAKE_CXX_COMPILER} -std=c++20 -fsyntax-only -I${PROJECT_SOURCE_DIR}/include
                 ${CMAKE_CURRENT_SOURCE_DIR}/compile_fail/control_ok.cpp)
set_tests_properties(compile_fail_control_ok PROPERTIES LABELS cpu)
