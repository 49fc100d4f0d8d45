// Chapter 02: the Tensor (shapes, reshape, views) and normalization.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <type_traits>
#include <utility>
#include <vector>

#include "nn/error.hpp"
#include "nn/normalize.hpp"
#include "nn/tensor.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;
using testing_nn::error_of;

TEST(Tensor, ShapeSizeAndKerasPrinting) {
  nn::Tensor x({60000, 28, 28, 1});
  EXPECT_EQ(x.rank(), 4u);
  EXPECT_EQ(x.size(), 47040000u);
  EXPECT_EQ(x.shape().str(), "(60000, 28, 28, 1)");
  EXPECT_EQ(nn::Tensor({5}).shape().str(), "(5,)");
}

TEST(Tensor, ZeroFilledAlignedAndContiguous) {
  nn::Tensor x({3, 5, 7});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(x.data()) % 64, 0u);
  for (float v : x.span()) EXPECT_EQ(v, 0.0f);
}

TEST(Tensor, ElementAccessIsRowMajorNHWC) {
  nn::Tensor x({2, 3, 4, 5});
  x(1, 2, 3, 4) = 7.0f;
  EXPECT_EQ(x[x.size() - 1], 7.0f);
  x(0, 1, 0, 2) = 3.0f;  // ((0*3 + 1)*4 + 0)*5 + 2 = 22
  EXPECT_EQ(x[22], 3.0f);
  EXPECT_THAT(error_of([&] { x(0, 0) = 1; }), HasSubstr("2 indices for a tensor of shape (2, 3, 4, 5)"));
}

TEST(Tensor, RankOneToFour) {
  EXPECT_THAT(error_of([] { nn::Tensor({1, 2, 3, 4, 5}); }), HasSubstr("rank 1 to 4, not 5"));
}

TEST(Tensor, ReshapeIsAViewOfTheSameBuffer) {
  nn::Tensor x({60000, 28, 28});
  x[100] = 0.5f;
  nn::Tensor v = x.reshape({60000, 28, 28, 1});
  EXPECT_EQ(v.shape().str(), "(60000, 28, 28, 1)");
  EXPECT_EQ(v.data(), x.data());
  EXPECT_TRUE(v.shares_buffer_with(x));
  v[101] = 0.25f;  // writes through the view are seen by the original
  EXPECT_EQ(x[101], 0.25f);
}

// Const in, read-only out: a view of a const tensor is a ConstView, which
// has no way to write, and no silent conversion into a (writable) Tensor.
TEST(Tensor, ViewsOfAConstTensorAreReadOnly) {
  const nn::Tensor x({4, 3}, 1.0f);
  using Reshaped = decltype(x.reshape({12}));
  using Viewed = decltype(x.batch_view(1, 2));
  EXPECT_TRUE((std::is_same_v<Reshaped, nn::ConstView>));
  EXPECT_TRUE((std::is_same_v<Viewed, nn::ConstView>));
  EXPECT_TRUE((std::is_same_v<decltype(x.reshape({12}).data()), const float*>));
  EXPECT_FALSE((std::is_constructible_v<nn::Tensor, nn::ConstView>)) << "a ConstView would become writable";
  EXPECT_FALSE((std::is_assignable_v<nn::Tensor&, nn::ConstView>));
  EXPECT_FALSE((std::is_assignable_v<decltype(std::declval<const nn::ConstView&>()[0]), float>)) << "v[0] = 1 must not compile";
  // The views still share the buffer: no copy, and a copy of a view is a view.
  const nn::ConstView v = x.batch_view(1, 2);
  const nn::ConstView w = v;
  EXPECT_EQ(v.data(), x.data() + 3);
  EXPECT_EQ(w.data(), v.data());
  EXPECT_EQ(v.reshape({6}).data(), v.data());
  // A writable tensor's views stay writable; an explicit copy of a ConstView is a new buffer.
  nn::Tensor t({4, 3});
  t.batch_view(1, 1)[0] = 5.0f;
  EXPECT_EQ(t(1, 0), 5.0f);
  nn::Tensor copy(v.tensor());
  EXPECT_NE(copy.data(), v.data());
}

