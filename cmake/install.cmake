# `cmake --install`: the engine's libraries, their headers (include/onnas/<layer>/...),
# and a CMake package, so that another project does
#     find_package(onnas 0.1 REQUIRED)
#     target_link_libraries(app PRIVATE onnas::onnas)
# (each layer is also there alone: onnas::runtime, onnas::graph, ...); plus the tool and
# its bash completion. tests/install/ builds an example against an installed copy.
include(CMakePackageConfigHelpers)

get_property(onnas_libraries GLOBAL PROPERTY ONNAS_LIBRARIES)
foreach(lib ${onnas_libraries})
  string(REPLACE "onnas_" "" short ${lib})
  set_target_properties(${lib} PROPERTIES EXPORT_NAME ${short})
  add_library(onnas::${short} ALIAS ${lib})
endforeach()
# onnas::onnas: every layer (the executable is called onnas, so the target is not).
add_library(onnas_library INTERFACE)
target_link_libraries(onnas_library INTERFACE ${onnas_libraries})
set_target_properties(onnas_library PROPERTIES EXPORT_NAME onnas)
add_library(onnas::onnas ALIAS onnas_library)

set(onnas_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/onnas)
install(TARGETS ${onnas_libraries} onnas_library EXPORT onnasTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
foreach(lib ${onnas_libraries})
  string(REPLACE "onnas_" "" dir ${lib})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/onnas/${dir}
          FILES_MATCHING PATTERN "*.h" PATTERN "*.inc")
endforeach()
install(EXPORT onnasTargets NAMESPACE onnas:: DESTINATION ${onnas_cmake_dir})
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/onnasConfig.cmake.in ${PROJECT_BINARY_DIR}/onnasConfig.cmake
                              INSTALL_DESTINATION ${onnas_cmake_dir})
# 0.x: a minor version may change the API, so only the same minor version is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/onnasConfigVersion.cmake VERSION ${PROJECT_VERSION}
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/onnasConfig.cmake ${PROJECT_BINARY_DIR}/onnasConfigVersion.cmake
        DESTINATION ${onnas_cmake_dir})

if(TARGET onnas)
  install(TARGETS onnas RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  if(NOT CMAKE_CROSSCOMPILING)  # the completion is printed by the built tool (apps/CMakeLists.txt)
    install(FILES ${PROJECT_BINARY_DIR}/apps/onnas.bash-completion
            DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME onnas)
  endif()
endif()
