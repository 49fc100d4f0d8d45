// Chapter 10: where the time of one training step goes. One step at batch 32
// (NN_BATCH overrides), split into each layer's forward and backward pass, the
// loss with its gradient, and the optimizer update; then the whole step.
//
//   build/bin/10_fit_bench                       # both cores
//   NN_THREADS=1 build/bin/10_fit_bench          # one core
//   scripts/plot-fit-breakdown.sh                # the chart in docs/figures
//
// The parts run on the activations of one real forward pass, so each is
// timed on the data it sees in training. fit runs the first two layers as one
// fused step (nn/fused.hpp), timed as "conv2d+max_pooling2d_fused" beside the
// two layers on their own.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <random>

#include "nn/fused.hpp"
#include "nn/model.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"
#include "nn/softmax.hpp"

namespace {

std::size_t batch_size() {
  if (const char* env = std::getenv("NN_BATCH"); env && std::atoi(env) > 0) return static_cast<std::size_t>(std::atoi(env));
  return 32;
}

struct Step {
  nn::Sequential model = nn::make_mnist_model(1);
  nn::Tensor x, y;
  std::vector<nn::ConstView> a;   // a[i]: the input of layer i; a.back(): the logits
  std::vector<nn::ConstView> da;  // da[i]: d loss / d a[i]
  Step() {
    const std::size_t n = batch_size();
    x = nn::Tensor({n, 28, 28, 1});
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (float& v : x.span()) v = u(rng) < 0.8f ? 0.0f : u(rng);  // MNIST-like: mostly background
    std::vector<int> labels(n);
    for (std::size_t i = 0; i < n; ++i) labels[i] = static_cast<int>(i % 10);
    y = nn::one_hot(labels);
    model.compile(nn::make_optimizer("sgd", 0.01f));
    const auto& layers = model.layers();
    a.push_back(x);
    for (const auto& l : layers) a.push_back(l->forward(a.back()));
    da.resize(a.size());
    da.back() = nn::softmax_crossentropy_backward(nn::softmax(a.back()), y);
    for (std::size_t i = layers.size(); i-- > 0;) da[i] = layers[i]->backward(a[i], a[i + 1], da[i + 1], i > 0);
  }
};

Step& step() {
  static Step s;
  return s;
}

void layer_forward(benchmark::State& state, std::size_t i) {
  Step& s = step();
  for (auto _ : state) benchmark::DoNotOptimize(s.model.layers()[i]->forward(s.a[i]).data());
}

void layer_backward(benchmark::State& state, std::size_t i) {
  Step& s = step();
  for (auto _ : state)
    benchmark::DoNotOptimize(s.model.layers()[i]->backward(s.a[i], s.a[i + 1], s.da[i + 1], i > 0).data());
}

// The first two layers fused into one step (nn/fused.hpp), as fit runs them.
// (The model's conv2d.kernel and conv2d.bias, with the default variant.)
void fused_forward(benchmark::State& state) {
  Step& s = step();
  auto w = s.model.weights();
  nn::Tensor y(s.a[2].shape());
  std::vector<std::uint8_t> where;
  // Checked before timing: the fused step gives the two layers' output.
  nn::conv2d_relu_maxpool_forward(s.x, *w[0].tensor, *w[1].tensor, 2, nn::Conv2DVariant::direct3x3, y, where);
  if (!std::equal(y.span().begin(), y.span().end(), s.a[2].span().begin())) {
    state.SkipWithError("the fused step differs from Conv2D + MaxPooling2D");
    return;
  }
  for (auto _ : state)
    nn::conv2d_relu_maxpool_forward(s.x, *w[0].tensor, *w[1].tensor, 2, nn::Conv2DVariant::direct3x3, y, where);
}

void fused_backward(benchmark::State& state) {
  Step& s = step();
  auto w = s.model.weights();
  nn::Tensor y(s.a[2].shape());
  std::vector<std::uint8_t> where;
  nn::conv2d_relu_maxpool_forward(s.x, *w[0].tensor, *w[1].tensor, 2, nn::Conv2DVariant::direct3x3, y, where);
  nn::Conv2DGradients g;
  for (auto _ : state)
    nn::conv2d_relu_maxpool_backward(s.x, *w[0].tensor, y, where, s.da[2], 2, nn::Conv2DVariant::direct3x3, g);
}

void loss(benchmark::State& state) {
  Step& s = step();
  for (auto _ : state) {
    nn::Tensor p = nn::softmax(s.a.back());
    benchmark::DoNotOptimize(nn::softmax_crossentropy(s.a.back(), s.y));  // the model's loss, from the logits
    benchmark::DoNotOptimize(nn::softmax_crossentropy_backward(p, s.y).data());
  }
}

void update(benchmark::State& state) {
  Step& s = step();
  auto params = s.model.parameters();
  auto grads = s.model.gradients();
  std::vector<const nn::Tensor*> const_grads(grads.begin(), grads.end());
  nn::SGD sgd({.learning_rate = 1e-9f});  // a tiny rate: the weights barely move over the run
  for (auto _ : state) sgd.step(params, const_grads);
}

void whole_step(benchmark::State& state) {
  Step& s = step();
  for (auto _ : state) benchmark::DoNotOptimize(s.model.train_on_batch(s.x, s.y));
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(batch_size()));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const auto& layers = step().model.layers();
  for (std::size_t i = 0; i < layers.size(); ++i)
    benchmark::RegisterBenchmark(("forward/" + layers[i]->name).c_str(), layer_forward, i)
        ->Unit(benchmark::kMicrosecond)->UseRealTime();
  benchmark::RegisterBenchmark("forward/conv2d+max_pooling2d_fused", fused_forward)
      ->Unit(benchmark::kMicrosecond)->UseRealTime();
  benchmark::RegisterBenchmark("loss/softmax_crossentropy", loss)->Unit(benchmark::kMicrosecond)->UseRealTime();
  for (std::size_t i = layers.size(); i-- > 0;)
    benchmark::RegisterBenchmark(("backward/" + layers[i]->name).c_str(), layer_backward, i)
        ->Unit(benchmark::kMicrosecond)->UseRealTime();
  benchmark::RegisterBenchmark("backward/conv2d+max_pooling2d_fused", fused_backward)
      ->Unit(benchmark::kMicrosecond)->UseRealTime();
  benchmark::RegisterBenchmark("update/sgd", update)->Unit(benchmark::kMicrosecond)->UseRealTime();
  benchmark::RegisterBenchmark("train_step/total", whole_step)->Unit(benchmark::kMicrosecond)->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
