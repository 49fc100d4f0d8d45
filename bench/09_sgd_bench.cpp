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

#include <algorithm>
#include <cmath>
#include <random>

#include "nn/model.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"

namespace {

// The parameters to update, in one of two layouts, both 542,230 floats:
//   per_tensor  the model's six parameters, as the library keeps them (one
//               Tensor each, one loop per tensor)
//   one_buffer  one parameter holding all of them, as llm.c keeps its
//               weights (one contiguous buffer, one loop)
// The difference is the cost of keeping parameters apart.
enum class Layout { per_tensor, one_buffer };

void update(benchmark::State& state, const std::string& name, float momentum, int floats_per_param, Layout layout) {
  nn::Sequential model = nn::make_mnist_model(1);
  std::vector<nn::Parameter*> params = model.parameters();
  nn::Parameter all("all", nn::Tensor({model.param_count()}));
  if (layout == Layout::one_buffer) {
    std::size_t at = 0;
    for (const nn::Parameter* p : params)
      at = static_cast<std::size_t>(std::copy(p->value.data(), p->value.data() + p->size(), all.value.data() + at) -
                                    all.value.data());
    params = {&all};
  }
  for (nn::Parameter* p : params) p->grad.fill(1e-3f);
  auto opt = nn::make_optimizer(name, name == "sgd" ? 0.01f : 0.0f, momentum);
  // Checked before timing: the first step moves a weight against its gradient
  // (by lr * g for SGD, by about lr for Adam and RMSprop).
  const float before = params[0]->value[0];
  opt->step(params);
  const float moved = before - params[0]->value[0];
  if (!(moved > 0.0f)) {
    state.SkipWithError("the update did not move the weight against its gradient");
    return;
  }
  for (auto _ : state) {
    opt->step(params);
    benchmark::DoNotOptimize(params[0]->value.data());
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

BENCHMARK_CAPTURE(update, sgd, "sgd", 0.0f, 3, Layout::per_tensor)->Name("optimizer_update/sgd")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, sgd_one_buffer, "sgd", 0.0f, 3, Layout::one_buffer)->Name("optimizer_update/sgd/one_buffer")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, momentum, "sgd", 0.9f, 5, Layout::per_tensor)->Name("optimizer_update/sgd_momentum")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, rmsprop, "rmsprop", 0.0f, 5, Layout::per_tensor)->Name("optimizer_update/rmsprop")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, adam, "adam", 0.0f, 7, Layout::per_tensor)->Name("optimizer_update/adam")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(update, adam_one_buffer, "adam", 0.0f, 7, Layout::one_buffer)->Name("optimizer_update/adam/one_buffer")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(train_step)->Name("train_step")->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
