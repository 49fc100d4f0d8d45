// Chapter 13: what a gradient tape costs. One training step of the seed model
// (batch 32, SGD), three ways, in one run:
//   step/layers_fused    train_on_batch as fit runs it: the convolution fused
//                        with its pooling, Dense updating its kernel block by
//                        block during its backward pass, every buffer reused
//   step/layers_unfused  the same with fusion off: each layer on its own
//   step/tape            tape_train_step: the forward pass recorded on a
//                        fresh tape, backward from the loss, then the
//                        optimizer's step; every value and gradient allocated
// Checked before timing: one step each from the same weights must leave the
// unfused layers and the tape with the same weights, bit for bit.
// Counters: tape_MB, what the tape holds at the end of a step (values, what
// the operations kept, gradients); entries, how many it recorded.
//
//   build/bin/13_gradient_tape_bench
//   NN_THREADS=1 build/bin/13_gradient_tape_bench      # one core
#include <benchmark/benchmark.h>

#include <cstring>

#include "nn/model.hpp"
#include "nn/optimizer.hpp"
#include "nn/tape.hpp"

namespace {

struct Batch {
  nn::Tensor x{nn::Shape{32, 28, 28, 1}}, y{nn::Shape{32, 10}};
  Batch() {
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37) % 256) / 255.0f;
    for (std::size_t n = 0; n < 32; ++n) y(n, (n * 7) % 10) = 1.0f;
  }
};

nn::Sequential compiled(bool fusion) {
  nn::Sequential model = nn::make_mnist_model(1);
  model.set_fusion(fusion);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  return model;
}

bool tape_matches_layers(const Batch& b) {
  nn::Sequential by_hand = compiled(false), by_tape = compiled(true);
  by_hand.train_on_batch(b.x, b.y);
  nn::tape_train_step(by_tape, b.x, b.y);
  const auto w1 = by_hand.parameters(), w2 = by_tape.parameters();
  for (std::size_t i = 0; i < w1.size(); ++i)
    if (std::memcmp(w1[i]->value.data(), w2[i]->value.data(), w1[i]->value.size() * sizeof(float)) != 0) return false;
  return true;
}

void step(benchmark::State& state, int way) {
  const Batch b;
  if (!tape_matches_layers(b)) {
    state.SkipWithError("one step through the tape did not give the unfused layers' weights");
    return;
  }
  nn::Sequential model = compiled(way == 0);
  for (auto _ : state) {
    const double loss = way == 2 ? nn::tape_train_step(model, b.x, b.y) : model.train_on_batch(b.x, b.y);
    benchmark::DoNotOptimize(loss);
  }
  if (way == 2) {  // what one step's tape holds, recorded once more outside the timing
    nn::Tape tape;
    tape.backward(nn::softmax_crossentropy(model.record(tape.input(b.x), true), b.y));
    state.counters["tape_MB"] = static_cast<double>(tape.bytes()) / 1e6;
    state.counters["entries"] = static_cast<double>(tape.size());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 32));  // images
}
BENCHMARK_CAPTURE(step, layers_fused, 0)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(step, layers_unfused, 1)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK_CAPTURE(step, tape, 2)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
