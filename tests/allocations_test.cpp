// docs/architecture.md: "a training step allocates nothing" after the first
// batch. This binary replaces the global operator new to count the heap
// allocations made while counting is on, and counts them over training steps.
#include <gtest/gtest.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <random>
#include <string>

#include "nn/layers/conv2d.hpp"
#include "nn/layers/dense.hpp"
#include "nn/layers/flatten.hpp"
#include "nn/layers/max_pooling2d.hpp"
#include "nn/model.hpp"
#include "nn/optimizer.hpp"
#include "nn/parallel.hpp"

namespace {
std::atomic<bool> counting{false};
std::atomic<std::size_t> allocations{0};
std::atomic<std::size_t> largest{0};  // the largest single allocation counted, in bytes
}  // namespace

// Every form of new goes through these two (the array and nothrow forms call
// them by default); aligned new has its own.
static void note(std::size_t n) {
  if (!counting.load(std::memory_order_relaxed)) return;
  allocations.fetch_add(1, std::memory_order_relaxed);
  std::size_t seen = largest.load(std::memory_order_relaxed);
  while (n > seen && !largest.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
  }
}

void* operator new(std::size_t n) {
  note(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  note(n);
  const std::size_t align = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(align, (n + align - 1) / align * align)) return p;
  throw std::bad_alloc();
}
// Inlined into a delete expression, free() looks to GCC like a mismatch with
// the new expression; it is the pair of the malloc above.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

namespace {

// The course's architecture, smaller: conv + pool (fused), Dense(relu), Dense.
nn::Sequential small_model() {
  nn::Sequential model({12, 12, 1});
  model.add(nn::Conv2D({.filters = 4, .kernel = 3, .activation = nn::Activation::relu, .seed = 1}));
  model.add(nn::MaxPooling2D({.pool = 2}));
  model.add(nn::Flatten());
  model.add(nn::Dense({.units = 8, .input_dim = 100, .activation = nn::Activation::relu, .seed = 2}));
  model.add(nn::Dense({.units = 3, .input_dim = 8, .seed = 3}));
  return model;
}

struct Count {
  std::size_t allocations = 0, largest = 0;  // per step; bytes
};

// The heap allocations of `steps` calls of train_on_batch on a batch of n
// images, after the first call (which makes the buffers).
Count count_steps(const std::string& optimizer, std::size_t n, int steps) {
  nn::Sequential model = small_model();
  model.compile(nn::make_optimizer(optimizer, 0.01f));
  nn::Tensor x({n, 12, 12, 1}), y({n, 3});  // (N, 12, 12, 1), one-hot (N, 3)
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = u(rng);
  for (std::size_t i = 0; i < n; ++i) y[i * 3 + i % 3] = 1;
  model.train_on_batch(x, y);
  allocations = 0;
  largest = 0;
  counting = true;
  for (int i = 0; i < steps; ++i) model.train_on_batch(x, y);
  counting = false;
  return {allocations.load() / static_cast<std::size_t>(steps), largest.load()};
}

}  // namespace

TEST(Allocations, TheCounterSeesAnAllocation) {
  allocations = 0;
  counting = true;
  auto* p = new std::string(100, 'x');  // the string, and its characters (too many for its own buffer)
  counting = false;
  delete p;
  EXPECT_EQ(allocations.load(), 2u);
}

// What docs/architecture.md says of a training step after the first: no
// buffer that holds the batch is made again. What a step still allocates is
// small and short-lived: the parameter lists, the thread pool's tasks, and the
// convolution's scratch of one image at a time (its im2col matrix: 10 x 10
// output pixels x 9 window entries here), a few per image.
class TrainingStep : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainingStep, MakesNoBufferOfTheBatchAfterTheFirst) {
  const std::size_t one_image_cols = 10 * 10 * 9 * sizeof(float);  // 3600 bytes
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}}) {
    nn::set_thread_count(threads);
    const Count small = count_steps(GetParam(), 8, 4), big = count_steps(GetParam(), 64, 4);
    const std::string where = GetParam() + " with " + std::to_string(threads) + " threads";
    // The largest allocation does not grow with the batch: one image's scratch at most.
    EXPECT_EQ(small.largest, big.largest) << where;
    EXPECT_LE(big.largest, one_image_cols) << where;
    // A few per image (6 measured), not one per entry of a tensor.
    EXPECT_LE(big.allocations, 8u * 64u) << where;
    std::printf("%s: %zu allocations per step of 64 images (%zu of 8), the largest %zu bytes\n", where.c_str(),
                big.allocations, small.allocations, big.largest);
  }
  nn::set_thread_count(0);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, TrainingStep, ::testing::Values("sgd", "adam", "rmsprop"));
