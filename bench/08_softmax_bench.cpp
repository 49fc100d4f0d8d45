// Chapter 08: softmax, the loss and the fused gradient at the model's output
// shape, (32, 10), and on a larger (4096, 10) to see the per-row cost.
//
//   build/bin/08_softmax_bench
//
// items_per_second counts rows. Each benchmark is checked before it is timed,
// against the double-precision kernels (softmax_rows, crossentropy_rows and
// the chain of the two separate backward passes).
#include <benchmark/benchmark.h>

#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "nn/one_hot.hpp"
#include "nn/softmax.hpp"

namespace {

struct Batch {
  nn::Tensor z, y, p, dz;
  // The same in double: p, the loss and d loss / d z.
  std::vector<double> p_ref, dz_ref;
  double loss_ref = 0;
  explicit Batch(std::size_t n) : z({n, 10}), y({n, 10}), p({n, 10}), dz({n, 10}) {
    std::mt19937_64 rng(1);
    std::normal_distribution<float> g(0.0f, 3.0f);
    for (float& v : z.span()) v = g(rng);
    for (std::size_t i = 0; i < n; ++i) y(i, i % 10) = 1.0f;
    const std::vector<double> zd(z.span().begin(), z.span().end()), yd(y.span().begin(), y.span().end());
    std::vector<double> dp(n * 10);
    p_ref.resize(n * 10);
    dz_ref.resize(n * 10);
    nn::softmax_rows(zd.data(), p_ref.data(), n, 10);
    loss_ref = nn::crossentropy_rows(p_ref.data(), yd.data(), n, 10);
    nn::crossentropy_backward_rows(p_ref.data(), yd.data(), dp.data(), n, 10);
    nn::softmax_backward_rows(p_ref.data(), dp.data(), dz_ref.data(), n, 10);
  }
};

// "" when every |a - b| <= atol + rtol |b|, else where it differs. With
// `skip`, entries where skip(i) is true are not compared.
std::string differs(const char* what, const nn::Tensor& a, const std::vector<double>& b, double atol, double rtol,
                    const std::function<bool(std::size_t)>& skip = nullptr) {
  for (std::size_t i = 0; i < b.size(); ++i)
    if (!(skip && skip(i)) && !(std::abs(a[i] - b[i]) <= atol + rtol * std::abs(b[i])))
      return std::string(what) + " differs from the double-precision reference at " + std::to_string(i);
  return "";
}

void softmax_forward(benchmark::State& state) {
  Batch b(static_cast<std::size_t>(state.range(0)));
  nn::softmax(b.z, b.p);  // checked before timing
  if (std::string e = differs("p", b.p, b.p_ref, 1e-7, 1e-5); !e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  for (auto _ : state) {
    nn::softmax(b.z, b.p);
    benchmark::DoNotOptimize(b.p.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

void loss_and_gradient(benchmark::State& state) {
  Batch b(static_cast<std::size_t>(state.range(0)));
  nn::softmax(b.z, b.p);
  const double loss = nn::categorical_crossentropy(b.p, b.y);  // checked before timing
  nn::softmax_crossentropy_backward(b.p, b.y, b.dz);
  std::string e = std::abs(loss - b.loss_ref) <= 1e-5 * b.loss_ref ? "" : "the loss differs from the double-precision one";
  // The fused (p - y) / N equals the chain wherever the clip is inactive; in
  // a row whose label has p < 1e-7 the clipped chain has slope 0 (chapter 08).
  auto clipped = [&](std::size_t i) {
    const std::size_t row = i / 10;
    return b.p_ref[row * 10 + row % 10] < nn::kEpsilon;  // the label of row r is r % 10
  };
  if (e.empty()) e = differs("dz", b.dz, b.dz_ref, 1e-7, 1e-4, clipped);
  if (!e.empty()) {
    state.SkipWithError(e.c_str());
    return;
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(nn::categorical_crossentropy(b.p, b.y));
    nn::softmax_crossentropy_backward(b.p, b.y, b.dz);
    benchmark::DoNotOptimize(b.dz.data());
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

BENCHMARK(softmax_forward)->Name("softmax")->Arg(32)->Arg(4096);
BENCHMARK(loss_and_gradient)->Name("crossentropy_and_fused_gradient")->Arg(32)->Arg(4096);

}  // namespace
