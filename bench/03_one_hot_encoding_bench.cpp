// Chapter 03: one-hot encoding the 60,000 training labels, and argmax back.
//
//   build/bin/03_one_hot_encoding_bench
//
// items_per_second counts labels. Both functions return a new container, so
// both are timed with the allocation of their result. Each is checked before
// it is timed: every row holds a single 1, at its label, and argmax gives the
// labels back.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <string>
#include <vector>

#include "nn/one_hot.hpp"

namespace {

std::vector<std::uint8_t> labels() {
  std::vector<std::uint8_t> y(60000);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<std::uint8_t>(i * 7 % 10);
  return y;
}

// "" when t is the one-hot encoding of y (10 classes), else what is wrong.
std::string check_one_hot(const nn::Tensor& t, const std::vector<std::uint8_t>& y) {
  if (!(t.shape() == nn::Shape{y.size(), 10})) return "wrong shape " + t.shape().str();
  for (std::size_t i = 0; i < y.size(); ++i)
    for (std::size_t k = 0; k < 10; ++k)
      if (t(i, k) != (k == y[i] ? 1.0f : 0.0f)) return "wrong entry in row " + std::to_string(i);
  return "";
}

void one_hot(benchmark::State& state) {
  auto y = labels();
  if (std::string e = check_one_hot(nn::one_hot(y), y); !e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(nn::one_hot(y).data());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * y.size()));
}

void argmax(benchmark::State& state) {
  auto y = labels();
  nn::Tensor t = nn::one_hot(y);
  if (std::string e = check_one_hot(t, y); !e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  const std::vector<std::size_t> back = nn::argmax(t);  // checked before timing: the labels again
  if (!std::equal(back.begin(), back.end(), y.begin(), y.end())) {
    state.SkipWithError("argmax does not give the labels back");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(nn::argmax(t).data());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * y.size()));
}

BENCHMARK(one_hot)->Name("one_hot/60000")->Unit(benchmark::kMicrosecond);
BENCHMARK(argmax)->Name("argmax/60000")->Unit(benchmark::kMicrosecond);

}  // namespace
