// Chapter 12: what the keras.io convnet's random layers add to a training step.
//   random_translation_training  RandomTranslation in training mode on a
//       (128, 28, 28, 1) batch, shifts of up to 2 pixels: the shifts drawn and
//       every image interpolated (bilinear, reflect). Checked before it is
//       timed: a zero shift must give the batch back unchanged.
//   dropout_training  Dropout(0.5) forward and backward in training mode on the
//       convnet's (128, 1600) features. Checked before it is timed: every
//       output is 0 or twice its input.
//
//   build/bin/12_beyond_bench
//   NN_THREADS=1 build/bin/12_beyond_bench      # one core
#include <benchmark/benchmark.h>

#include <vector>

#include "nn/layers/dropout.hpp"
#include "nn/layers/random_translation.hpp"

namespace {

nn::Tensor batch() {
  nn::Tensor x({128, 28, 28, 1});
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 255) / 255.0f;
  return x;
}

void random_translation_training(benchmark::State& state) {
  const nn::Tensor x = batch();
  nn::Tensor same;
  const std::vector<nn::Translation> none(x.dim(0));
  nn::translate_images(x, none, nn::FillMode::reflect, nn::Interpolation::bilinear, 0.0f, same);
  for (std::size_t i = 0; i < x.size(); ++i)
    if (same[i] != x[i]) {
      state.SkipWithError("translate_images with no shift changed the batch");
      return;
    }
  nn::RandomTranslation layer({.height_factor = 2.0 / 28, .width_factor = 2.0 / 28, .seed = 1});
  layer.training = true;
  for (auto _ : state) {
    nn::ConstView y = layer.forward(x);
    benchmark::DoNotOptimize(y.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * x.dim(0)));  // images
}
BENCHMARK(random_translation_training)->Unit(benchmark::kMicrosecond)->UseRealTime();

void dropout_training(benchmark::State& state) {
  nn::Tensor x({128, 1600});
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 97) / 97.0f + 0.01f;
  nn::Tensor dy(x.shape(), 1.0f);
  nn::Dropout drop({.rate = 0.5, .seed = 1});
  drop.training = true;
  {
    const nn::ConstView y = drop.forward(x);
    for (std::size_t i = 0; i < x.size(); ++i)
      if (y.data()[i] != 0.0f && y.data()[i] != x[i] / 0.5f) {
        state.SkipWithError("Dropout(0.5) gave a value that is neither 0 nor x / 0.5");
        return;
      }
  }
  for (auto _ : state) {
    const nn::ConstView y = drop.forward(x);
    const nn::ConstView dx = drop.backward(x, y.tensor(), dy);
    benchmark::DoNotOptimize(dx.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * x.size()));  // elements
}
BENCHMARK(dropout_training)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
