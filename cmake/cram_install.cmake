# Install rules and package files of cram (only when CRAM_INSTALL is ON): the headers, the exported
# targets, cramConfig.cmake (which finds each requested component's dependencies) and its version file.
# The build tree is exported too, so find_package(cram) works against a build directory.
include(CMakePackageConfigHelpers)

set(CRAM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/cram)
# The components the package offers, as cramConfig.cmake checks requested ones against them.
set(cram_components)
foreach(target IN LISTS cram_export_targets)
  get_target_property(name ${target} EXPORT_NAME)
  if(NOT name)
    set(name ${target})  # the umbrella `cram` keeps its own name
  endif()
  list(APPEND cram_components ${name})
endforeach()

install(TARGETS ${cram_export_targets} EXPORT cramTargets)
install(DIRECTORY include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT cramTargets NAMESPACE cram:: DESTINATION ${CRAM_CMAKE_DIR})
configure_package_config_file(cmake/cramConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/cramConfig.cmake
                              INSTALL_DESTINATION ${CRAM_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/cramConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/cramConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/cramConfigVersion.cmake
              cmake/Findutf8proc.cmake
        DESTINATION ${CRAM_CMAKE_DIR})
export(EXPORT cramTargets NAMESPACE cram:: FILE ${CMAKE_CURRENT_BINARY_DIR}/cramTargets.cmake)
file(COPY cmake/Findutf8proc.cmake DESTINATION ${CMAKE_CURRENT_BINARY_DIR})
