// Chapter 06: Flatten costs nothing. It is timed beside a copy of the same
// (32, 13, 13, 32) tensor into a buffer allocated once, which is what a
// Flatten that copied would cost (the layers reuse their output buffers).
// Each is checked before it is timed.
//
//   build/bin/06_flatten_bench
#include <benchmark/benchmark.h>

#include <algorithm>

#include "nn/layers/flatten.hpp"

namespace {

// Distinct values, so that a check can tell a copy from a fill.
nn::Tensor distinct_values() {
  nn::Tensor x({32, 13, 13, 32});
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 1000);
  return x;
}

void flatten_view(benchmark::State& state) {
  nn::Tensor x({32, 13, 13, 32}, 1.0f);
  nn::Flatten flatten;
  const nn::ConstView check = flatten.forward(x);
  if (check.data() != x.data() || !(check.shape() == nn::Shape{32, 5408})) {
    state.SkipWithError("Flatten copied, or gave the wrong shape");
    return;
  }
  for (auto _ : state) {
    nn::ConstView y = flatten.forward(x);
    benchmark::DoNotOptimize(y.data());
  }
}

void flatten_backward_view(benchmark::State& state) {
  nn::Tensor x({32, 13, 13, 32}), y({32, 5408}), dy({32, 5408}, 1.0f);
  nn::Flatten flatten;
  const nn::ConstView check = flatten.backward(x, y, dy);
  if (check.data() != dy.data() || !(check.shape() == x.shape())) {
    state.SkipWithError("Flatten's backward copied, or gave the wrong shape");
    return;
  }
  for (auto _ : state) {
    nn::ConstView dx = flatten.backward(x, y, dy);
    benchmark::DoNotOptimize(dx.data());
  }
}

void copy_instead(benchmark::State& state) {
  const nn::Tensor x = distinct_values();
  nn::Tensor y({32, 5408});
  std::copy(x.span().begin(), x.span().end(), y.data());
  if (!std::equal(x.span().begin(), x.span().end(), y.span().begin())) {
    state.SkipWithError("the copy differs");
    return;
  }
  for (auto _ : state) {
    std::copy(x.span().begin(), x.span().end(), y.data());  // 692 KB
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * x.size() * sizeof(float)));
}

BENCHMARK(flatten_view)->Name("flatten/view");
BENCHMARK(flatten_backward_view)->Name("flatten_backward/view");
BENCHMARK(copy_instead)->Name("flatten/if_it_copied");

}  // namespace
