// Chapter 07: the Dense(100) products at batch 32, naive against chapter 04's
// GEMM, and OpenBLAS's cblas_sgemm as the yardstick when it is installed
// (Debian libopenblas-dev; the project builds without it).
//
//   build/bin/07_dense_bench
//
//   forward   y  = x W      (32 x 5408) . (5408 x 100)
//   backward  dW = x^T dy   (5408 x 32) . (32 x 100)
//             dx = dy W^T   (32 x 100)  . (100 x 5408)
// Each is 2 * 32 * 5408 * 100 = 34.6 MFLOP.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>

#include "nn/gemm.hpp"

#if NN_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace {

constexpr std::size_t kBatch = 32, kIn = 5408, kOut = 100;

std::vector<float> random_vector(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& e : v) e = u(rng);
  return v;
}

enum class Product { forward, dkernel, dx };

// The GEMM arguments of each product, on buffers a (left), b (right), c (out).
nn::GemmArgs args(Product p, const float* a, const float* b, float* c) {
  switch (p) {
    case Product::forward: return {.m = kBatch, .n = kOut, .k = kIn, .a = a, .b = b, .c = c, .threaded = true};
    case Product::dkernel:
      return {.m = kIn, .n = kOut, .k = kBatch, .a = a, .transpose_a = true, .b = b, .c = c, .threaded = true};
    case Product::dx:
      return {.m = kBatch, .n = kIn, .k = kOut, .a = a, .b = b, .transpose_b = true, .c = c, .threaded = true};
  }
  return {};
}

std::size_t a_size(Product p) { return p == Product::dx ? kBatch * kOut : kBatch * kIn; }
std::size_t b_size(Product p) { return p == Product::dkernel ? kBatch * kOut : kIn * kOut; }
std::size_t c_size(Product p) { return p == Product::dkernel ? kIn * kOut : p == Product::dx ? kBatch * kIn : kBatch * kOut; }

enum class Impl { naive, fast, openblas };

void run(const nn::GemmArgs& g, Impl impl) {
  switch (impl) {
    case Impl::naive: nn::gemm_naive(g); break;
    case Impl::fast: nn::gemm(g); break;
    case Impl::openblas:
#if NN_HAVE_OPENBLAS
      cblas_sgemm(CblasRowMajor, g.transpose_a ? CblasTrans : CblasNoTrans, g.transpose_b ? CblasTrans : CblasNoTrans,
                  static_cast<int>(g.m), static_cast<int>(g.n), static_cast<int>(g.k), 1.0f, g.a,
                  static_cast<int>(g.transpose_a ? g.m : g.k), g.b, static_cast<int>(g.transpose_b ? g.k : g.n), 0.0f,
                  g.c, static_cast<int>(g.n));
#endif
      break;
  }
}

void product(benchmark::State& state, Product p, Impl impl) {
  auto a = random_vector(a_size(p), 1), b = random_vector(b_size(p), 2);
  std::vector<float> c(c_size(p)), ref(c_size(p));
  // Checked before timing, against the naive reference.
  run(args(p, a.data(), b.data(), ref.data()), Impl::naive);
  run(args(p, a.data(), b.data(), c.data()), impl);
  for (std::size_t i = 0; i < c.size(); ++i)
    if (!(std::abs(c[i] - ref[i]) <= 1e-3f + 1e-4f * std::abs(ref[i]))) {
      state.SkipWithError("result differs from gemm_naive");
      return;
    }
  for (auto _ : state) {
    run(args(p, a.data(), b.data(), c.data()), impl);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * kBatch * kIn * kOut * static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

#define DENSE_BENCH(P, I) \
  BENCHMARK_CAPTURE(product, P##_##I, Product::P, Impl::I)->Name("dense_" #P "/" #I)->Unit(benchmark::kMicrosecond)->UseRealTime()

DENSE_BENCH(forward, naive);
DENSE_BENCH(forward, fast);
DENSE_BENCH(dkernel, naive);
DENSE_BENCH(dkernel, fast);
DENSE_BENCH(dx, naive);
DENSE_BENCH(dx, fast);
#if NN_HAVE_OPENBLAS
DENSE_BENCH(forward, openblas);
DENSE_BENCH(dkernel, openblas);
DENSE_BENCH(dx, openblas);
#endif

}  // namespace
