// Chapter 05: MaxPooling2D forward and backward.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>

#include "nn/error.hpp"
#include "nn/layers/max_pooling2d.hpp"
#include "nn/pooling.hpp"
#include "gradcheck.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;
using testing_nn::all_close;
using testing_nn::error_of;
using testing_nn::random_tensor;

TEST(MaxPool, ShapeRuleFloorsOddSizes) {
  EXPECT_EQ(nn::max_pool2d_output_shape({32, 26, 26, 32}, 2).str(), "(32, 13, 13, 32)");
  EXPECT_EQ(nn::max_pool2d_output_shape({1, 27, 5, 3}, 2).str(), "(1, 13, 2, 3)");
  EXPECT_EQ(nn::max_pool2d_output_shape({1, 9, 9, 1}, 3).str(), "(1, 3, 3, 1)");
}

TEST(MaxPool, ImpossibleShapesAreErrors) {
  EXPECT_THAT(error_of([] { nn::max_pool2d_output_shape({1, 1, 5, 1}, 2); }),
              HasSubstr("a 2x2 pool does not fit in the input (1, 1, 5, 1)"));
  EXPECT_THAT(error_of([] { nn::max_pool2d_output_shape({1, 4, 4, 1}, 0); }), HasSubstr("at least 1"));
  EXPECT_THAT(error_of([] { nn::max_pool2d_output_shape({4, 4, 1}, 2); }), HasSubstr("expects (N, H, W, C)"));
  nn::Tensor x({1, 4, 4, 1}), dy({1, 3, 2, 1});
  EXPECT_THAT(error_of([&] { nn::max_pool2d_backward(x, dy, 2); }), HasSubstr("dy is (1, 3, 2, 1), expected (1, 2, 2, 1)"));
}

TEST(MaxPool, HandComputedForwardAndBackward) {
  // One 4x4 channel:          pooled 2x2:
  //   1 3 | 0 2                  4 5
  //   4 2 | 5 1                  9 8
  //   ----+----
  //   9 0 | 7 8
  //   1 2 | 6 3
  nn::Tensor x({1, 4, 4, 1}, std::vector<float>{1, 3, 0, 2, 4, 2, 5, 1, 9, 0, 7, 8, 1, 2, 6, 3});
  nn::Tensor dy({1, 2, 2, 1}, std::vector<float>{10, 20, 30, 40});
  for (auto v : nn::max_pool_variants()) {
    SCOPED_TRACE(std::string(nn::max_pool_variant_name(v)));
    nn::Tensor y = nn::max_pool2d_forward(x, 2, v);
    EXPECT_EQ(std::vector<float>(y.span().begin(), y.span().end()), (std::vector<float>{4, 5, 9, 8}));
    nn::Tensor dx = nn::max_pool2d_backward(x, dy, 2, v);
    EXPECT_EQ(std::vector<float>(dx.span().begin(), dx.span().end()),
              (std::vector<float>{0, 0, 0, 0, 10, 0, 20, 0, 30, 0, 0, 40, 0, 0, 0, 0}));
  }
}

TEST(MaxPool, TiesGoToTheFirstMaximumInRowMajorOrder) {
  // Window 1: all four equal -> top-left. Window 2: top-right and bottom-left
  // tie at 5 -> top-right (it comes first in row-major order).
  nn::Tensor x({1, 2, 4, 1}, std::vector<float>{7, 7, 1, 5, 7, 7, 5, 2});
  nn::Tensor dy({1, 1, 2, 1}, std::vector<float>{1, 2});
  for (auto v : nn::max_pool_variants()) {
    SCOPED_TRACE(std::string(nn::max_pool_variant_name(v)));
    nn::Tensor dx = nn::max_pool2d_backward(x, dy, 2, v);
    EXPECT_EQ(std::vector<float>(dx.span().begin(), dx.span().end()), (std::vector<float>{1, 0, 0, 2, 0, 0, 0, 0}));
  }
}

TEST(MaxPool, VectorizedMatchesNaiveOnRandomShapes) {
  const std::vector<std::pair<nn::Shape, std::size_t>> cases{
      {{2, 26, 26, 32}, 2}, {{3, 7, 9, 5}, 2}, {{1, 9, 12, 17}, 3}, {{2, 5, 5, 1}, 1}, {{1, 27, 27, 33}, 2}};
  std::uint64_t seed = 1;
  for (const auto& [shape, pool] : cases) {
    SCOPED_TRACE(shape.str() + " pool " + std::to_string(pool));
    nn::Tensor x = random_tensor(shape, seed++);
    nn::Tensor y_naive = nn::max_pool2d_forward(x, pool, nn::MaxPoolVariant::naive);
    nn::Tensor y_fast = nn::max_pool2d_forward(x, pool, nn::MaxPoolVariant::vectorized);
    // A max picks one of its inputs, so the two must agree exactly (atol = rtol = 0).
    EXPECT_TRUE(all_close(y_fast, y_naive, 0.0, 0.0));
    nn::Tensor dy = random_tensor(y_naive.shape(), seed++);
    // dx arrives full of garbage: both variants must overwrite every element.
    nn::Tensor dx_naive(shape, 99.0f), dx_fast(shape, 99.0f);
    nn::max_pool2d_backward(x, dy, pool, dx_naive, nn::MaxPoolVariant::naive);
    nn::max_pool2d_backward(x, dy, pool, dx_fast, nn::MaxPoolVariant::vectorized);
    EXPECT_TRUE(all_close(dx_fast, dx_naive, 0.0, 0.0));
  }
}

