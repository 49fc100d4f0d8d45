// Chapter 07: Dense forward and backward, through chapter 04's GEMM.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "nn/dense.hpp"
#include "nn/layers/dense.hpp"
#include "nn/error.hpp"
#include "nn/init.hpp"
#include "nn/parallel.hpp"
#include "gradcheck.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;
using testing_nn::all_close;
using testing_nn::random_tensor;

TEST(Dense, ParamCountsOfTheModel) {
  EXPECT_EQ(nn::Dense({.units = 100, .input_dim = 5408}).param_count(), 540900u);
  EXPECT_EQ(nn::Dense({.units = 10, .input_dim = 100}).param_count(), 1010u);
}

TEST(Dense, GlorotUniformKernelAndZeroBias) {
  nn::Dense d({.units = 100, .input_dim = 5408, .seed = 3});
  const float limit = std::sqrt(6.0f / (5408 + 100));
  double sum = 0;
  float lo = 1, hi = -1;
  for (float v : d.kernel.value.span()) sum += v, lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_GE(lo, -limit);
  EXPECT_LE(hi, limit);
  EXPECT_GT(hi, 0.99f * limit);  // 540,900 draws reach close to both ends
  EXPECT_LT(lo, -0.99f * limit);
  EXPECT_NEAR(sum / d.kernel.size(), 0.0, 0.01 * limit);
  for (float v : d.bias.value.span()) EXPECT_EQ(v, 0.0f);
}

TEST(Dense, HandComputed) {
  // x = [1 2], W = [[1 0 -1], [2 1 0]], b = [0.5 0 0] -> xW + b = [5.5 2 -1]; ReLU -> [5.5 2 0]
  nn::Dense d({.units = 3, .input_dim = 2, .activation = nn::Activation::relu});
  d.kernel.value = nn::Tensor({2, 3}, std::vector<float>{1, 0, -1, 2, 1, 0});
  d.bias.value = nn::Tensor({3}, std::vector<float>{0.5f, 0, 0});
  for (auto v : nn::dense_variants()) {
    d.set_variant(v);
    nn::ConstView y = d.forward(nn::Tensor({1, 2}, std::vector<float>{1, 2}));
    EXPECT_EQ(std::vector<float>(y.span().begin(), y.span().end()), (std::vector<float>{5.5f, 2, 0}));
    // dy = [1 1 1]; the ReLU blocks the third unit. dW = x^T [1 1 0], db = [1 1 0], dx = [1 1 0] W^T = [1 3]
    const nn::ConstView dx = d.backward(nn::Tensor({1, 2}, std::vector<float>{1, 2}), y, nn::Tensor({1, 3}, 1.0f));
    EXPECT_EQ(std::vector<float>(d.kernel.grad.span().begin(), d.kernel.grad.span().end()),
              (std::vector<float>{1, 1, 0, 2, 2, 0}));
    EXPECT_EQ(std::vector<float>(d.bias.grad.span().begin(), d.bias.grad.span().end()), (std::vector<float>{1, 1, 0}));
    EXPECT_EQ(std::vector<float>(dx.span().begin(), dx.span().end()), (std::vector<float>{1, 3}));
  }
}

TEST(Dense, FastMatchesNaive) {
  struct Case { std::size_t n, in, out; };
  for (auto [n, in, out] : {Case{32, 5408, 100}, Case{32, 100, 10}, Case{1, 7, 3}, Case{5, 33, 17}, Case{67, 129, 65}}) {
    SCOPED_TRACE(fmt::format("n={} in={} out={}", n, in, out));
    nn::Tensor x = random_tensor({n, in}, n + in), w = random_tensor({in, out}, out), b = random_tensor({out}, 9);
    nn::Tensor y_naive({n, out}), y_fast({n, out}, NAN);
    nn::dense_forward(x, w, b, y_naive, nn::DenseVariant::naive);
    nn::dense_forward(x, w, b, y_fast, nn::DenseVariant::fast);
    // Sums of `in` products of values in [-1, 1]: the summation order differs.
    const double atol = 1e-6 * std::sqrt(static_cast<double>(in)), rtol = 1e-4;
    EXPECT_TRUE(all_close(y_fast, y_naive, atol, rtol));
    nn::Tensor dy = random_tensor({n, out}, 11);
    auto g_naive = nn::dense_backward(x, w, dy, nn::DenseVariant::naive);
    auto g_fast = nn::dense_backward(x, w, dy, nn::DenseVariant::fast);
    EXPECT_TRUE(all_close(g_fast.dkernel, g_naive.dkernel, 1e-6 * std::sqrt(double(n)), rtol));
    EXPECT_TRUE(all_close(g_fast.dbias, g_naive.dbias, 1e-6 * std::sqrt(double(n)), rtol));
    EXPECT_TRUE(all_close(g_fast.dx, g_naive.dx, 1e-6 * std::sqrt(double(out)), rtol));
  }
}

