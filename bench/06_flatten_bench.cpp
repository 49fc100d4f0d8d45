// Chapter 06: Flatten costs nothing. It is timed beside a copy of the same
// (32, 13, 13, 32) tensor, which is what a Flatten that copied would cost.
//
//   build/bin/06_flatten_bench
#include <benchmark/benchmark.h>

#include "nn/flatten.hpp"

namespace {

void flatten_view(benchmark::State& state) {
  nn::Tensor x({32, 13, 13, 32}, 1.0f);
  nn::Flatten flatten;
  if (flatten.forward(x).data() != x.data()) state.SkipWithError("Flatten copied");
  for (auto _ : state) {
    nn::ConstView y = flatten.forward(x);
    benchmark::DoNotOptimize(y.data());
  }
}

void flatten_backward_view(benchmark::State& state) {
  nn::Tensor x({32, 13, 13, 32}), dy({32, 5408}, 1.0f);
  nn::Flatten flatten;
  for (auto _ : state) {
    nn::ConstView dx = flatten.backward(x, dy);
    benchmark::DoNotOptimize(dx.data());
  }
}

void copy_instead(benchmark::State& state) {
  nn::Tensor x({32, 13, 13, 32}, 1.0f);
  for (auto _ : state) {
    nn::Tensor y = x;  // a deep copy: 692 KB
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * x.size() * sizeof(float)));
}

BENCHMARK(flatten_view)->Name("flatten/view");
BENCHMARK(flatten_backward_view)->Name("flatten_backward/view");
BENCHMARK(copy_instead)->Name("flatten/if_it_copied");

}  // namespace
