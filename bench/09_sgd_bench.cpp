// Chapter 09: one optimizer update of all 542,230 parameters of the model,
// for each rule, and one whole training step (forward, backward, update) at
// batch 32.
//
//   build/bin/09_sgd_bench
//
// bytes_per_second for the updates counts the floats each rule reads and
// writes per parameter (SGD: w and g read, w written; momentum adds v; Adam
// and RMSprop add their running averages).
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>

#include "nn/model.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"

namespace {

void update(benchmark::State& state, const std::string& name, float momentum, int floats_per_param) {
  nn::Sequential model = nn::make_mnist_model(1);
  auto params = model.parameters();
  auto grads = model.gradients();
  for (nn::Tensor* g : grads) g->fill(1e-3f);
  std::vector<const nn::Tensor*> const_grads(grads.begin(), grads.end());
  auto opt = nn::make_optimizer(name, name == "sgd" ? 0.01f : 0.0f, momentum);
  // Checked before timing: the first step moves a weight against its gradient
  // (by lr * g for SGD, by about lr for Adam and RMSprop).
  const float before = (*params[0])[0];
  opt->step(params, const_grads);
  const float moved = before - (*params[0])[0];
  if (!(moved > 0.0f)) {
    state.SkipWithError("the update did not move the weight against its gradient");
    return;
  }
  for (auto _ : state) {
    opt->step(params, const_grads);
    benchmark::DoNotOptimize(params[0]->data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * model.param_count() * floats_per_param * 4));
}

void train_step(benchmark::State& state) {
  const auto batch = static_cast<std::size_t>(state.range(0));
  nn::Sequential model = nn::make_mnist_model(1);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  nn::Tensor x({batch, 28, 28, 1});
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& v : x.span()) v = u(rng) < 0.8f ? 0.0f : u(rng);  // MNIST-like: mostly background
  std::vector<int> labels(batch);
  for (std::size_t i = 0; i < batch; ++i) labels[i] = static_cast<int>(i % 10);
  nn::Tensor y = nn::one_hot(labels);
  if (!std::isfinite(model.train_on_batch(x, y))) {  // checked before timing
    state.SkipWithError("the loss is not finite");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(model.train_on_batch(x, y));
  state.SetItemsProcessed(state.iterations() * state.range(0));  // images per second
}

BENCHMARK_CAPTURE(update, sgd, "sgd", 0.0f, 3)->Name("optimizer_update/sgd")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, momentum, "sgd", 0.9f, 5)->Name("optimizer_update/sgd_momentum")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, rmsprop, "rmsprop", 0.0f, 5)->Name("optimizer_update/rmsprop")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, adam, "adam", 0.0f, 7)->Name("optimizer_update/adam")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(train_step)->Name("train_step")->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
