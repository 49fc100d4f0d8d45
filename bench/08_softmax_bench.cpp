// Chapter 08: softmax, the loss and the fused gradient at the model's output
// shape, (32, 10), and on a larger (4096, 10) to see the per-row cost.
//
//   build/bin/08_softmax_bench
//
// items_per_second counts rows.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>

#include "nn/one_hot.hpp"
#include "nn/softmax.hpp"

namespace {

struct Batch {
  nn::Tensor z, y, p, dz;
  explicit Batch(std::size_t n) : z({n, 10}), y({n, 10}), p({n, 10}), dz({n, 10}) {
    std::mt19937_64 rng(1);
    std::normal_distribution<float> g(0.0f, 3.0f);
    for (float& v : z.span()) v = g(rng);
    for (std::size_t i = 0; i < n; ++i) y(i, i % 10) = 1.0f;
  }
};

void softmax_forward(benchmark::State& state) {
  Batch b(static_cast<std::size_t>(state.range(0)));
  nn::softmax(b.z, b.p);  // checked before timing: every row sums to 1
  for (std::size_t i = 0; i < b.p.dim(0); ++i) {
    double sum = 0;
    for (std::size_t k = 0; k < 10; ++k) sum += b.p(i, k);
    if (std::abs(sum - 1.0) > 1e-5) {
      state.SkipWithError("softmax rows do not sum to 1");
      return;
    }
  }
  for (auto _ : state) {
    nn::softmax(b.z, b.p);
    benchmark::DoNotOptimize(b.p.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void loss_and_gradient(benchmark::State& state) {
  Batch b(static_cast<std::size_t>(state.range(0)));
  nn::softmax(b.z, b.p);
  for (auto _ : state) {
    benchmark::DoNotOptimize(nn::categorical_crossentropy(b.p, b.y));
    nn::softmax_crossentropy_backward(b.p, b.y, b.dz);
    benchmark::DoNotOptimize(b.dz.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

BENCHMARK(softmax_forward)->Name("softmax")->Arg(32)->Arg(4096);
BENCHMARK(loss_and_gradient)->Name("crossentropy_and_fused_gradient")->Arg(32)->Arg(4096);

}  // namespace
