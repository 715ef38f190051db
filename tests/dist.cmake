# The MPI gradient sum on its own (tests/dist/mpi_sum_check.cpp) under mpirun, on 1, 2, 3, 4 and 8 ranks
# (--oversubscribe: more ranks than CI's cores). Only in builds with MPI; the app's data-parallel tests are
# app_distributed (apps.cmake).
if(CRAM_HAS_MPI)
  find_program(CRAM_MPIRUN NAMES mpirun mpiexec)
  add_executable(cram_mpi_sum_check dist/mpi_sum_check.cpp)
  target_link_libraries(cram_mpi_sum_check PRIVATE cram::mpi cram_program_options)
  if(CRAM_MPIRUN)
    foreach(ranks 1 2 3 4 8)
      add_test(NAME dist_mpi_sum_${ranks}
               COMMAND ${CRAM_MPIRUN} --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none
                       --allow-run-as-root -np ${ranks} $<TARGET_FILE:cram_mpi_sum_check>)
      set_tests_properties(dist_mpi_sum_${ranks} PROPERTIES LABELS cpu TIMEOUT 300)
    endforeach()
  endif()
endif()
