# What lib/ links, for the WebAssembly build (Emscripten). Debian packages
# none of it for wasm32, and Emscripten's own ports (-sUSE_ZLIB) download
# their sources at build time, so:
#   fmt    header-only (FMT_HEADER_ONLY), from Debian's libfmt-dev headers;
#   zlib   compiled here from Debian's zlib source (wasm/get-zlib-source.sh
#          puts it in build-wasm/deps/zlib);
#   threads none: no -pthread, so the .wasm runs in any page without the
#          cross-origin isolation that SharedArrayBuffer needs. The playground
#          sets nn::set_thread_count(1) and the pool never starts a thread.
enable_language(C)

# Exceptions: lib reports every error by throwing nn::Error, which the C API
# catches and hands to the page as a message. Emscripten disables catching by
# default; -fexceptions turns it on (JavaScript-based unwinding).
add_compile_options(-fexceptions)
add_link_options(-fexceptions)
option(NN_WASM_SIMD "Compile for WebAssembly SIMD (-msimd128): 4-float vectors" ON)
if(NN_WASM_SIMD)
  add_compile_options(-msimd128)
endif()

set(NN_WASM_FMT_INCLUDE_DIR "/usr/include" CACHE PATH "folder holding Debian's fmt/ headers (libfmt-dev)")
if(NOT EXISTS "${NN_WASM_FMT_INCLUDE_DIR}/fmt/format-inl.h")
  message(FATAL_ERROR "fmt headers not found in ${NN_WASM_FMT_INCLUDE_DIR}/fmt: apt-get install libfmt-dev")
endif()
# Only fmt/ is linked into a folder of its own: adding /usr/include itself
# would put glibc's headers in front of Emscripten's C library.
set(NN_WASM_FMT_LINK_DIR "${CMAKE_BINARY_DIR}/fmt-include")
file(MAKE_DIRECTORY "${NN_WASM_FMT_LINK_DIR}")
file(CREATE_LINK "${NN_WASM_FMT_INCLUDE_DIR}/fmt" "${NN_WASM_FMT_LINK_DIR}/fmt" SYMBOLIC)
add_library(nn_wasm_fmt INTERFACE)
target_include_directories(nn_wasm_fmt SYSTEM INTERFACE "${NN_WASM_FMT_LINK_DIR}")
target_compile_definitions(nn_wasm_fmt INTERFACE FMT_HEADER_ONLY)
add_library(fmt::fmt ALIAS nn_wasm_fmt)

set(NN_WASM_ZLIB_SOURCE_DIR "${CMAKE_SOURCE_DIR}/build-wasm/deps/zlib" CACHE PATH
    "zlib's source (wasm/get-zlib-source.sh fetches Debian's)")
if(NOT EXISTS "${NN_WASM_ZLIB_SOURCE_DIR}/inflate.c" AND
   NN_WASM_ZLIB_SOURCE_DIR STREQUAL "${CMAKE_SOURCE_DIR}/build-wasm/deps/zlib")
  # The first configure fetches it (about 0.5 MB from Debian's archive, SHA-256 checked).
  execute_process(COMMAND bash "${CMAKE_SOURCE_DIR}/wasm/get-zlib-source.sh" RESULT_VARIABLE zlib_fetch)
endif()
if(NOT EXISTS "${NN_WASM_ZLIB_SOURCE_DIR}/inflate.c")
  message(FATAL_ERROR "zlib source not found in ${NN_WASM_ZLIB_SOURCE_DIR}: wasm/get-zlib-source.sh fetches it")
endif()
add_library(nn_wasm_zlib STATIC)
foreach(file adler32.c crc32.c deflate.c inffast.c inflate.c inftrees.c trees.c zutil.c)
  target_sources(nn_wasm_zlib PRIVATE "${NN_WASM_ZLIB_SOURCE_DIR}/${file}")
endforeach()
target_include_directories(nn_wasm_zlib SYSTEM PUBLIC "${NN_WASM_ZLIB_SOURCE_DIR}")
target_compile_options(nn_wasm_zlib PRIVATE -w)  # zlib's K&R-era warnings are not ours
add_library(ZLIB::ZLIB ALIAS nn_wasm_zlib)

# lib links Threads::Threads for the native pool; here it stands for nothing.
add_library(nn_wasm_no_threads INTERFACE)
add_library(Threads::Threads ALIAS nn_wasm_no_threads)
