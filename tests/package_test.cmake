# Package.*: the project in tests/package, outside this tree, builds against nn
# and runs (a layer of its own trained, saved, loaded, checked).
#   MODE=find-package   installs this build (cmake --install) into WORK/prefix,
#                       then find_package(nn) with CMAKE_PREFIX_PATH=WORK/prefix
#   MODE=add-subdirectory  add_subdirectory(SOURCE_DIR/lib): nn compiled there
# Run as: cmake -DMODE=.. -DSOURCE_DIR=.. -DBUILD_DIR=.. -DWORK=.. -DCXX=.. [-DLAUNCHER=..] [-DSANITIZE=ON]
#                -P package_test.cmake
# SANITIZE: this build's nn has the sanitizers (the sanitize preset); the
# program that links it must have them too (ASan's runtime comes first).
foreach(var MODE SOURCE_DIR BUILD_DIR WORK CXX)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "package_test.cmake: -D${var}=... not given")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    list(JOIN ARGN " " command)
    message(FATAL_ERROR "failed (${rc}): ${command}\n${out}")
  endif()
  message("${out}")
endfunction()

file(REMOVE_RECURSE ${WORK})
set(configure ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/package -B ${WORK}/build -DCMAKE_BUILD_TYPE=Release
              -DCMAKE_CXX_COMPILER=${CXX})
if(LAUNCHER)
  list(APPEND configure -DCMAKE_CXX_COMPILER_LAUNCHER=${LAUNCHER})
endif()
if(SANITIZE)
  set(sanitizers -fsanitize=address,undefined,float-cast-overflow)
  list(APPEND configure "-DCMAKE_CXX_FLAGS=${sanitizers} -fno-sanitize-recover=all"
                        -DCMAKE_EXE_LINKER_FLAGS=${sanitizers} -DCMAKE_SHARED_LINKER_FLAGS=${sanitizers})
endif()
if(MODE STREQUAL "find-package")
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK}/prefix)
  # Only the installed package: no folder of this tree is on the include path.
  foreach(header nn/model.hpp nn/layer.hpp nn/layers/dense.hpp)
    if(NOT EXISTS ${WORK}/prefix/include/${header})
      message(FATAL_ERROR "${header} not installed in ${WORK}/prefix/include")
    endif()
  endforeach()
  if(EXISTS ${WORK}/prefix/include/nn/cli.hpp)
    message(FATAL_ERROR "nn_course's cli.hpp installed with nn")
  endif()
  run(${configure} -DCMAKE_PREFIX_PATH=${WORK}/prefix)
elseif(MODE STREQUAL "add-subdirectory")
  run(${configure} -DNN_LIB_DIR=${SOURCE_DIR}/lib)
else()
  message(FATAL_ERROR "package_test.cmake: MODE ${MODE}: find-package or add-subdirectory")
endif()
cmake_host_system_information(RESULT cores QUERY NUMBER_OF_LOGICAL_CORES)
run(${CMAKE_COMMAND} --build ${WORK}/build --parallel ${cores})
run(${WORK}/build/nn_user ${WORK}/weights)
