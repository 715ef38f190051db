# Installs the cram build tree into a scratch prefix, then configures, builds and runs tests/consumer
# against it: what a user does with find_package(cram). Twice: the whole package, and the core component
# alone with the data dependencies hidden (CMAKE_DISABLE_FIND_PACKAGE_*), which must still work because
# cram::core needs none of them; asking for the data component that way must fail, or the hiding proved
# nothing.
foreach(var CRAM_BUILD_DIR CONSUMER_SOURCE WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run.cmake needs -D${var}=...")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: ${what} failed (exit ${rc})")
  endif()
endfunction()
set(hide_data_deps -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON -DCMAKE_DISABLE_FIND_PACKAGE_utf8proc=ON
                   -DCMAKE_DISABLE_FIND_PACKAGE_zstd=ON)
function(configure_consumer build_dir)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE} -B ${build_dir} -G ${GENERATOR}
                          -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=${CXX_COMPILER} -DCMAKE_PREFIX_PATH=${prefix}
                          ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  set(configure_rc ${rc} PARENT_SCOPE)
  set(configure_output "${out}" PARENT_SCOPE)
endfunction()

run_step("install" ${CMAKE_COMMAND} --install ${CRAM_BUILD_DIR} --prefix ${prefix})

configure_consumer(${WORK_DIR}/build)
if(NOT configure_rc EQUAL 0)
  message(FATAL_ERROR "consumer test: configure (whole package) failed:\n${configure_output}")
endif()
run_step("build (whole package)" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
run_step("run (whole package)" ${WORK_DIR}/build/consumer)

configure_consumer(${WORK_DIR}/build-core -DCONSUMER_COMPONENT=core ${hide_data_deps})
if(NOT configure_rc EQUAL 0)
  message(FATAL_ERROR "consumer test: configure (COMPONENTS core, data dependencies hidden) failed:\n${configure_output}")
endif()
run_step("build (core only)" ${CMAKE_COMMAND} --build ${WORK_DIR}/build-core)
run_step("run (core only)" ${WORK_DIR}/build-core/consumer)

configure_consumer(${WORK_DIR}/build-data -DCONSUMER_COMPONENT=data ${hide_data_deps})
if(configure_rc EQUAL 0)
  message(FATAL_ERROR "consumer test: COMPONENTS data configured although its dependencies were hidden")
endif()
message(STATUS "consumer test: COMPONENTS data without its dependencies failed, as it must")