TEST(Dense, SkippingTheInputGradientLeavesTheOthersUnchanged) {
  nn::Tensor x = random_tensor({4, 6}, 1), w = random_tensor({6, 5}, 2), dy = random_tensor({4, 5}, 3);
  auto full = nn::dense_backward(x, w, dy, nn::DenseVariant::fast, true);
  auto part = nn::dense_backward(x, w, dy, nn::DenseVariant::fast, false);
  EXPECT_EQ(part.dx.size(), 0u);
  EXPECT_TRUE(all_close(part.dkernel, full.dkernel, 0, 0));
  EXPECT_TRUE(all_close(part.dbias, full.dbias, 0, 0));
}

// L = sum(r * relu(x W + b)) in double, through the naive kernels; every
// weight, bias and input nudged by +-eps and the slope compared with the
// analytic gradient. L is linear in each parameter as long as no
// pre-activation crosses 0, so with every |z| far above eps the central
// difference is exact up to double rounding (~1e-10 here).
TEST(Dense, GradientsMatchCentralDifferencesInDouble) {
  const std::size_t n = 3, in = 7, out = 5;
  std::vector<double> x = testing_nn::random_doubles(n * in, 1), kernel = testing_nn::random_doubles(in * out, 2),
                      bias = testing_nn::random_doubles(out, 3), r = testing_nn::random_doubles(n * out, 4);
  const double eps = 1e-6;
  auto forward = [&](std::vector<double>& z, std::vector<double>& y) {
    z.resize(n * out);
    y.resize(n * out);
    nn::dense_forward_naive(n, in, out, x.data(), kernel.data(), bias.data(), z.data());
    nn::relu_forward_naive(z.data(), y.data(), z.size());
  };
  std::vector<double> z, y;
  forward(z, y);
  // A step of eps moves a pre-activation by at most eps * max(1, |x|, |W|) <= eps.
  ASSERT_GT(testing_nn::smallest_magnitude(z), 100 * eps) << "a pre-activation sits at the ReLU's kink: other seeds";
  auto loss = [&] {
    std::vector<double> zz, yy;
    forward(zz, yy);
    double l = 0;
    for (std::size_t i = 0; i < yy.size(); ++i) l += r[i] * yy[i];
    return l;
  };
  std::vector<double> dz(n * out), dkernel(in * out), dbias(out), dx(n * in);
  nn::relu_backward_naive(y.data(), r.data(), dz.data(), dz.size());
  nn::dense_backward_naive(n, in, out, x.data(), kernel.data(), dz.data(), dkernel.data(), dbias.data(), dx.data());
  EXPECT_TRUE(all_close(std::span<const double>(dkernel), testing_nn::central_differences(kernel, loss, eps), 1e-8, 1e-6)) << "dW";
  EXPECT_TRUE(all_close(std::span<const double>(dbias), testing_nn::central_differences(bias, loss, eps), 1e-8, 1e-6)) << "db";
  EXPECT_TRUE(all_close(std::span<const double>(dx), testing_nn::central_differences(x, loss, eps), 1e-8, 1e-6)) << "dx";
  // Some units are off, some on: the ReLU's mask is exercised.
  EXPECT_GT(std::count(dz.begin(), dz.end(), 0.0), 0);
  EXPECT_LT(std::count(dz.begin(), dz.end(), 0.0), static_cast<std::ptrdiff_t>(dz.size()));
}

