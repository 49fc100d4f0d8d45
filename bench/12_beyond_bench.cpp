// Chapter 12: what data augmentation adds to a training step. RandomTranslation
// in training mode on a (128, 28, 28, 1) batch, shifts of up to 2 pixels: the
// shifts drawn and every image interpolated (bilinear, reflect). Checked before
// it is timed: a zero shift must give the batch back unchanged.
//
//   build/bin/12_beyond_bench
//   NN_THREADS=1 build/bin/12_beyond_bench      # one core
#include <benchmark/benchmark.h>

#include <vector>

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

}  // namespace
