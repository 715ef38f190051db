# find_package(cram) consumer build against an installed copy (tests/consumer/).
add_test(NAME consumer_find_package
         COMMAND ${CMAKE_COMMAND} -DCRAM_BUILD_DIR=${PROJECT_BINARY_DIR}
                 -DCONSUMER_SOURCE=${CMAKE_CURRENT_SOURCE_DIR}/consumer
                 -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/consumer_work "-DGENERATOR=${CMAKE_GENERATOR}"
                 -DCXX_COMPILER=${CMAKE_CXX_COMPILER} -P ${CMAKE_CURRENT_SOURCE_DIR}/consumer/run.cmake)
set_tests_properties(consumer_find_package PROPERTIES LABELS cpu TIMEOUT 600)
