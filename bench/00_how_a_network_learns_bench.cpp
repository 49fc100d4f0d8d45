// Chapter 00: why backpropagation, and not finite differences, trains a
// network. The gradient of L = sum(r * (x W + b)) for one Dense layer
// (chapter 07's naive reference, in double), with respect to its kernel W
// (in, 10): by the chain rule (one forward and one backward pass), and by
// centred differences (two forward passes per weight). The second grows with
// the number of weights times the cost of a forward pass. Both are checked
// against each other before they are timed.
//
//   build/bin/00_how_a_network_learns_bench
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "nn/dense.hpp"
#include "nn/gradcheck.hpp"

namespace {

constexpr std::size_t kOut = 10;

struct Problem {
  std::size_t in;
  std::vector<double> x, kernel, bias, r;  // x: (1, in), kernel: (in, 10), bias and r: (10,)
  explicit Problem(std::size_t inputs) : in(inputs) {
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    auto fill = [&](std::size_t n) {
      std::vector<double> v(n);
      for (double& e : v) e = u(rng);
      return v;
    };
    x = fill(in), kernel = fill(in * kOut), bias = fill(kOut), r = fill(kOut);
  }
  double loss() const {
    std::vector<double> y(kOut);
    nn::dense_forward_naive(1, in, kOut, x.data(), kernel.data(), bias.data(), y.data());
    double l = 0;
    for (std::size_t k = 0; k < kOut; ++k) l += r[k] * y[k];
    return l;
  }
  std::vector<double> analytic() const {  // dL/dy = r, then Dense's backward pass
    std::vector<double> y(kOut), dkernel(in * kOut), dbias(kOut);
    nn::dense_forward_naive(1, in, kOut, x.data(), kernel.data(), bias.data(), y.data());
    nn::dense_backward_naive(1, in, kOut, x.data(), kernel.data(), r.data(), dkernel.data(), dbias.data(),
                             static_cast<double*>(nullptr));
    return dkernel;
  }
  // L is linear in W, so any step is free of truncation error: a large one
  // keeps the rounding error (about 1e-16 |L| / h) small.
  std::vector<double> numeric() {
    return nn::central_differences(kernel, [this] { return loss(); }, 1e-2);
  }
};

void gradient_analytic(benchmark::State& state) {
  Problem p(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(p.analytic());
  state.counters["weights"] = static_cast<double>(p.kernel.size());
}

void gradient_numeric(benchmark::State& state) {
  Problem p(static_cast<std::size_t>(state.range(0)));
  const std::vector<double> a = p.analytic(), n = p.numeric();
  for (std::size_t i = 0; i < a.size(); ++i)
    if (nn::relative_error(a[i], n[i]) > 1e-6) {
      state.SkipWithError("the centred differences disagree with the backward pass");
      return;
    }
  for (auto _ : state) benchmark::DoNotOptimize(p.numeric());
  state.counters["weights"] = static_cast<double>(p.kernel.size());
}

BENCHMARK(gradient_analytic)->Arg(16)->Arg(64)->Arg(256);
BENCHMARK(gradient_numeric)->Arg(16)->Arg(64)->Arg(256);

}  // namespace
