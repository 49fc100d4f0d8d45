// Chapter 07: Dense forward and backward, through chapter 04's GEMM.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fmt/format.h>

#include <random>

#include "nn/dense.hpp"
#include "nn/error.hpp"
#include "nn/init.hpp"
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
  for (float v : d.kernel.span()) sum += v, lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_GE(lo, -limit);
  EXPECT_LE(hi, limit);
  EXPECT_GT(hi, 0.99f * limit);  // 540,900 draws reach close to both ends
  EXPECT_LT(lo, -0.99f * limit);
  EXPECT_NEAR(sum / d.kernel.size(), 0.0, 0.01 * limit);
  for (float v : d.bias.span()) EXPECT_EQ(v, 0.0f);
}

TEST(Dense, HandComputed) {
  // x = [1 2], W = [[1 0 -1], [2 1 0]], b = [0.5 0 0] -> xW + b = [5.5 2 -1]; ReLU -> [5.5 2 0]
  nn::Dense d({.units = 3, .input_dim = 2, .activation = nn::Activation::relu});
  d.kernel = nn::Tensor({2, 3}, std::vector<float>{1, 0, -1, 2, 1, 0});
  d.bias = nn::Tensor({3}, std::vector<float>{0.5f, 0, 0});
  for (auto v : nn::dense_variants()) {
    d.set_variant(v);
    nn::Tensor y = d.forward(nn::Tensor({1, 2}, std::vector<float>{1, 2}));
    EXPECT_EQ(std::vector<float>(y.span().begin(), y.span().end()), (std::vector<float>{5.5f, 2, 0}));
    // dy = [1 1 1]; the ReLU blocks the third unit. dW = x^T [1 1 0], db = [1 1 0], dx = [1 1 0] W^T = [1 3]
    auto g = d.backward(nn::Tensor({1, 2}, std::vector<float>{1, 2}), y, nn::Tensor({1, 3}, 1.0f));
    EXPECT_EQ(std::vector<float>(g.dkernel.span().begin(), g.dkernel.span().end()),
              (std::vector<float>{1, 1, 0, 2, 2, 0}));
    EXPECT_EQ(std::vector<float>(g.dbias.span().begin(), g.dbias.span().end()), (std::vector<float>{1, 1, 0}));
    EXPECT_EQ(std::vector<float>(g.dx.span().begin(), g.dx.span().end()), (std::vector<float>{1, 3}));
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

TEST(Dense, GradientCheckByCentralDifferences) {
  // L = sum(r * relu(x W + b)), accumulated in double. For each parameter
  // the pre-activation is linear, so the central difference has no
  // truncation error; inputs are chosen so no pre-activation crosses 0 within
  // the step, leaving only float rounding (~1e-6) in the numeric side.
  const std::size_t n = 3, in = 5, out = 4;
  nn::Dense d({.units = out, .input_dim = in, .activation = nn::Activation::relu, .seed = 5});
  d.bias = random_tensor({out}, 6);
  nn::Tensor x = random_tensor({n, in}, 7), r = random_tensor({n, out}, 8);
  auto loss = [&]() {
    nn::Tensor y = d.forward(x);
    double l = 0;
    for (std::size_t i = 0; i < y.size(); ++i) l += static_cast<double>(r[i]) * y[i];
    return l;
  };
  nn::Tensor y = d.forward(x);
  auto g = d.backward(x, y, r);
  const float h = 1e-3f;
  // A step of h moves each pre-activation by at most h * (1 + sum |x| or |W|) < 0.01.
  nn::Dense linear({.units = out, .input_dim = in});
  linear.kernel = d.kernel;
  linear.bias = d.bias;
  const nn::Tensor z_all = linear.forward(x);
  for (float z : z_all.span()) ASSERT_GT(std::abs(z), 0.01f) << "pick other seeds";
  auto check = [&](nn::Tensor& param, const nn::Tensor& analytic, const char* name) {
    std::vector<double> numeric(param.size()), exact(param.size());
    for (std::size_t i = 0; i < param.size(); ++i) {
      const float saved = param[i];
      param[i] = saved + h;
      const double plus = loss();
      const double step_plus = static_cast<double>(param[i]) - saved;
      param[i] = saved - h;
      const double minus = loss();
      const double step_minus = saved - static_cast<double>(param[i]);
      param[i] = saved;
      numeric[i] = (plus - minus) / (step_plus + step_minus);
      exact[i] = analytic[i];
    }
    EXPECT_TRUE(all_close(std::span<const double>(exact), numeric, 2e-3, 2e-3)) << name;
  };
  check(d.kernel, g.dkernel, "dW");
  check(d.bias, g.dbias, "db");
  check(x, g.dx, "dx");
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

}  // namespace
