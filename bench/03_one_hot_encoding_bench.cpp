// Chapter 03: one-hot encoding the 60,000 training labels, and argmax back.
//
//   build/bin/03_one_hot_encoding_bench
//
// items_per_second counts labels.
#include <benchmark/benchmark.h>

#include <vector>

#include "nn/one_hot.hpp"

namespace {

std::vector<std::uint8_t> labels() {
  std::vector<std::uint8_t> y(60000);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::uint8_t>(i * 7 % 10);
  return y;
}

void one_hot(benchmark::State& state) {
  auto y = labels();
  if (nn::argmax(nn::one_hot(y))[7] != 9) state.SkipWithError("wrong encoding");
  for (auto _ : state) benchmark::DoNotOptimize(nn::one_hot(y).data());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * y.size()));
}

void argmax(benchmark::State& state) {
  auto y = labels();
  nn::Tensor t = nn::one_hot(y);
  for (auto _ : state) benchmark::DoNotOptimize(nn::argmax(t).data());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * y.size()));
}

BENCHMARK(one_hot)->Name("one_hot/60000")->Unit(benchmark::kMicrosecond);
BENCHMARK(argmax)->Name("argmax/60000")->Unit(benchmark::kMicrosecond);

}  // namespace
