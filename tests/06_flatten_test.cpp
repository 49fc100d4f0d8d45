// Chapter 06: Flatten is a view.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nn/error.hpp"
#include "gradcheck.hpp"
#include "testing.hpp"
#include "nn/layers/flatten.hpp"

namespace {

TEST(Flatten, ModelShapeIs5408) {
  nn::Flatten flatten;
  EXPECT_EQ(flatten.output_shape({32, 13, 13, 32}).str(), "(32, 5408)");
  EXPECT_EQ(flatten.output_shape({0, 13, 13, 32}).str(), "(0, 5408)");
  EXPECT_EQ(flatten.output_shape({4, 10}).str(), "(4, 10)");
}

TEST(Flatten, ForwardAndBackwardAreViewsOfTheSameBuffer) {
  nn::Flatten flatten;
  nn::Tensor x({2, 13, 13, 32});
  nn::ConstView y = flatten.forward(x);  // read-only: Flatten never writes its input
  EXPECT_EQ(y.shape().str(), "(2, 5408)");
  EXPECT_EQ(y.data(), x.data());  // the same address: nothing was copied
  nn::Tensor dy({2, 5408});
  nn::ConstView dx = flatten.backward(x, y, dy);
  EXPECT_EQ(dx.shape().str(), "(2, 13, 13, 32)");
  EXPECT_EQ(dx.data(), dy.data());
}

TEST(Flatten, KeepsNHWCOrder) {
  // Element (n, h, w, c) lands at column (h * W + w) * C + c: channels vary
  // fastest, exactly the order Keras's Flatten uses with channels_last.
  nn::Tensor x({2, 3, 4, 5});
  x(1, 2, 1, 3) = 42.0f;
  nn::ConstView y = nn::Flatten().forward(x);
  EXPECT_EQ(y(1, (2 * 4 + 1) * 5 + 3), 42.0f);
}

TEST(Flatten, NeedsABatchAxis) {
  try {
    nn::Flatten().output_shape({5});
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("needs a batch axis"));
  }
}

// Through the nn::Layer interface against central differences (tests/gradcheck.cpp).
TEST(Flatten, LayerGradientsThroughTheLayerInterface) {
  nn::Flatten flatten;
  EXPECT_EQ(testing_nn::layer_gradient_problems(flatten, testing_nn::random_tensor({3, 4, 5, 2}, 13), 14), "");
}

}  // namespace

namespace {

TEST(Ch06Executable, TooFewTrainingImagesAreAClearError) {
  testing_nn::expect_too_few_training_images_refused("ch06-flatten");
}

}  // namespace
