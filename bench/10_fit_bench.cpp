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
// two layers on their own. Every part is checked before it is timed: each
// layer's output and gradients against the naive variants of its kernels, the
// fused step against the two layers, the loss and its gradient against the
// double-precision kernels; a part that fails is reported as an error, not timed.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>

#include "nn/activations.hpp"
#include "nn/conv2d.hpp"
#include "nn/dense.hpp"
#include "nn/fused.hpp"
#include "nn/layers/dense.hpp"
#include "nn/layers.hpp"
#include "nn/model.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"
#include "nn/pooling.hpp"
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

// "" when every |a - b| <= atol + rtol |b| (and the shapes agree), else what differs.
std::string differs(const char* what, const nn::Tensor& a, const nn::Tensor& b, double atol, double rtol) {
  if (!(a.shape() == b.shape())) return std::string(what) + ": shape " + a.shape().str() + ", expected " + b.shape().str();
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!(std::abs(double(a[i]) - b[i]) <= atol + rtol * std::abs(double(b[i]))))
      return std::string(what) + " differs from the naive reference at " + std::to_string(i) + ": " +
             std::to_string(a[i]) + " instead of " + std::to_string(b[i]);
  return "";
}

// The layers of the model with the naive variants of their kernels, on the
// step's activations: what each layer's forward (backward) pass must give.
// Returns "" or what differs.
std::string check_forward(Step& s, std::size_t i) {
  const std::string type = s.model.layers()[i]->type();
  auto params = s.model.layers()[i]->parameters();
  const nn::Tensor& x = s.a[i];
  nn::Tensor want;
  if (type == "Conv2D") {
    want = nn::conv2d_forward(x, params[0]->value, params[1]->value, nn::Conv2DVariant::naive, nn::Activation::relu);
  } else if (type == "MaxPooling2D") {
    want = nn::max_pool2d_forward(x, 2, nn::MaxPoolVariant::naive);
  } else if (type == "Flatten") {
    want = nn::Tensor(x).reshape(s.a[i + 1].shape());  // a copy, reshaped
  } else if (type == "Dense") {
    want = nn::Tensor(s.a[i + 1].shape());
    nn::dense_forward(x, params[0]->value, params[1]->value, want, nn::DenseVariant::naive);
    if (i + 1 < s.model.layers().size()) nn::relu_inplace(want);  // every Dense but the last has activation="relu"
  } else {
    return "no reference for a " + type + " layer";
  }
  return differs("the output", s.model.layers()[i]->forward(x), want, 1e-5, 1e-4);
}

std::string check_backward(Step& s, std::size_t i) {
  auto& layer = *s.model.layers()[i];
  const std::string type = layer.type();
  auto params = layer.parameters();
  const nn::Tensor& x = s.a[i];
  const nn::Tensor& y = s.a[i + 1];
  const nn::Tensor& dy = s.da[i + 1];
  const nn::ConstView dx = layer.backward(x, y, dy, i > 0);
  if (type == "Conv2D") {
    const auto want = nn::conv2d_backward(x, params[0]->value, nn::relu_backward(y, dy), nn::Conv2DVariant::naive, false);
    std::string e = differs("dkernel", params[0]->grad, want.dkernel, 1e-4, 1e-4);
    return e.empty() ? differs("dbias", params[1]->grad, want.dbias, 1e-4, 1e-4) : e;
  }
  if (type == "MaxPooling2D") return differs("dx", dx, nn::max_pool2d_backward(x, dy, 2, nn::MaxPoolVariant::naive), 0, 0);
  if (type == "Flatten") return differs("dx", dx, dy.reshape(x.shape()), 0, 0);
  if (type == "Dense") {
    const bool relu = i + 1 < s.model.layers().size();  // every Dense but the last
    const nn::Tensor g = relu ? nn::relu_backward(y, dy) : dy;
    const auto want = nn::dense_backward(x, params[0]->value, g, nn::DenseVariant::naive, i > 0);
    std::string e = differs("dkernel", params[0]->grad, want.dkernel, 1e-4, 1e-4);
    if (e.empty()) e = differs("dbias", params[1]->grad, want.dbias, 1e-4, 1e-4);
    if (e.empty() && i > 0) e = differs("dx", dx, want.dx, 1e-4, 1e-4);
    return e;
  }
  return "no reference for a " + type + " layer";
}

