// libFuzzer target for the IDX reader: any bytes must decode or throw
// nn::Error; never crash, hang, or allocate without bound.
//
//   cmake --preset fuzz && cmake --build --preset fuzz
//   build-fuzz/bin/idx_fuzz -max_total_time=60 fuzz/corpus
//
// In the normal build the same function runs over the committed seed corpus
// as a test (fuzz/replay.cpp), so what the fuzzer once found stays fixed.
#include <cstddef>
#include <cstdint>
#include <span>

#include "nn/error.hpp"
#include "nn/idx.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto a = nn::decode_idx(std::span(data, size), "fuzz");
    std::size_t n = 1;
    for (auto d : a.shape) n *= d;
    if (n != a.data.size()) __builtin_trap();  // a decoded array always matches its dims
  } catch (const nn::Error&) {
  }
  return 0;
}