// A moved-from tensor is empty: it neither owns nor points at the buffer it
// handed over (b = std::move(a); b = Tensor(); a.fill(2) once wrote into freed memory).
TEST(Tensor, AMovedFromTensorIsEmpty) {
  nn::Tensor a({4}, 1.0f);
  const float* buffer = a.data();
  nn::Tensor b = std::move(a);
  EXPECT_EQ(b.data(), buffer);
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): checking the moved-from state is the point
  EXPECT_EQ(a.rank(), 0u);
  EXPECT_EQ(a.data(), nullptr);
  b = nn::Tensor();
  a.fill(2.0f);  // nothing to fill
  nn::Tensor c({3}, 2.0f), d({5});
  d = std::move(c);
  EXPECT_EQ(d.shape().str(), "(3,)");
  EXPECT_EQ(d[2], 2.0f);
  EXPECT_EQ(c.size(), 0u);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(c.data(), nullptr);
}

TEST(Tensor, ReshapeInfersMinusOne) {
  nn::Tensor x({60000, 28, 28});
  EXPECT_EQ(x.reshape({-1, 28, 28, 1}).shape().str(), "(60000, 28, 28, 1)");
  EXPECT_EQ(x.reshape({60000, -1}).shape().str(), "(60000, 784)");
  EXPECT_THAT(error_of([&] { x.reshape({-1, -1}); }), HasSubstr("only one dimension may be -1"));
  EXPECT_THAT(error_of([&] { x.reshape({-1, 11}); }),
              HasSubstr("cannot reshape (60000, 28, 28) (47040000 elements) to (-1, 11)"));
}

TEST(Tensor, ReshapeToADifferentCountNamesBothShapes) {
  nn::Tensor x({60000, 28, 28});
  EXPECT_THAT(error_of([&] { x.reshape({60000, 28, 27, 1}); }),
              HasSubstr("cannot reshape (60000, 28, 28) (47040000 elements) to (60000, 28, 27, 1) (45360000 elements)"));
}

TEST(Tensor, CopyIsDeep) {
  nn::Tensor a({4}, 1.0f);
  nn::Tensor b = a;
  b[0] = 2.0f;
  EXPECT_EQ(a[0], 1.0f);
  EXPECT_FALSE(b.shares_buffer_with(a));
}

TEST(Normalize, ExactValues) {
  std::vector<std::uint8_t> in{0, 1, 51, 127, 128, 204, 255};
  std::vector<float> out(in.size());
  nn::normalize_naive(in, out);
  EXPECT_EQ(out[0], 0.0f);
  EXPECT_EQ(out[2], 0.2f);  // 51/255 = 0.2 exactly in decimal, and rounds to the float 0.2f
  EXPECT_EQ(out[5], 0.8f);
  EXPECT_EQ(out[6], 1.0f);
  EXPECT_FLOAT_EQ(out[3], 127.0f / 255.0f);
}

TEST(Normalize, BothVariantsAgreeBitForBitWithNumPysRounding) {
  // Every byte value, at every position of a 16-wide vector and in the tail.
  std::vector<std::uint8_t> in(256 * 3 + 7);
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = static_cast<std::uint8_t>(i * 7);
  std::vector<float> naive(in.size()), fast(in.size()), streaming(in.size() + 1);
  nn::normalize_naive(in, naive);
  nn::normalize_vectorized(in, fast);
  // Starting one float past an aligned address exercises the scalar head too.
  nn::normalize_streaming(in, std::span(streaming).subspan(1));
  for (std::size_t i = 0; i < in.size(); ++i) {
    // NumPy computes x / 255.0 in float64; Keras then casts it to float32.
    const float numpy = static_cast<float>(in[i] / 255.0);
    ASSERT_EQ(naive[i], numpy) << "pixel " << +in[i];
    ASSERT_EQ(fast[i], numpy) << "pixel " << +in[i];
    ASSERT_EQ(streaming[i + 1], numpy) << "pixel " << +in[i];
  }
}

TEST(Normalize, SizeMismatchIsAnError) {
  std::vector<std::uint8_t> in(10);
  std::vector<float> out(9);
  EXPECT_THAT(error_of([&] { nn::normalize_vectorized(in, out); }), HasSubstr("10 pixels in but room for 9"));
}