void layer_forward(benchmark::State& state, std::size_t i) {
  Step& s = step();
  if (std::string e = check_forward(s, i); !e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(s.model.layers()[i]->forward(s.a[i]).data());
}

void layer_backward(benchmark::State& state, std::size_t i) {
  Step& s = step();
  if (std::string e = check_backward(s, i); !e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  for (auto _ : state)
    benchmark::DoNotOptimize(s.model.layers()[i]->backward(s.a[i], s.a[i + 1], s.da[i + 1], i > 0).data());
}

// The first two layers fused into one step (nn/fused.hpp), as fit runs them.
// (The model's conv2d.kernel and conv2d.bias, with the default variant.)
void fused_forward(benchmark::State& state) {
  Step& s = step();
  auto w = s.model.named_parameters();
  nn::Tensor y(s.a[2].shape());
  std::vector<std::uint8_t> where;
  // Checked before timing: the fused step gives the two layers' output.
  nn::conv2d_relu_maxpool_forward(s.x, w[0].parameter->value, w[1].parameter->value, 2, nn::Conv2DVariant::direct3x3, y, where);
  if (!std::equal(y.span().begin(), y.span().end(), s.a[2].span().begin())) {
    state.SkipWithError("the fused step differs from Conv2D + MaxPooling2D");
    return;
  }
  for (auto _ : state)
    nn::conv2d_relu_maxpool_forward(s.x, w[0].parameter->value, w[1].parameter->value, 2, nn::Conv2DVariant::direct3x3, y, where);
}

void fused_backward(benchmark::State& state) {
  Step& s = step();
  auto w = s.model.named_parameters();
  nn::Tensor y(s.a[2].shape());
  std::vector<std::uint8_t> where;
  nn::conv2d_relu_maxpool_forward(s.x, w[0].parameter->value, w[1].parameter->value, 2, nn::Conv2DVariant::direct3x3, y, where);
  nn::Tensor dkernel, dbias;
  // Checked before timing: the fused gradients are those of MaxPooling2D ->
  // ReLU -> Conv2D backward with the naive kernels, up to float summation order.
  nn::conv2d_relu_maxpool_backward(s.x, w[0].parameter->value, y, where, s.da[2], 2, nn::Conv2DVariant::direct3x3, dkernel, dbias,
                                     nullptr);
  const nn::Tensor maps = nn::conv2d_forward(s.x, w[0].parameter->value, w[1].parameter->value, nn::Conv2DVariant::naive,
                                             nn::Activation::relu);
  const auto want = nn::conv2d_backward(
      s.x, w[0].parameter->value, nn::relu_backward(maps, nn::max_pool2d_backward(maps, s.da[2], 2, nn::MaxPoolVariant::naive)),
      nn::Conv2DVariant::naive, /*input_gradient=*/false);
  std::string e = differs("the fused dkernel", dkernel, want.dkernel, 1e-4, 1e-4);
  if (e.empty()) e = differs("the fused dbias", dbias, want.dbias, 1e-4, 1e-4);
  if (!e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  for (auto _ : state)
    nn::conv2d_relu_maxpool_backward(s.x, w[0].parameter->value, y, where, s.da[2], 2, nn::Conv2DVariant::direct3x3, dkernel, dbias,
                                     nullptr);
}

// The loss and its gradient, into buffers allocated once, as the model does.
void loss(benchmark::State& state) {
  Step& s = step();
  const nn::Tensor& z = s.a.back();
  nn::Tensor p(z.shape()), dz(z.shape());
  // Checked before timing, against the double-precision kernels: softmax, the
  // loss from the logits, and the chain of the two separate backward passes
  // (equal to the fused (p - y) / N: no p of this batch is near the clip).
  const std::size_t n = z.dim(0), k = z.dim(1);
  std::vector<double> zd(z.span().begin(), z.span().end()), yd(s.y.span().begin(), s.y.span().end());
  std::vector<double> pd(n * k), dpd(n * k), dzd(n * k);
  nn::softmax_rows(zd.data(), pd.data(), n, k);
  nn::crossentropy_backward_rows(pd.data(), yd.data(), dpd.data(), n, k);
  nn::softmax_backward_rows(pd.data(), dpd.data(), dzd.data(), n, k);
  const double want = nn::softmax_crossentropy_rows(zd.data(), yd.data(), n, k);
  nn::softmax(z, p);
  const double got = nn::softmax_crossentropy(z, s.y);
  nn::softmax_crossentropy_backward(p, s.y, dz);
  std::string e = std::abs(got - want) <= 1e-5 * want ? "" : "the loss differs from the double-precision one";
  if (e.empty()) e = differs("p", p, nn::Tensor(p.shape(), std::vector<float>(pd.begin(), pd.end())), 1e-7, 1e-5);
  if (e.empty()) e = differs("dz", dz, nn::Tensor(dz.shape(), std::vector<float>(dzd.begin(), dzd.end())), 1e-7, 1e-4);
  if (!e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  for (auto _ : state) {
    nn::softmax(z, p);
    benchmark::DoNotOptimize(nn::softmax_crossentropy(z, s.y));  // the model's loss, from the logits
    nn::softmax_crossentropy_backward(p, s.y, dz);
    benchmark::DoNotOptimize(dz.data());
  }
}

void update(benchmark::State& state) {
  Step& s = step();
  auto params = s.model.parameters();
  {  // Checked before timing, on copies: one step at rate 1 is w - g, exactly.
    std::vector<nn::Parameter> copies;
    for (const nn::Parameter* p : params) copies.push_back(*p);
    std::vector<nn::Parameter*> copy_ptrs;
    for (nn::Parameter& c : copies) copy_ptrs.push_back(&c);
    nn::SGD one({.learning_rate = 1.0f});
    one.step(copy_ptrs);
    for (std::size_t t = 0; t < params.size(); ++t)
      for (std::size_t i = 0; i < params[t]->size(); ++i)
        if (copies[t].value[i] != params[t]->value[i] - params[t]->grad[i]) {
          state.SkipWithError("an SGD step is not w - lr * g");
          return;
        }
  }
  nn::SGD sgd({.learning_rate = 1e-9f});  // a tiny rate: the weights barely move over the run
  for (auto _ : state) sgd.step(params);
}

// Dense's backward pass with the update of its kernel fused into it, as fit
// runs it (Dense::backward_and_update, with SGD). Checked before timing, on
// a copy of the layer: the same weights, bit for bit, as backward followed by
// an SGD step.
void dense_backward_update(benchmark::State& state, std::size_t i) {
  Step& s = step();
  auto& layer = dynamic_cast<nn::Dense&>(*s.model.layers()[i]);
  {
    nn::Dense fused = layer, apart = layer;
    nn::SGD sgd_fused({.learning_rate = 0.5f}), sgd_apart({.learning_rate = 0.5f});
    std::vector<nn::Parameter*> pf = fused.parameters(), pa = apart.parameters();
    sgd_fused.begin_step(pf);
    const nn::Tensor dx_fused = fused.backward_and_update(s.a[i], s.a[i + 1], s.da[i + 1], i > 0, sgd_fused).tensor();
    const nn::Tensor dx_apart = apart.backward(s.a[i], s.a[i + 1], s.da[i + 1], i > 0).tensor();
    sgd_apart.step(pa);
    for (std::size_t t = 0; t < pf.size(); ++t)
      if (!std::equal(pf[t]->value.span().begin(), pf[t]->value.span().end(), pa[t]->value.span().begin())) {
        state.SkipWithError("the fused update differs from backward + an SGD step");
        return;
      }
    if (!std::equal(dx_fused.span().begin(), dx_fused.span().end(), dx_apart.span().begin())) {
      state.SkipWithError("the fused pass's dx differs from backward's");
      return;
    }
  }
  nn::SGD sgd({.learning_rate = 1e-9f});  // a tiny rate: the weights barely move over the run
  std::vector<nn::Parameter*> params = layer.parameters();
  for (auto _ : state) {
    sgd.begin_step(params);
    benchmark::DoNotOptimize(layer.backward_and_update(s.a[i], s.a[i + 1], s.da[i + 1], i > 0, sgd).data());
  }
}

void whole_step(benchmark::State& state) {
  Step& s = step();
  // Checked before timing: the step's loss is the loss of the layers run one
  // by one on the current weights (Google Benchmark calls this function more
  // than once, and each call trains).
  nn::ConstView z = s.x;
  for (const auto& l : s.model.layers()) z = l->forward(z);
  const double want = nn::categorical_crossentropy(nn::softmax(z), s.y);
  const double got = s.model.train_on_batch(s.x, s.y);
  if (!(std::abs(got - want) <= 1e-4 * want)) {
    state.SkipWithError(("the training step's loss " + std::to_string(got) + " is not the parts' " +
                         std::to_string(want)).c_str());
    return;
  }
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
  for (std::size_t i = layers.size(); i-- > 0;)
    if (layers[i]->type() == "Dense")
      benchmark::RegisterBenchmark(("backward+update/" + layers[i]->name).c_str(), dense_backward_update, i)
          ->Unit(benchmark::kMicrosecond)->UseRealTime();
  benchmark::RegisterBenchmark("update/sgd", update)->Unit(benchmark::kMicrosecond)->UseRealTime();
  benchmark::RegisterBenchmark("train_step/total", whole_step)->Unit(benchmark::kMicrosecond)->UseRealTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
