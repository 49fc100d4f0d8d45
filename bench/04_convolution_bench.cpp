// Chapter 04: every Conv2D variant, forward and backward, at the model's
// shapes: x (N, 28, 28, 1) -> y (N, 26, 26, 32), 3x3 kernel, ReLU, for
// N = 1, 32 and 256; `threaded` and `direct3x3` on the second layer of
// Keras's "Simple MNIST convnet", (128, 13, 13, 32) -> (128, 11, 11, 64).
// Plus the machine's peak (a loop of independent FMAs) and the GEMM on
// square matrices.
//
//   build/bin/04_convolution_bench
//   build/bin/04_convolution_bench --benchmark_filter='32to64' --benchmark_repetitions=3
//   build/bin/04_convolution_bench --benchmark_filter='conv2d_forward/.*/32'
//   scripts/plot-bench-04.sh        # the chart in docs/figures
//
// Each benchmark checks its result against the naive variant before timing
// (the peak, which computes nothing useful, against the same recurrence in
// scalar FMAs), and writes into buffers allocated before the timed loop.
// "Time" is wall-clock time (the threaded variants use every core), and
// GFLOP/s is counted from wall-clock time too:
//   forward:  2 * N * OH * OW * KH * KW * C_in * C_out   (12.5 MFLOP per 32 images)
//   backward: twice that: dkernel and dx, each the same number of multiply-adds;
//             the bias gradient (N * OH * OW * C_out adds) is not counted.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "nn/conv2d.hpp"
#include "nn/gemm.hpp"
#include "nn/parallel.hpp"
#include "nn/simd.hpp"

namespace {

using Clock = std::chrono::steady_clock;

nn::Tensor random_tensor(const nn::Shape& shape, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  nn::Tensor t(shape);
  for (float& v : t.span()) v = u(rng);
  return t;
}

// The largest |a - b| relative to max(1, |b|).
double worst_error(const nn::Tensor& a, const nn::Tensor& b) {
  if (a.shape() != b.shape()) return INFINITY;
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::abs(double(a[i]) - b[i]) / std::max(1.0, std::abs(double(b[i]))));
  return worst;
}

// Runs the timed loop and reports GFLOP/s from wall-clock time.
template <class F>
void timed(benchmark::State& state, double flops_per_iteration, F body) {
  const auto start = Clock::now();
  for (auto _ : state) body();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  state.counters["GFLOP/s"] = flops_per_iteration * static_cast<double>(state.iterations()) / seconds / 1e9;
}

// A Conv2D layer with a 3x3 kernel, random weights and inputs. The model's:
// Conv2D(32, (3, 3), activation="relu") on (N, 28, 28, 1). Keras's "Simple
// MNIST convnet" (keras-team/keras-io, examples/vision/mnist_convnet.py) adds
// a second, Conv2D(64, (3, 3), activation="relu") on (N, 13, 13, 32): the
// shape where the window is C_in = 32 deep.
struct Layer {
  std::size_t h, w, c_in, c_out;
  nn::Tensor kernel = random_tensor({3, 3, c_in, c_out}, 1);
  nn::Tensor bias = random_tensor({c_out}, 2);
  nn::Tensor x(std::size_t n) const { return random_tensor({n, h, w, c_in}, 3 + n); }
  nn::Tensor dy(std::size_t n) const { return random_tensor({n, h - 2, w - 2, c_out}, 4 + n); }
};
Layer first_layer() { return {28, 28, 1, 32}; }
Layer second_layer() { return {13, 13, 32, 64}; }

// [snippet bench-forward]
void conv2d_forward(benchmark::State& state, const Layer& m, nn::Conv2DVariant variant, std::size_t batch) {
  {  // the check: this variant against naive, on a few images
    const nn::Tensor x = m.x(std::min<std::size_t>(batch, 4));
    const double err = worst_error(nn::conv2d_forward(x, m.kernel, m.bias, variant, nn::Activation::relu),
                                   nn::conv2d_forward(x, m.kernel, m.bias, nn::Conv2DVariant::naive,
                                                      nn::Activation::relu));
    if (err > 1e-5) return state.SkipWithError(("differs from naive by " + std::to_string(err)).c_str());
  }
  const nn::Tensor x = m.x(batch);
  nn::Tensor y({batch, m.h - 2, m.w - 2, m.c_out});
  const double flops = nn::conv2d_dims(x.shape(), m.kernel.shape()).forward_flops();
  timed(state, flops, [&] {
    nn::conv2d_forward(x, m.kernel, m.bias, y, variant, nn::Activation::relu);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  });
}
// [end snippet bench-forward]

