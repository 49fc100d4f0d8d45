// Chapter 05: MaxPooling2D((2, 2)) at the model's shape, (N, 26, 26, 32),
// naive against vectorized, forward and backward.
//
//   build/bin/05_pooling_bench
//
// bytes_per_second counts the tensors each pass must touch: forward reads x
// and writes y; backward reads x and dy and writes dx.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>

#include "nn/pooling.hpp"

namespace {

nn::Tensor random_tensor(nn::Shape shape) {
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  nn::Tensor t(shape);
  for (float& v : t.span()) v = u(rng);
  return t;
}

void forward(benchmark::State& state, nn::MaxPoolVariant variant) {
  const auto n = static_cast<std::size_t>(state.range(0));
  nn::Tensor x = random_tensor({n, 26, 26, 32});
  nn::Tensor y(nn::max_pool2d_output_shape(x.shape(), 2));
  // Checked before timing: the same result as the naive reference.
  nn::Tensor ref = nn::max_pool2d_forward(x, 2, nn::MaxPoolVariant::naive);
  nn::max_pool2d_forward(x, 2, y, variant);
  if (!std::equal(y.span().begin(), y.span().end(), ref.span().begin())) {
    state.SkipWithError("differs from naive");
    return;
  }
  for (auto _ : state) {
    nn::max_pool2d_forward(x, 2, y, variant);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * (x.size() + y.size()) * sizeof(float)));
}

void backward(benchmark::State& state, nn::MaxPoolVariant variant) {
  const auto n = static_cast<std::size_t>(state.range(0));
  nn::Tensor x = random_tensor({n, 26, 26, 32});
  nn::Tensor dy = random_tensor(nn::max_pool2d_output_shape(x.shape(), 2));
  nn::Tensor dx(x.shape());
  nn::Tensor ref = nn::max_pool2d_backward(x, dy, 2, nn::MaxPoolVariant::naive);
  nn::max_pool2d_backward(x, dy, 2, dx, variant);
  if (!std::equal(dx.span().begin(), dx.span().end(), ref.span().begin())) {
    state.SkipWithError("differs from naive");
    return;
  }
  for (auto _ : state) {
    nn::max_pool2d_backward(x, dy, 2, dx, variant);
    benchmark::DoNotOptimize(dx.data());
  }
  state.SetBytesProcessed(
      static_cast<std::int64_t>(state.iterations() * (2 * x.size() + dy.size()) * sizeof(float)));
}

BENCHMARK_CAPTURE(forward, naive, nn::MaxPoolVariant::naive)->Name("max_pool_forward/naive")->Arg(32)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(forward, vectorized, nn::MaxPoolVariant::vectorized)->Name("max_pool_forward/vectorized")->Arg(32)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(backward, naive, nn::MaxPoolVariant::naive)->Name("max_pool_backward/naive")->Arg(32)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(backward, vectorized, nn::MaxPoolVariant::vectorized)->Name("max_pool_backward/vectorized")->Arg(32)->Unit(benchmark::kMicrosecond);

}  // namespace
