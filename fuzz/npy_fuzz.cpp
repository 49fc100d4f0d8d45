// libFuzzer target for the .npy reader (decode_npy, which load_npy calls):
// any bytes must decode or throw nn::Error; never crash, hang, or allocate
// without bound.
//
//   cmake --preset fuzz && cmake --build --preset fuzz
//   build-fuzz/bin/npy_fuzz -dict=fuzz/npy.dict -max_total_time=60 -malloc_limit_mb=1024 NEW_DIR fuzz/corpus-npy
//
// fuzz/npy.dict holds the header's tokens ('descr', '<f4', False, ",)"...), so
// that mutations reach the header parser's branches past the first key.
//
// In the normal build the same function runs over the committed seed corpus
// as a test (fuzz/replay.cpp).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "nn/error.hpp"
#include "nn/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const nn::Tensor t = nn::decode_npy(std::span(data, size), "fuzz");
    // A decoded tensor matches its dims, the file holds its elements (a
    // wrapped byte count would not), and they are the file's last size() * 4
    // bytes, unchanged (compared as bytes: NaN != NaN).
    std::size_t n = 1;
    for (auto d : t.shape().dims()) n *= d;
    if (n != t.size() || t.size() > size / sizeof(float)) __builtin_trap();
    const std::size_t bytes = t.size() * sizeof(float);
    if (bytes > 0 && std::memcmp(t.data(), data + size - bytes, bytes) != 0) __builtin_trap();
  } catch (const nn::Error&) {
  }
  return 0;
}
