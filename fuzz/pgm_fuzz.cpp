// libFuzzer target for the PGM reader (decode_pgm, which read_pgm calls) and
// the conversion to an MNIST digit: any bytes must decode or throw
// nn::Error; never crash, hang, or allocate without bound.
//
//   cmake --preset fuzz && cmake --build --preset fuzz
//   build-fuzz/bin/pgm_fuzz -max_total_time=60 -malloc_limit_mb=1024 fuzz/corpus-pgm
//
// In the normal build the same function runs over the committed seed corpus
// as a test (fuzz/replay.cpp).
#include <cstddef>
#include <cstdint>
#include <span>

#include "nn/error.hpp"
#include "nn/pgm.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const nn::GrayImage img = nn::decode_pgm(std::span(data, size), "fuzz");
    // A decoded image has width x height pixels, none above maxval, maxval in 1..65535.
    if (img.width == 0 || img.height == 0 || img.pixels.size() != img.width * img.height) __builtin_trap();
    if (img.maxval < 1 || img.maxval > 65535) __builtin_trap();
    for (auto p : img.pixels)
      if (p > img.maxval) __builtin_trap();
    nn::to_mnist_digit(img, "fuzz");  // throws nn::Error unless 28x28
  } catch (const nn::Error&) {
  }
  return 0;
}