void conv2d_backward(benchmark::State& state, const Layer& m, nn::Conv2DVariant variant, std::size_t batch) {
  {
    const std::size_t n = std::min<std::size_t>(batch, 4);
    const nn::Tensor x = m.x(n), dy = m.dy(n);
    const auto got = nn::conv2d_backward(x, m.kernel, dy, variant);
    const auto want = nn::conv2d_backward(x, m.kernel, dy, nn::Conv2DVariant::naive);
    const double err = std::max({worst_error(got.dkernel, want.dkernel), worst_error(got.dbias, want.dbias),
                                 worst_error(got.dx, want.dx)});
    if (err > 1e-4) return state.SkipWithError(("differs from naive by " + std::to_string(err)).c_str());
  }
  const nn::Tensor x = m.x(batch), dy = m.dy(batch);
  nn::Conv2DGradients grads;  // allocated here, once, as the forward benchmark allocates y
  nn::conv2d_backward(x, m.kernel, dy, variant, grads.dkernel, grads.dbias, &grads.dx);
  const double flops = 2 * nn::conv2d_dims(x.shape(), m.kernel.shape()).forward_flops();  // dkernel + dx
  timed(state, flops, [&] {
    nn::conv2d_backward(x, m.kernel, dy, variant, grads.dkernel, grads.dbias, &grads.dx);
    benchmark::DoNotOptimize(grads.dkernel.data());
    benchmark::DoNotOptimize(grads.dx.data());
    benchmark::ClobberMemory();
  });
}

// ------------------------------------------------------------------ peak

// [snippet peak-fma]
// The most a core can do: kChains independent chains of vector FMAs, enough
// to cover the FMA latency (4 to 5 cycles) times the FMA units (2), so that
// the core starts an FMA in every unit on every cycle. Each FMA on a vector
// of kVecWidth floats counts 2 * kVecWidth flops. The step is
// acc = acc * a + acc, one instruction on x86 and on ARM alike (ARM's FMA
// adds into its destination, so `acc * a + b` would need a copy per step).
// The chains and the operand must all stay in registers: AVX-512 and aarch64
// have 32 vector registers, AVX2 and SSE 16. One more chain than fits, and
// the compiler spills accumulators to the stack: that measures the stack.
// Without an FMA instruction (SSE: x86-64-v2) each step is a multiply and an
// add, two instructions for the same 2 * kVecWidth flops, and the peak is
// what the course's kernels can do on that machine.
#if NN_HAVE_SIMD
#if defined(__AVX512F__) || defined(__aarch64__)
constexpr std::size_t kVecRegisters = 32;
#else
constexpr std::size_t kVecRegisters = 16;
#endif
#if defined(__FMA__) || defined(__aarch64__)
constexpr bool kHasFma = true;
#else
constexpr bool kHasFma = false;
#endif
constexpr std::size_t kChains = kVecRegisters == 32 ? 16 : 12;
static_assert(kChains + 1 <= kVecRegisters, "the accumulators would spill to the stack");
static_assert(kChains >= 5 * 2, "too few chains to keep both FMA units busy");
constexpr std::size_t kFmaIterations = 1 << 20;

float fma_loop(std::size_t iterations) {
  using nn::simd::Vec;
  Vec acc[kChains];
  for (std::size_t c = 0; c < kChains; ++c) acc[c] = nn::simd::broadcast(1.0f + 0.001f * c);
  Vec a = nn::simd::broadcast(1e-7f);
  benchmark::DoNotOptimize(a);  // no code: hides the value from the optimiser
  for (std::size_t i = 0; i < iterations; ++i)
#pragma GCC unroll 16
    for (std::size_t c = 0; c < kChains; ++c) acc[c] = acc[c] * a + acc[c];  // one FMA (SSE: mulps + addps)
  alignas(64) float lanes[nn::simd::kVecWidth];
  float sum = 0;
  for (std::size_t c = 0; c < kChains; ++c) {
    nn::simd::store(lanes, acc[c]);
    for (float v : lanes) sum += v;
  }
  return sum;
}

// The same recurrence one lane at a time, rounded as the vector loop rounds:
// once with std::fma, twice without an FMA instruction. Checks that the
// vector loop runs the steps it is credited with.
float fma_loop_scalar(std::size_t iterations) {
  float sum = 0;
  for (std::size_t c = 0; c < kChains; ++c) {
    float acc = 1.0f + 0.001f * c;
    for (std::size_t i = 0; i < iterations; ++i) {
      if constexpr (kHasFma) {
        acc = std::fma(acc, 1e-7f, acc);
      } else {
        volatile float product = acc * 1e-7f;  // volatile: rounded to float, never fused
        acc = product + acc;
      }
    }
    for (std::size_t lane = 0; lane < nn::simd::kVecWidth; ++lane) sum += acc;
  }
  return sum;
}

