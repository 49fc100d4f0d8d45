# Every loop in lib/src whose `for` line carries the comment "// vectorized"
# must be vectorized by the compiler for the target given in FLAGS. The test
# compiles each such file with GCC's vectorizer report and fails, naming the
# file and line, for every marked loop the report does not call vectorized.
#
# Why a test: a loop that loads only under a condition (`c ? g[i] : 0`) is
# vectorized with AVX2's or AVX-512's masked loads, but stays scalar on
# SSE-only x86 and on ARM's NEON, which have none: ten times slower there,
# and invisible on the machine the course is written on.
#
#   cmake -DCXX=g++ -DFLAGS="-march=x86-64-v2" -DSOURCE_DIR=... -DWORK_DIR=...
#         [-DFMT_INCLUDE=<folder holding fmt/>] -P vectorization_check.cmake
foreach(var CXX FLAGS SOURCE_DIR WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "vectorization_check.cmake: -D${var}=... is missing")
  endif()
endforeach()
separate_arguments(flags UNIX_COMMAND "${FLAGS}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(includes -I${SOURCE_DIR}/lib/include)
if(FMT_INCLUDE)
  # A cross compiler must not see the host's whole /usr/include: give it only fmt.
  file(MAKE_DIRECTORY "${WORK_DIR}/include")
  file(CREATE_LINK "${FMT_INCLUDE}/fmt" "${WORK_DIR}/include/fmt" SYMBOLIC)
  list(APPEND includes -isystem ${WORK_DIR}/include)
endif()

file(GLOB_RECURSE sources "${SOURCE_DIR}/lib/src/*.cpp")
set(failures "")
set(checked 0)
foreach(source IN LISTS sources)
  file(STRINGS "${source}" lines)
  set(marked "")
  set(number 0)
  foreach(line IN LISTS lines)
    math(EXPR number "${number} + 1")
    if(line MATCHES "for \\(.*// vectorized")
      list(APPEND marked ${number})
    endif()
  endforeach()
  if(NOT marked)
    continue()
  endif()
  get_filename_component(name "${source}" NAME)
  # kernels/dense.cpp and layers/dense.cpp: the work files are named by the path.
  file(RELATIVE_PATH relative "${SOURCE_DIR}/lib/src" "${source}")
  string(REPLACE "/" "_" work "${relative}")
  set(report "${WORK_DIR}/${work}.vec.txt")
  execute_process(
    COMMAND ${CXX} -std=c++20 -O3 -fno-math-errno ${flags} ${includes} -c ${source} -o ${WORK_DIR}/${work}.o
            -fopt-info-vec-optimized=${report}
    RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: ${CXX} ${FLAGS} failed:\n${err}")
  endif()
  file(READ "${report}" text)
  foreach(number IN LISTS marked)
    math(EXPR checked "${checked} + 1")
    if(NOT text MATCHES "${name}:${number}:[0-9]+: optimized: loop vectorized")
      list(APPEND failures "lib/src/${relative}:${number}")
    endif()
  endforeach()
endforeach()

if(checked EQUAL 0)
  message(FATAL_ERROR "no loop in ${SOURCE_DIR}/lib/src is marked '// vectorized'")
endif()
if(failures)
  list(JOIN failures "\n  " listed)
  message(FATAL_ERROR "with ${FLAGS}, these loops marked '// vectorized' stay scalar:\n  ${listed}\n"
                      "(see ${WORK_DIR}/*.vec.txt, or compile with -fopt-info-vec-missed for the reason)")
endif()
message(STATUS "with ${FLAGS}: all ${checked} loops marked '// vectorized' are vectorized")
