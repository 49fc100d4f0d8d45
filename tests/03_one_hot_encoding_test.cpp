// Chapter 03: one-hot encoding and its inverse, argmax.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "nn/error.hpp"
#include "nn/one_hot.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;

TEST(OneHot, FiveIsTheSixthUnitVector) {
  const std::vector<int> five{5};
  nn::Tensor y = nn::one_hot(five);
  EXPECT_EQ(y.shape().str(), "(1, 10)");
  std::vector<float> row(y.data(), y.data() + 10);
  EXPECT_EQ(row, (std::vector<float>{0, 0, 0, 0, 0, 1, 0, 0, 0, 0}));
}

TEST(OneHot, OtherClassCounts) {
  const std::vector<int> labels{0, 2};
  nn::Tensor y = nn::one_hot(labels, 3);
  EXPECT_EQ(y.shape().str(), "(2, 3)");
  EXPECT_EQ(std::vector<float>(y.data(), y.data() + 6), (std::vector<float>{1, 0, 0, 0, 0, 1}));
}

std::string error_of(std::span<const int> labels, std::size_t classes) {
  try {
    nn::one_hot(labels, classes);
  } catch (const nn::Error& e) {
    return e.what();
  }
  return "";
}

TEST(OneHot, LabelOutOfRangeNamesIndexAndValue) {
  EXPECT_THAT(error_of(std::vector<int>{1, 2, 10}, 10), HasSubstr("label 10 at index 2 is outside [0, 10)"));
  EXPECT_THAT(error_of(std::vector<int>{-1}, 10), HasSubstr("label -1 at index 0 is outside [0, 10)"));
  EXPECT_THAT(error_of(std::vector<int>{3}, 3), HasSubstr("label 3 at index 0"));
  EXPECT_THAT(error_of(std::vector<int>{0}, 0), HasSubstr("num_classes must be at least 1"));
}

TEST(Argmax, FirstOnATieAndRankChecked) {
  nn::Tensor t({2, 3}, std::vector<float>{0.1f, 0.7f, 0.7f, 2.0f, -1.0f, 0.0f});
  EXPECT_EQ(nn::argmax(t), (std::vector<std::size_t>{1, 0}));
  try {
    nn::argmax(nn::Tensor({3}));
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("expected an (N, K) tensor, got (3,)"));
  }
}

TEST(RealMnist, ArgmaxInvertsOneHot) {
  const auto& m = testing_nn::real_mnist();
  for (const auto* labels : {&m.y_train, &m.y_test}) {
    nn::Tensor y = nn::one_hot(labels->data);
    ASSERT_EQ(y.dim(0), labels->data.size());
    auto back = nn::argmax(y);
    ASSERT_TRUE(std::equal(back.begin(), back.end(), labels->data.begin()));
    // Exactly one 1 per row, so the whole tensor sums to N.
    double sum = 0;
    for (float v : y.span()) sum += v;
    EXPECT_EQ(sum, static_cast<double>(labels->data.size()));
  }
}

}  // namespace

namespace {

// No training label: no one-hot matrix to draw (gnuplot used to fail on a matrix of size 0).
TEST(Ch03Executable, AnEmptyTrainingSetIsAClearError) {
  testing_nn::TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {0, 28, 28}, {5, 28, 28});
  auto run = testing_nn::run_program("ch03-one-hot-encoding", {"--data", (dir / "data").string(), "--plots", (dir / "plots").string()});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, ::testing::HasSubstr("data: the training set is empty: there are no training labels to one-hot encode and draw")) << run.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "plots")) << "nothing is drawn";
}

}  // namespace