void peak_fma(benchmark::State& state, bool all_threads) {
  if (fma_loop(1000) != fma_loop_scalar(1000)) {
    state.SkipWithError("the FMA loop differs from scalar FMAs");
    return;
  }
  const std::size_t threads = all_threads ? nn::thread_count() : 1;
  const double flops = 2.0 * nn::simd::kVecWidth * kChains * kFmaIterations * threads;
  timed(state, flops, [&] {
    nn::parallel_for(0, threads, [](std::size_t lo, std::size_t hi) {
      for (std::size_t t = lo; t < hi; ++t) benchmark::DoNotOptimize(fma_loop(kFmaIterations));
    });
  });
  state.counters["threads"] = static_cast<double>(threads);
}
#endif
// [end snippet peak-fma]

// ------------------------------------------------------------------ GEMM

void gemm_square(benchmark::State& state, const std::string& how, std::size_t n) {
  const nn::Tensor a = random_tensor({n, n}, 5), b = random_tensor({n, n}, 6);
  nn::Tensor c({n, n}), check({n, n});
  nn::GemmArgs g{.m = n, .n = n, .k = n, .a = a.data(), .b = b.data(), .c = c.data(),
                 .threaded = how == "threaded"};
  auto run = [&] { how == "naive" ? nn::gemm_naive(g) : nn::gemm(g); };
  run();
  nn::gemm_naive({.m = n, .n = n, .k = n, .a = a.data(), .b = b.data(), .c = check.data()});
  if (worst_error(c, check) > 1e-3) return state.SkipWithError("differs from gemm_naive");
  timed(state, 2.0 * n * n * n, [&] {
    run();
    benchmark::DoNotOptimize(c.data());
  });
}

// Names exactly conv2d_forward/<variant>/<batch> and conv2d_backward/<variant>/<batch>
// (the model's layer, which scripts/plot-bench-04.sh plots), then
// conv2d_forward_32to64/<variant>/128 and conv2d_backward_32to64/<variant>/128
// (the second layer, at Keras's batch size of 128) for the two variants that
// compete on it.
const bool registered = [] {
  static const Layer first = first_layer(), second = second_layer();
  for (std::size_t batch : {1, 32, 256})
    for (nn::Conv2DVariant v : nn::conv2d_variants())
      for (bool forward : {true, false}) {
        const std::string name = std::string(forward ? "conv2d_forward/" : "conv2d_backward/") +
                                 std::string(nn::conv2d_variant_name(v)) + "/" + std::to_string(batch);
        auto* b = forward ? benchmark::RegisterBenchmark(name.c_str(), conv2d_forward, first, v, batch)
                          : benchmark::RegisterBenchmark(name.c_str(), conv2d_backward, first, v, batch);
        b->Unit(benchmark::kMicrosecond);
        if (v == nn::Conv2DVariant::naive && batch == 256) b->Iterations(3);  // ~0.1-0.3 s each: three are enough
      }
  for (nn::Conv2DVariant v : {nn::Conv2DVariant::threaded, nn::Conv2DVariant::direct3x3})
    for (bool forward : {true, false}) {
      const std::string name = std::string(forward ? "conv2d_forward_32to64/" : "conv2d_backward_32to64/") +
                               std::string(nn::conv2d_variant_name(v)) + "/128";
      auto* b = forward ? benchmark::RegisterBenchmark(name.c_str(), conv2d_forward, second, v, 128)
                        : benchmark::RegisterBenchmark(name.c_str(), conv2d_backward, second, v, 128);
      b->Unit(benchmark::kMicrosecond);
    }
#if NN_HAVE_SIMD
  benchmark::RegisterBenchmark("peak_fma/1_thread", peak_fma, false)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("peak_fma/all_threads", peak_fma, true)->Unit(benchmark::kMillisecond);
#endif
  benchmark::RegisterBenchmark("gemm/naive/256", gemm_square, "naive", 256)->Unit(benchmark::kMillisecond);
  for (std::size_t n : {256, 1024}) {
    benchmark::RegisterBenchmark(("gemm/blocked/" + std::to_string(n)).c_str(), gemm_square, "blocked", n)
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("gemm/threaded/" + std::to_string(n)).c_str(), gemm_square, "threaded", n)
        ->Unit(benchmark::kMillisecond);
  }
  return true;
}();

}  // namespace
