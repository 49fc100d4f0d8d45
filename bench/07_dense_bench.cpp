// Chapter 07: the Dense(100) products at batch 32, naive against chapter 04's
// GEMM, and OpenBLAS's cblas_sgemm as the yardstick when it is installed
// (Debian libopenblas-dev; the project builds without it).
//
//   build/bin/07_dense_bench
//   OPENBLAS_CORETYPE=SkylakeX build/bin/07_dense_bench   # another OpenBLAS kernel set
//   chapters/07-dense/openblas-coretypes.sh               # tries them all, reports the best
//
//   forward   y  = x W      (32 x 5408) . (5408 x 100)
//   backward  dW = x^T dy   (5408 x 32) . (32 x 100)
//             dx = dy W^T   (32 x 100)  . (100 x 5408)
// Each is 2 * 32 * 5408 * 100 = 34.6 MFLOP.
//
// The fast GEMM and OpenBLAS run on 1 thread and on all threads
// (nn::thread_count(): $NN_THREADS, else every core), as chapter 04's rungs
// do; OpenBLAS's thread count is set to match with openblas_set_num_threads.
// Debian's OpenBLAS picks its kernels for the CPU at load time and may not
// know a recent one; OPENBLAS_CORETYPE names the kernels to use instead. The
// context above the table (openblas_config, openblas_core) and each OpenBLAS
// row's label say which kernels ran.
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <cmath>
#include <random>

#include "nn/gemm.hpp"
#include "nn/parallel.hpp"

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

#if NN_HAVE_OPENBLAS
// OpenBLAS's build and the kernels it chose, in the benchmark's context.
const bool openblas_context = [] {
  benchmark::AddCustomContext("openblas_config", openblas_get_config());
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
  return true;
}();
#endif

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

// all_threads false: one thread (the fast GEMM unthreaded, OpenBLAS set to 1
// thread); true: nn::thread_count() threads for both.
void product(benchmark::State& state, Product p, Impl impl, bool all_threads) {
  auto a = random_vector(a_size(p), 1), b = random_vector(b_size(p), 2);
  std::vector<float> c(c_size(p)), ref(c_size(p));
  const std::size_t threads = all_threads ? nn::thread_count() : 1;
  nn::GemmArgs g = args(p, a.data(), b.data(), c.data());
  g.threaded = all_threads;
#if NN_HAVE_OPENBLAS
  if (impl == Impl::openblas) {
    openblas_set_num_threads(static_cast<int>(threads));
    state.SetLabel(fmt::format("{}, {} thread{}", openblas_get_corename(), openblas_get_num_threads(),
                               openblas_get_num_threads() == 1 ? "" : "s"));
  }
#endif
  // Checked before timing, against the naive reference.
  run(args(p, a.data(), b.data(), ref.data()), Impl::naive);
  run(g, impl);
  for (std::size_t i = 0; i < c.size(); ++i)
    if (!(std::abs(c[i] - ref[i]) <= 1e-3f + 1e-4f * std::abs(ref[i]))) {
      state.SkipWithError("result differs from gemm_naive");
      return;
    }
  for (auto _ : state) {
    run(g, impl);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["threads"] = static_cast<double>(threads);
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * kBatch * kIn * kOut * static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

#define DENSE_BENCH(P, I, T, ALL)                                                                       \
  BENCHMARK_CAPTURE(product, P##_##I##_##T, Product::P, Impl::I, ALL)                                   \
      ->Name("dense_" #P "/" #I "/" #T)                                                                 \
      ->Unit(benchmark::kMicrosecond)                                                                   \
      ->UseRealTime()

DENSE_BENCH(forward, naive, 1_thread, false);
DENSE_BENCH(forward, fast, 1_thread, false);
DENSE_BENCH(forward, fast, all_threads, true);
DENSE_BENCH(dkernel, naive, 1_thread, false);
DENSE_BENCH(dkernel, fast, 1_thread, false);
DENSE_BENCH(dkernel, fast, all_threads, true);
DENSE_BENCH(dx, naive, 1_thread, false);
DENSE_BENCH(dx, fast, 1_thread, false);
DENSE_BENCH(dx, fast, all_threads, true);
#if NN_HAVE_OPENBLAS
// Last: OpenBLAS's idle threads spin for a while after a call, which would
// slow whatever runs next.
DENSE_BENCH(forward, openblas, 1_thread, false);
DENSE_BENCH(forward, openblas, all_threads, true);
DENSE_BENCH(dkernel, openblas, 1_thread, false);
DENSE_BENCH(dkernel, openblas, all_threads, true);
DENSE_BENCH(dx, openblas, 1_thread, false);
DENSE_BENCH(dx, openblas, all_threads, true);
#endif

}  // namespace