// The layer in float, both variants, against that double-precision gradient
// (the naive kernels in double, checked above): float layer -> double exact.
TEST(Dense, FloatGradientsMatchDoubleReference) {
  const std::size_t n = 32, in = 300, out = 20;
  nn::Dense d({.units = out, .input_dim = in, .activation = nn::Activation::relu, .seed = 5});
  d.bias.value = random_tensor({out}, 6, -0.1f, 0.1f);
  const nn::Tensor x = random_tensor({n, in}, 7), r = random_tensor({n, out}, 8);
  const auto xd = testing_nn::as_double(x), kd = testing_nn::as_double(d.kernel.value), bd = testing_nn::as_double(d.bias.value),
             rd = testing_nn::as_double(r);
  std::vector<double> z(n * out), y(n * out), dz(n * out), dk(in * out), db(out), dx(n * in);
  nn::dense_forward_naive(n, in, out, xd.data(), kd.data(), bd.data(), z.data());
  nn::relu_forward_naive(z.data(), y.data(), z.size());
  ASSERT_GT(testing_nn::smallest_magnitude(z), 1e-4) << "a float rounding could flip a ReLU: other seeds";
  nn::relu_backward_naive(y.data(), rd.data(), dz.data(), dz.size());
  nn::dense_backward_naive(n, in, out, xd.data(), kd.data(), dz.data(), dk.data(), db.data(), dx.data());
  for (auto v : nn::dense_variants()) {
    SCOPED_TRACE(std::string(nn::dense_variant_name(v)));
    d.set_variant(v);
    const nn::ConstView yf = d.forward(x);
    EXPECT_TRUE(all_close(std::span<const double>(testing_nn::as_double(yf)), y, 1e-5, 1e-5)) << "y";
    const nn::ConstView dxf = d.backward(x, yf, r);
    // Sums of up to 300 float products of values in [-1, 1].
    EXPECT_TRUE(all_close(std::span<const double>(testing_nn::as_double(d.kernel.grad)), dk, 1e-5, 1e-5)) << "dW";
    EXPECT_TRUE(all_close(std::span<const double>(testing_nn::as_double(d.bias.grad)), db, 1e-5, 1e-5)) << "db";
    EXPECT_TRUE(all_close(std::span<const double>(testing_nn::as_double(dxf)), dx, 1e-5, 1e-5)) << "dx";
  }
}

// Keras's build(input_shape): without input_dim, the kernel is made for the
// input the layer is built for (by Sequential::add, or at the first forward),
// with the very values input_dim would have given; a given input_dim must
// match it.
TEST(Dense, BuildMakesTheKernelForTheInputWidth) {
  nn::Dense given({.units = 10, .input_dim = 36, .seed = 9}), built({.units = 10, .seed = 9});
  EXPECT_FALSE(built.built());
  built.build({1, 36});
  ASSERT_TRUE(built.built());
  EXPECT_EQ(built.kernel.value.shape(), nn::Shape({36, 10}));
  EXPECT_EQ(built.kernel.grad.shape(), nn::Shape({36, 10}));
  EXPECT_EQ(std::memcmp(built.kernel.value.data(), given.kernel.value.data(), 360 * sizeof(float)), 0);
  built.build({1, 36});  // again: nothing changes
  EXPECT_EQ(std::memcmp(built.kernel.value.data(), given.kernel.value.data(), 360 * sizeof(float)), 0);

  nn::Dense lazy({.units = 10, .seed = 9});  // built by its first forward
  EXPECT_EQ(lazy.forward(nn::Tensor({2, 36}, 1.0f)).shape(), nn::Shape({2, 10}));
  EXPECT_EQ(std::memcmp(lazy.kernel.value.data(), given.kernel.value.data(), 360 * sizeof(float)), 0);

  try {
    given.build({1, 35});
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("input (1, 35) does not match input_dim 36"));
  }
  try {
    nn::Dense({.units = 10}).build({1, 13, 13, 32});
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("input (1, 13, 13, 32) is not (batch, features): put a Flatten before it"));
  }
}

TEST(Dense, ShapeErrors) {
  nn::Dense d({.units = 100, .input_dim = 5408});
  try {
    d.forward(nn::Tensor({32, 5407}));
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("input (32, 5407) does not match input_dim 5408"));
  }
  nn::Tensor y({2, 3});
  try {
    nn::dense_forward(nn::Tensor({2, 4}), nn::Tensor({5, 3}), nn::Tensor({3}), y, nn::DenseVariant::naive);
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("input (2, 4) does not match a kernel of shape (5, 3)"));
  }
  EXPECT_THROW(nn::dense_variant("blas"), nn::Error);
}

