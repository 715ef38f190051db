# Every public header compiles on its own (twice, for the include guard) against the smallest target that
# should suffice: a header that forgets an include, or reaches for a dependency its target does not bring,
# breaks our build rather than a user's. Dependency headers are all in /usr/include on Debian, where any
# header would find them; so for each header the headers of the dependencies its target lacks are shadowed
# by stubs that stop the compiler with a message naming the header's target.

# Which target(s) a header should need, by path; the first match wins. A new folder needs a line here.
set(cram_header_rules
    "^cram/train/dataset_source\\.hpp$=train,data"  # the trainer's view of the data layer's shards
    "^cram/(core|ops|cpu|model)(/|\\.hpp$)=core"
    # the training state and AdamW settings need only the standard library: a model-only user holds parameters
    "^cram/train/(training_state|optimizer)\\.hpp$=core"
    "^cram/data(/|\\.hpp$)=data"
    "^cram/train(/|\\.hpp$)=train"
    "^cram/eval(/|\\.hpp$)=eval"
    "^cram/interop(/|\\.hpp$)=train"  # Hugging Face export/import: safetensors + JSON
    "^cram/cuda(/|\\.hpp$)=cuda"
    "^cram/emu(/|\\.hpp$)=emu"  # the emulated device (cram::emu, cram::cuda_emulated's other name)
    "^cram/dist/communicator\\.hpp$=core"  # the trainer's view of the ranks: no MPI needed
    "^cram/dist/mpi\\.hpp$=mpi"
    "^cram/dist/nccl\\.hpp$=nccl"
    "^cram/cram\\.hpp$=cram")

# The dependencies a header might reach for, by the imported target that brings them, and their headers.
set(cram_dependency_targets nlohmann_json::nlohmann_json utf8proc::utf8proc zstd::libzstd_shared CLI11::CLI11
                            doctest::doctest benchmark::benchmark)
set(cram_dependency_headers_nlohmann_json__nlohmann_json nlohmann/json.hpp nlohmann/json_fwd.hpp)
set(cram_dependency_headers_utf8proc__utf8proc utf8proc.h)
set(cram_dependency_headers_zstd__libzstd_shared zstd.h zstd_errors.h zdict.h)
set(cram_dependency_headers_CLI11__CLI11 CLI/CLI.hpp)
set(cram_dependency_headers_doctest__doctest doctest/doctest.h)
set(cram_dependency_headers_benchmark__benchmark benchmark/benchmark.h)

# Every target `target` links, following our own INTERFACE targets (aliases resolved) down to the imported
# ones: what a header checked against `target` may use.
function(cram_linked_closure target out)
  set(todo ${target})
  set(seen)
  while(todo)
    list(POP_FRONT todo item)
    if(TARGET ${item})
      get_target_property(real ${item} ALIASED_TARGET)
      if(real)
        set(item ${real})
      endif()
    endif()
    if(item IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${item})
    if(TARGET ${item})
      get_target_property(imported ${item} IMPORTED)
      if(NOT imported)
        get_target_property(links ${item} INTERFACE_LINK_LIBRARIES)
        if(links)
          list(APPEND todo ${links})
        endif()
      endif()
    endif()
  endwhile()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()

# A directory of stubs for one dependency: each of its headers stops the compiler with `message`.
function(cram_dependency_stub_dir dependency out)
  string(MAKE_C_IDENTIFIER ${dependency} id)
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/header_check/stubs/${id})
  foreach(h ${cram_dependency_headers_${id}})
    file(CONFIGURE OUTPUT ${dir}/${h} CONTENT
         "#error \"<${h}> belongs to ${dependency}, which the cram target this header is checked against does not link (the failing object library, cram_header_check_<target>, names it): include it only from headers of a target that links it (tests/headers.cmake, docs/dependencies.md)\"\n")
  endforeach()
  set(${out} ${dir} PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE cram_public_headers CONFIGURE_DEPENDS RELATIVE ${PROJECT_SOURCE_DIR}/include
     ${PROJECT_SOURCE_DIR}/include/cram/*.hpp)
set(cram_header_groups)
foreach(h ${cram_public_headers})
  set(group)
  foreach(rule ${cram_header_rules})
    string(REGEX MATCH "^(.*)=([a-z,]+)$" parsed "${rule}")
    set(pattern "${CMAKE_MATCH_1}")
    set(targets "${CMAKE_MATCH_2}")  # saved: the MATCHES below overwrites CMAKE_MATCH_n
    if(h MATCHES "${pattern}")
      string(REPLACE "," "_" group ${targets})
      break()
    endif()
  endforeach()
  if(NOT group)
    message(FATAL_ERROR "tests/headers.cmake: no rule says which target ${h} should need; add one to cram_header_rules")
  endif()
  # headers of a target this build lacks (cuda, mpi, nccl) are not checked; two-target groups (train_data)
  # name no target of their own, and their targets always exist
  if(NOT TARGET cram::${group} AND NOT group MATCHES "_")
    continue()
  endif()
  string(MAKE_C_IDENTIFIER ${h} id)
  if(group STREQUAL "cuda" OR group STREQUAL "nccl")
    set(src ${CMAKE_CURRENT_BINARY_DIR}/header_check/${id}.cu)
  else()
    set(src ${CMAKE_CURRENT_BINARY_DIR}/header_check/${id}.cpp)
  endif()
  file(CONFIGURE OUTPUT ${src} CONTENT "#include <${h}>\n#include <${h}>  // and twice: include guards\n")
  list(APPEND cram_header_sources_${group} ${src})
  if(NOT group IN_LIST cram_header_groups)
    list(APPEND cram_header_groups ${group})
  endif()
endforeach()

add_custom_target(cram_header_check ALL)
foreach(group ${cram_header_groups})
  set(lib cram_header_check_${group})
  add_library(${lib} OBJECT ${cram_header_sources_${group}})
  string(REPLACE "_" ";" targets ${group})
  list(TRANSFORM targets PREPEND "cram::")
  target_link_libraries(${lib} PRIVATE ${targets} cram_warnings)
  set(allowed)
  foreach(t ${targets})
    cram_linked_closure(${t} closure)
    list(APPEND allowed ${closure})
  endforeach()
  foreach(dependency ${cram_dependency_targets})
    if(NOT dependency IN_LIST allowed)
      cram_dependency_stub_dir(${dependency} stubs)
      target_include_directories(${lib} BEFORE PRIVATE ${stubs})
    endif()
  endforeach()
  add_dependencies(cram_header_check ${lib})
endforeach()
