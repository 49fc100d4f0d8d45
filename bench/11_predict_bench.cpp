// Chapter 11: reading one digit.
//   predict_one  model.predict on one (1, 28, 28, 1) image with the model of
//       chapters 04 to 10 (seeded weights): what a warm call of
//       `ch11-predict --time-inference` times, and what the playground runs
//       for each stroke. Checked before it is timed: its probabilities equal
//       those of the same image predicted in a batch of 32 (another path
//       through the GEMM), to 1e-6, and sum to 1.
//   prepare_like_mnist  a 280x280 drawing (the playground's canvas) made into
//       a 28x28 digit. Checked before it is timed: a solid 100x200 block comes
//       out as a full 10x20 box whose centre of mass is the centre, (14, 14).
//
//   build/bin/11_predict_bench
//   NN_THREADS=1 build/bin/11_predict_bench      # one core
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "nn/model.hpp"
#include "nn/pgm.hpp"

namespace {

void predict_one(benchmark::State& state) {
  nn::Sequential model = nn::make_mnist_model(1);
  nn::Tensor batch({32, 28, 28, 1});
  for (std::size_t i = 0; i < batch.size(); ++i) batch[i] = static_cast<float>((i * 7919) % 256) / 255.0f;
  const nn::Tensor one(nn::Shape{1, 28, 28, 1}, batch.span().subspan(0, 784));  // image 0 of the batch
  const nn::Tensor in_batch = model.predict(batch);
  const nn::Tensor alone = model.predict(one);
  float sum = 0;
  for (std::size_t d = 0; d < 10; ++d) {
    sum += alone[d];
    if (std::abs(alone[d] - in_batch[d]) > 1e-6f) {
      state.SkipWithError(("predict on one image differs from the same image in a batch at digit " +
                           std::to_string(d)).c_str());
      return;
    }
  }
  if (std::abs(sum - 1.0f) > 1e-5f) {
    state.SkipWithError("predict's probabilities do not sum to 1");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(model.predict(one));
  state.SetItemsProcessed(state.iterations());  // images
}
BENCHMARK(predict_one)->Unit(benchmark::kMicrosecond);

void prepare_like_mnist(benchmark::State& state) {
  const std::size_t side = 280;
  std::vector<std::uint8_t> drawing(side * side, 0);
  for (std::size_t y = 40; y < 240; ++y)
    for (std::size_t x = 60; x < 160; ++x) drawing[y * side + x] = 255;
  const std::vector<std::uint8_t> digit = nn::prepare_like_mnist(drawing, side, side);
  double mass = 0, mx = 0, my = 0;
  std::size_t full = 0;
  for (std::size_t y = 0; y < 28; ++y)
    for (std::size_t x = 0; x < 28; ++x) {
      const double v = digit[y * 28 + x];
      mass += v, mx += v * (static_cast<double>(x) + 0.5), my += v * (static_cast<double>(y) + 0.5);
      full += digit[y * 28 + x] == 255;
    }
  if (full != 10 * 20 || mass != 255.0 * 200 || std::abs(mx / mass - 14) > 1e-9 || std::abs(my / mass - 14) > 1e-9) {
    state.SkipWithError("prepare_like_mnist: a solid block did not come out as a full, centred 10x20 box");
    return;
  }
  for (auto _ : state) benchmark::DoNotOptimize(nn::prepare_like_mnist(drawing, side, side));
  state.SetItemsProcessed(state.iterations());  // drawings
}
BENCHMARK(prepare_like_mnist)->Unit(benchmark::kMicrosecond);

}  // namespace