// The fast variant's backward pass with the kernel's update fused into it
// (the training step's path) gives dense_backward's dx and db and the weights
// of dense_backward followed by the update, bit for bit (dx computed as
// written below a batch of NR, as its transpose from there): on the model's
// shape, on shapes with edge blocks and edge tiles, with and without dx, and
// on a shape where gemm would split a sum over the threads (in = 100,
// out = 40, batch 512: dW's sum over the batch), where it must run exactly
// dense_backward.
TEST(Dense, BackwardWithTheUpdateFusedIsBackwardThenTheUpdateBitForBit) {
  const std::size_t threads_before = nn::thread_count();
  struct Case { std::size_t n, in, out; };
  for (std::size_t threads : {1, 2, 3})
    for (Case c : {Case{32, 5408, 100}, Case{1, 5408, 100}, Case{7, 333, 37}, Case{50, 333, 37}, Case{300, 70, 300},
                   Case{512, 100, 40}})
      for (bool with_dx : {true, false}) {
        nn::set_thread_count(threads);
        SCOPED_TRACE(fmt::format("n {} in {} out {}, {} threads, dx {}", c.n, c.in, c.out, threads, with_dx));
        const nn::Tensor x = random_tensor({c.n, c.in}, 1), dy = random_tensor({c.n, c.out}, 2);
        const nn::Tensor kernel = random_tensor({c.in, c.out}, 3);
        nn::Tensor apart_kernel = kernel, apart_dk, apart_db, apart_dx, dk, db, dx;
        nn::dense_backward(x, kernel, dy, nn::DenseVariant::fast, apart_dk, apart_db, with_dx ? &apart_dx : nullptr);
        for (std::size_t i = 0; i < kernel.size(); ++i) apart_kernel[i] -= 0.25f * apart_dk[i];
        nn::Tensor fused_kernel = kernel;
        std::vector<int> touched(kernel.size(), 0);
        nn::dense_backward_update(x, fused_kernel, dy, dk, db, with_dx ? &dx : nullptr,
                                  [&](const float* g, std::size_t lo, std::size_t n) {
                                    for (std::size_t i = 0; i < n; ++i) fused_kernel[lo + i] -= 0.25f * g[i], ++touched[lo + i];
                                  });
        EXPECT_EQ(std::count(touched.begin(), touched.end(), 1), static_cast<long>(kernel.size()))
            << "every weight updated exactly once";
        EXPECT_EQ(std::memcmp(fused_kernel.data(), apart_kernel.data(), kernel.size() * sizeof(float)), 0);
        EXPECT_EQ(std::memcmp(db.data(), apart_db.data(), c.out * sizeof(float)), 0);
        if (with_dx) {
          EXPECT_EQ(std::memcmp(dx.data(), apart_dx.data(), dx.size() * sizeof(float)), 0);
        }
      }
  nn::set_thread_count(threads_before);
}

}  // namespace

// ---- The executable's --units option ------------------------------------------

namespace {

TEST(Ch07Executable, EveryAdvertisedUnitCountIsPlotted) {
  testing_nn::TempDir dir;
  for (int units : {1, 4, 5, 100}) {  // one column of mosaics, then a grid
    auto run = testing_nn::run_program("ch07-dense", {"--units", std::to_string(units), "--seed", "1", "--plots",
                                                      (dir / std::to_string(units)).string()});
    EXPECT_EQ(run.exit_code, 0) << "--units " << units << ":\n" << run.output;
    EXPECT_TRUE(std::filesystem::exists(dir / std::to_string(units) / "07-dense-units.png")) << run.output;
  }
  for (int units : {0, 101}) {
    auto run = testing_nn::run_program("ch07-dense", {"--units", std::to_string(units), "--plots", dir.path().string()});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_THAT(run.output, HasSubstr(fmt::format("--units {} is outside 1..100", units)));
  }
}

// The layer through the nn::Layer interface, both variants, with and without
// ReLU, against central differences (tests/gradcheck.cpp).
TEST(Dense, LayerGradientsThroughTheLayerInterface) {
  for (nn::Activation a : {nn::Activation::relu, nn::Activation::linear})
    for (nn::DenseVariant v : nn::dense_variants()) {
      SCOPED_TRACE(fmt::format("{} {}", a == nn::Activation::relu ? "relu" : "linear", nn::dense_variant_name(v)));
      nn::Dense d({.units = 20, .input_dim = 50, .activation = a, .seed = 15, .variant = v});
      d.bias.value = random_tensor({20}, 16, -0.2f, 0.2f);
      EXPECT_EQ(testing_nn::layer_gradient_problems(d, random_tensor({4, 50}, 17), 18), "");
    }
}

}  // namespace

namespace {

TEST(Ch07Executable, TooFewTrainingImagesAreAClearError) {
  testing_nn::expect_too_few_training_images_refused("ch07-dense");
}

}  // namespace