TEST(Normalize, StatsAndHistogram) {
  std::vector<float> v{0.0f, 0.5f, 1.0f, 1.0f};
  auto s = nn::pixel_stats(v);
  EXPECT_DOUBLE_EQ(s.mean, 0.625);
  EXPECT_DOUBLE_EQ(s.stddev, std::sqrt((0.625 * 0.625 + 0.125 * 0.125 + 2 * 0.375 * 0.375) / 4));
  EXPECT_EQ(nn::histogram(v, 2, 0.0f, 1.0f), (std::vector<std::size_t>{1, 3}));
}

TEST(RealMnist, MeanPixelOfTheTrainingSet) {
  const auto& m = testing_nn::real_mnist();
  auto raw = nn::pixel_stats(m.x_train.data);
  EXPECT_NEAR(raw.mean, 33.3184, 1e-3);
  EXPECT_NEAR(raw.stddev, 78.5675, 1e-3);
  nn::Tensor x = nn::images_to_tensor(m.x_train);
  EXPECT_EQ(x.shape().str(), "(60000, 28, 28, 1)");
  auto s = nn::pixel_stats(x.span());
  EXPECT_NEAR(s.mean, 0.1307, 1e-4);
  EXPECT_NEAR(s.stddev, 0.3081, 1e-4);
  EXPECT_EQ(s.min, 0.0);
  EXPECT_EQ(s.max, 1.0);
}

TEST(RealMnist, ClassMeansAreOrderedByLabel) {
  const auto& m = testing_nn::real_mnist();
  nn::Tensor x = nn::images_to_tensor(m.x_test);
  nn::Tensor means = nn::mean_image_per_class(x, m.y_test.data);
  EXPECT_EQ(means.shape().str(), "(10, 28, 28, 1)");
  // A "1" is a thin stroke: its mean image has the least ink of all digits.
  auto ink = [&](std::size_t c) {
    return std::accumulate(means.data() + c * 784, means.data() + (c + 1) * 784, 0.0);
  };
  for (std::size_t c = 0; c < 10; ++c)
    if (c != 1) {
      EXPECT_LT(ink(1), ink(c)) << "class " << c;
    }
}

TEST(Tensor, ShapesWhoseByteCountOverflowAreRefused) {
  // 2^62 + 1 elements fit in size_t, but 4 bytes each do not: (2^62 + 1) * 4
  // wraps to 4, and a tensor of "size" 2^62 + 1 would sit over a 64-byte buffer.
  EXPECT_THAT(error_of([] { nn::Shape{4611686018427387905u}; }),
              HasSubstr("the shape (4611686018427387905,) has more elements than a float tensor can hold"));
  EXPECT_THAT(error_of([] { nn::Tensor({std::size_t{1} << 30, std::size_t{1} << 30, 2}); }),
              HasSubstr("the shape (1073741824, 1073741824, 2)"));  // 2^63 bytes
  // Any shape whose byte count fits stays a valid shape (nothing is allocated here).
  EXPECT_EQ((nn::Shape{std::size_t{1} << 20, std::size_t{1} << 20, 1024}.size()), std::size_t{1} << 50);
}

}  // namespace

namespace {

// The bin index is a float cast to an integer: its range must be checked first
// (a NaN or a value beyond the integer's range is undefined behaviour).
TEST(Histogram, RangesWhoseWidthIsNotFiniteAreRefused) {
  const std::vector<float> v{0.0f, 1.0f, 3e38f};
  for (const auto& range : {std::pair{-3.4e38f, 3.4e38f}, {-INFINITY, INFINITY}, {0.0f, INFINITY}})
    EXPECT_THAT(error_of([&] { nn::histogram(v, 4, range.first, range.second); }),
                HasSubstr("histogram: need bins > 0 and a finite range"))
        << range.first << ".." << range.second;
}

}  // namespace

namespace {

// No training image: no histogram or class mean to draw (gnuplot used to fail on the empty plot).
TEST(Ch02Executable, AnEmptyTrainingSetIsAClearError) {
  testing_nn::TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {0, 28, 28}, {5, 28, 28});
  auto run = testing_nn::run_program("ch02-normalization", {"--data", (dir / "data").string(), "--plots", (dir / "plots").string()});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, ::testing::HasSubstr("data: the training set is empty: there are no training pixels to count or average")) << run.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "plots")) << "nothing is drawn";
}

}  // namespace
