// Chapter 02: normalizing the 60,000 training images, naive and vectorized,
// against a plain copy of the same bytes measured in the same run.
//
//   build/bin/02_normalization_bench
//
// bytes_per_second counts what each moves through memory: 47 MB of uint8 read
// plus 188 MB of float32 written (a copy moves the same 235 MB).
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "nn/normalize.hpp"

namespace {

constexpr std::size_t kPixels = 60000 * 28 * 28;

std::vector<std::uint8_t> pixels() {
  std::vector<std::uint8_t> in(kPixels);
  for (std::size_t i = 0; i < kPixels; ++i) in[i] = static_cast<std::uint8_t>(i * 2654435761u >> 24);
  return in;
}

template <void (*Normalize)(std::span<const std::uint8_t>, std::span<float>)>
void normalize(benchmark::State& state) {
  auto in = pixels();
  std::vector<float> out(kPixels), ref(kPixels);
  nn::normalize_naive(in, ref);
  Normalize(in, out);  // checked before timing
  if (out != ref) {
    state.SkipWithError("result differs from normalize_naive");
    return;
  }
  for (auto _ : state) {
    Normalize(in, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kPixels * (1 + sizeof(float))));
}

// The yardstick: memcpy of the same number of bytes (235 MB read + written).
void copy_same_bytes(benchmark::State& state) {
  const std::size_t bytes = kPixels * (1 + sizeof(float)) / 2;
  std::vector<char> src(bytes, 1), dst(bytes);
  std::memcpy(dst.data(), src.data(), bytes);  // checked before timing, as the others
  if (dst != src) {
    state.SkipWithError("memcpy did not copy");
    return;
  }
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), bytes);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes * 2));
}

BENCHMARK(normalize<nn::normalize_naive>)->Name("normalize/naive")->Unit(benchmark::kMillisecond);
BENCHMARK(normalize<nn::normalize_vectorized>)->Name("normalize/vectorized")->Unit(benchmark::kMillisecond);
BENCHMARK(normalize<nn::normalize_streaming>)->Name("normalize/streaming")->Unit(benchmark::kMillisecond);
BENCHMARK(copy_same_bytes)->Name("memcpy/same_bytes")->Unit(benchmark::kMillisecond);

}  // namespace
