# Helpers that make adding a chapter, its test and its benchmark one line each.
#
#   nn_add_chapter(01-idx-loading)   chapters/01-idx-loading/main.cpp -> bin/ch01-idx-loading
#   nn_add_test(01_idx_loading)      tests/01_idx_loading_test.cpp     -> bin/01_idx_loading_test
#   nn_add_bench(01_idx_loading)     bench/01_idx_loading_bench.cpp    -> bin/01_idx_loading_bench

# Where the executables find things when no option or variable says otherwise
# (compiled into nn_course, never into the core library nn).
set(NN_DEFAULT_DATA_DIR "${CMAKE_SOURCE_DIR}/data/mnist")
set(NN_DEFAULT_PLOTS_DIR "${CMAKE_BINARY_DIR}/plots")
set(NN_DEFAULT_WEIGHTS_DIR "${CMAKE_BINARY_DIR}/weights")

#   nn_add_chapter(00-how-a-network-learns NO_DATA)   a chapter that reads no dataset (no --data)
function(nn_add_chapter folder)
  set(target "ch${folder}")
  set(args ${ARGN})
  set(reads_data TRUE)
  if("NO_DATA" IN_LIST args)
    list(REMOVE_ITEM args NO_DATA)
    set(reads_data FALSE)
  endif()
  add_executable(${target} ${CMAKE_SOURCE_DIR}/chapters/${folder}/main.cpp)
  target_link_libraries(${target} PRIVATE nn_course)  # the command line, plots; nn through it
  # Smoke test: the chapter runs end to end (on the real data, if it reads any) and exits 0.
  add_test(NAME ${target}.runs
           COMMAND ${target} --plots ${CMAKE_BINARY_DIR}/test-plots/${target} ${args})
  add_test(NAME ${target}.bad-option COMMAND ${target} --no-such-option)
  set_tests_properties(${target}.bad-option PROPERTIES
                       PASS_REGULAR_EXPRESSION "unknown option '--no-such-option'")
  add_test(NAME ${target}.help COMMAND ${target} --help)
  if(NOT reads_data)
    set_tests_properties(${target}.runs PROPERTIES LABELS "chapter" TIMEOUT 600)
    set_tests_properties(${target}.help PROPERTIES PASS_REGULAR_EXPRESSION "--plots DIR")
    return()
  endif()
  set_tests_properties(${target}.runs PROPERTIES LABELS "chapter;data" TIMEOUT 600)
  set_tests_properties(${target}.help PROPERTIES PASS_REGULAR_EXPRESSION "--data DIR")
  # A folder with no dataset in it must give a clear error and a non-zero exit.
  add_test(NAME ${target}.missing-data
           COMMAND ${target} --data ${CMAKE_BINARY_DIR}/no-such-dataset
                   --plots ${CMAKE_BINARY_DIR}/test-plots/${target})
  set_tests_properties(${target}.missing-data PROPERTIES
                       PASS_REGULAR_EXPRESSION "error: .*no-such-dataset")
endfunction()

function(nn_add_test name)
  add_executable(${name}_test ${CMAKE_SOURCE_DIR}/tests/${name}_test.cpp ${ARGN})
  target_link_libraries(${name}_test PRIVATE nn nn_testing GTest::gtest GTest::gtest_main)
  gtest_discover_tests(${name}_test DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)
endfunction()

function(nn_add_bench name)
  add_executable(${name}_bench ${CMAKE_SOURCE_DIR}/bench/${name}_bench.cpp ${CMAKE_SOURCE_DIR}/bench/kernels_context.cpp)
  target_link_libraries(${name}_bench PRIVATE nn benchmark::benchmark benchmark::benchmark_main)
endfunction()
