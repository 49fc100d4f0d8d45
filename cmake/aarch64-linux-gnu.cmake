# Cross-compiling for 64-bit ARM (aarch64) with Debian's g++-aarch64-linux-gnu.
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DNN_ARM64_SYSROOT=/tmp/sysroot-arm64 -DNN_NATIVE=OFF
#
# The C library and libstdc++ for arm64 come with the cross compiler (in
# /usr/aarch64-linux-gnu). The course's other libraries (fmt, GoogleTest,
# Google Benchmark, zlib, Boost, ONNX, protobuf, Open MPI) and, for the runs
# under qemu, the arm64 C library are arm64 Debian packages extracted into
# NN_ARM64_SYSROOT by scripts/cross-aarch64.sh, which also runs the tests
# under qemu-aarch64: installing them with apt next to the amd64 ones would
# have to match the amd64 versions exactly.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)

if(NOT NN_ARM64_SYSROOT)
  set(NN_ARM64_SYSROOT "$ENV{NN_ARM64_SYSROOT}")
endif()
if(NOT NN_ARM64_SYSROOT)
  message(FATAL_ERROR "aarch64-linux-gnu.cmake: set NN_ARM64_SYSROOT (-DNN_ARM64_SYSROOT=DIR or the environment) "
                      "to the folder the arm64 packages were extracted into (scripts/cross-aarch64.sh makes one)")
endif()
# Passed on to try_compile projects, which read the toolchain file again.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES NN_ARM64_SYSROOT)

# Libraries, headers and CMake packages come from the arm64 folders only;
# programs (the host's tools) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu "${NN_ARM64_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The extracted shared libraries need each other (Boost.Iostreams needs
# libbz2, liblzma, ...): tell the linker where to find them.
set(_nn_arm64_libs "${NN_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu:${NN_ARM64_SYSROOT}/lib/aarch64-linux-gnu")
string(APPEND CMAKE_EXE_LINKER_FLAGS_INIT " -Wl,-rpath-link,${_nn_arm64_libs}")
string(APPEND CMAKE_SHARED_LINKER_FLAGS_INIT " -Wl,-rpath-link,${_nn_arm64_libs}")

# ctest (and gtest_discover_tests) run the arm64 programs through qemu. With
# Debian's arm64 C library in the sysroot (scripts/cross-aarch64.sh puts it
# there), qemu takes the sysroot as the arm64 root (-L): every library and
# plugin is found where an arm64 Debian has it, Open MPI's included. Otherwise
# the cross toolchain's C library and the extracted libraries' folders.
find_program(NN_QEMU_AARCH64 qemu-aarch64)
if(NN_QEMU_AARCH64)
  if(EXISTS "${NN_ARM64_SYSROOT}/lib/ld-linux-aarch64.so.1")
    set(CMAKE_CROSSCOMPILING_EMULATOR "${NN_QEMU_AARCH64};-L;${NN_ARM64_SYSROOT}")
  else()
    set(CMAKE_CROSSCOMPILING_EMULATOR "${NN_QEMU_AARCH64};-L;/usr/aarch64-linux-gnu;-E;LD_LIBRARY_PATH=${_nn_arm64_libs}")
  endif()
endif()

# pkg-config (FindMPI asks it for Open MPI) reads the arm64 .pc files only,
# with their paths moved into the sysroot: the host's would name amd64 libraries.
set(ENV{PKG_CONFIG_LIBDIR} "${NN_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/pkgconfig:${NN_ARM64_SYSROOT}/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${NN_ARM64_SYSROOT}")

# Open MPI (nn_distributed): FindMPI would ask the host's mpicxx wrapper, which
# names amd64 libraries, and the arm64 packages, unpacked rather than
# installed, lack the mpi-cxx.pc link that Debian's alternatives make. So the
# arm64 headers and libmpi are named here. The course calls MPI's C interface
# only: no C++ bindings are looked for.
set(_nn_arm64_ompi "${NN_ARM64_SYSROOT}/usr/lib/aarch64-linux-gnu/openmpi")
set(MPI_SKIP_COMPILER_WRAPPER ON CACHE BOOL "")
set(MPI_CXX_SKIP_MPICXX ON CACHE BOOL "")
set(MPI_CXX_ADDITIONAL_INCLUDE_DIRS "${_nn_arm64_ompi}/include" CACHE STRING "")
set(MPI_CXX_LIB_NAMES mpi CACHE STRING "")
set(MPI_mpi_LIBRARY "${_nn_arm64_ompi}/lib/libmpi.so" CACHE FILEPATH "")