// After a ReLU most windows tie (at 0): the vectorized backward pass must
// hand each channel's gradient to its first maximum in every lane of a vector,
// not only in the leftover channels. Inputs from {-1, -0, 0, 1} tie often
// (and -0 == 0); the gradients include -0 and a NaN, which must reach dx as is.
TEST(MaxPool, VectorizedMatchesNaiveWhenWindowsTie) {
  const std::vector<std::pair<nn::Shape, std::size_t>> cases{
      {{2, 26, 26, 32}, 2}, {{1, 9, 12, 17}, 3}, {{1, 27, 27, 33}, 2}};
  const float levels[] = {-1.0f, -0.0f, 0.0f, 1.0f};
  std::uint64_t seed = 100;
  for (const auto& [shape, pool] : cases) {
    SCOPED_TRACE(shape.str() + " pool " + std::to_string(pool));
    nn::Tensor x = random_tensor(shape, seed++, 0.0f, 4.0f);
    for (float& v : x.span()) v = levels[std::min(3, static_cast<int>(v))];
    nn::Tensor dy = random_tensor(nn::max_pool2d_output_shape(shape, pool), seed++);
    dy[0] = -0.0f;
    dy[1] = std::numeric_limits<float>::quiet_NaN();
    nn::Tensor dx_naive(shape, 99.0f), dx_fast(shape, 99.0f);
    nn::max_pool2d_backward(x, dy, pool, dx_naive, nn::MaxPoolVariant::naive);
    nn::max_pool2d_backward(x, dy, pool, dx_fast, nn::MaxPoolVariant::vectorized);
    // Bit for bit: the same element gets the same gradient (a NaN included).
    ASSERT_EQ(dx_fast.size(), dx_naive.size());
    EXPECT_EQ(std::memcmp(dx_fast.data(), dx_naive.data(), dx_fast.size() * sizeof(float)), 0);
  }
}

// L = sum(r * maxpool(x)) in double, through the naive kernels. Max pooling
// is piecewise linear: as long as a step does not change which input wins a
// window, the central difference is exact up to double rounding. Random
// inputs have no ties; the smallest gap between a window's maximum and its
// runner-up is checked to be far above the step.
TEST(MaxPool, BackwardMatchesCentralDifferencesInDouble) {
  const std::vector<std::pair<nn::Shape, std::size_t>> cases{{{2, 6, 7, 3}, 2}, {{1, 9, 11, 2}, 3}};
  std::uint64_t seed = 11;
  for (const auto& c : cases) {
    const nn::Shape& shape = c.first;  // not a structured binding: the lambdas below capture it (clang 14)
    const std::size_t pool = c.second;
    SCOPED_TRACE(shape.str() + " pool " + std::to_string(pool));
    // Float values, so that the float variants below see exactly the same inputs.
    const nn::Tensor xf = random_tensor(shape, seed++), rf = random_tensor(nn::max_pool2d_output_shape(shape, pool), seed++);
    std::vector<double> x = testing_nn::as_double(xf);
    const std::vector<double> r = testing_nn::as_double(rf);
    const double eps = 1e-6;
    // Shifted up by 2 (a shift changes no gap), every window's maximum is positive and every gap counts.
    std::vector<double> shifted(x);
    for (double& v : shifted) v += 2.0;
    ASSERT_GT(testing_nn::smallest_pool_gap(shape, pool, shifted), 100 * eps) << "near-tie: other seeds";
    auto loss = [&] {
      std::vector<double> y(r.size());
      nn::max_pool2d_forward_naive(shape, pool, x.data(), y.data());
      double l = 0;
      for (std::size_t i = 0; i < y.size(); ++i) l += r[i] * y[i];
      return l;
    };
    std::vector<double> dx(x.size(), 99.0);  // garbage: the kernel must overwrite every element
    nn::max_pool2d_backward_naive(shape, pool, x.data(), r.data(), dx.data());
    EXPECT_TRUE(all_close(std::span<const double>(dx), testing_nn::central_differences(x, loss, eps), 1e-8, 1e-6));
    // The float variants route the same float dy to the same inputs: exactly the double gradient.
    for (auto v : nn::max_pool_variants()) {
      const nn::Tensor dxf = nn::max_pool2d_backward(xf, rf, pool, v);
      EXPECT_TRUE(all_close(std::span<const double>(testing_nn::as_double(dxf)), dx, 0.0, 0.0))
          << nn::max_pool_variant_name(v);
    }
  }
}

TEST(MaxPool, VariantNames) {
  EXPECT_EQ(nn::max_pool_variant("naive"), nn::MaxPoolVariant::naive);
  EXPECT_THAT(error_of([] { nn::max_pool_variant("fast"); }), HasSubstr("unknown max-pooling variant 'fast'"));
}

}  // namespace

namespace {

TEST(Ch05Executable, AnEmptyTrainingSetIsAClearError) {
  testing_nn::TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {0, 28, 28}, {10, 28, 28});
  auto run = testing_nn::run_program("ch05-pooling", {"--data", (dir / "data").string(), "--plots", (dir / "plots").string(), "--seed", "1"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("error: --index 0: the training set is empty"));
}

// The layer through the nn::Layer interface against central differences
// (tests/gradcheck.cpp): random inputs have no ties, and a window's winner
// keeps winning unless its lead is under the step (counted as a kink).
TEST(MaxPooling2D, LayerGradientsThroughTheLayerInterface) {
  for (nn::MaxPoolVariant v : nn::max_pool_variants()) {
    SCOPED_TRACE(std::string(nn::max_pool_variant_name(v)));
    for (std::size_t pool : {2u, 3u}) {
      nn::MaxPooling2D layer({.pool = pool, .variant = v});
      EXPECT_EQ(testing_nn::layer_gradient_problems(layer, random_tensor({2, 8, 7, 16}, 11), 12), "") << pool;
    }
  }
}

}  // namespace
