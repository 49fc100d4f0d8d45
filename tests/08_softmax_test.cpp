// Chapter 08: softmax, categorical cross-entropy, their gradients, accuracy.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "nn/error.hpp"
#include "nn/model.hpp"
#include "nn/one_hot.hpp"
#include "nn/softmax.hpp"
#include "gradcheck.hpp"
#include "testing.hpp"

namespace {

using testing_nn::all_close;

// Logits spread over [-3, 3].
nn::Tensor random_logits(nn::Shape shape, std::uint64_t seed) { return testing_nn::random_tensor(shape, seed, -3.0f, 3.0f); }

bool all_finite(const nn::Tensor& t) {
  for (float v : t.span())
    if (!std::isfinite(v)) return false;
  return true;
}

TEST(Softmax, HandComputed) {
  // softmax(0, ln 2, ln 3) = (1, 2, 3) / 6
  nn::Tensor z({1, 3}, std::vector<float>{0.0f, std::log(2.0f), std::log(3.0f)});
  nn::Tensor p = nn::softmax(z);
  EXPECT_TRUE(all_close(p, nn::Tensor({1, 3}, std::vector<float>{1 / 6.0f, 2 / 6.0f, 3 / 6.0f}), 1e-7, 1e-6));
}

TEST(Softmax, RowsSumToOneAndShiftDoesNotMatter) {
  nn::Tensor z = random_logits({8, 10}, 1);
  nn::Tensor shifted = z;
  for (float& v : shifted.span()) v += 100.0f;
  nn::Tensor p = nn::softmax(z);
  for (std::size_t i = 0; i < 8; ++i) {
    double sum = 0;
    for (std::size_t j = 0; j < 10; ++j) sum += p(i, j);
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
  EXPECT_TRUE(all_close(nn::softmax(shifted), p, 1e-6, 1e-4));
}

TEST(Softmax, ExtremeLogitsGiveNoNaNOrInf) {
  nn::Tensor z({4, 4}, std::vector<float>{
                           1000, -1000, 0, 0,         // +-1000
                           5, 5, 5, 5,                // all equal
                           1e30f, -1e30f, -1e30f, 0,  // one huge, the rest tiny
                           -1000, -1000, -1000, -1000});
  nn::Tensor p = nn::softmax(z);
  EXPECT_TRUE(all_finite(p));
  EXPECT_FLOAT_EQ(p(0, 0), 1.0f);
  EXPECT_FLOAT_EQ(p(0, 1), 0.0f);
  for (std::size_t j = 0; j < 4; ++j) EXPECT_FLOAT_EQ(p(1, j), 0.25f);
  EXPECT_FLOAT_EQ(p(2, 0), 1.0f);
  for (std::size_t j = 0; j < 4; ++j) EXPECT_FLOAT_EQ(p(3, j), 0.25f);
  // The loss of a confident wrong answer is finite: -log(1e-7) = 16.118.
  nn::Tensor y = nn::one_hot(std::vector<int>{1, 0, 3, 2}, 4);
  double loss = nn::categorical_crossentropy(p, y);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NEAR(loss, (-std::log(1e-7) + std::log(4.0) + -std::log(1e-7) + std::log(4.0)) / 4, 1e-4);
  EXPECT_TRUE(all_finite(nn::softmax_crossentropy_backward(p, y)));
  EXPECT_TRUE(all_finite(nn::categorical_crossentropy_backward(p, y)));
}

TEST(CrossEntropy, HandComputedAndClipped) {
  nn::Tensor p({2, 3}, std::vector<float>{0.7f, 0.2f, 0.1f, 0.0f, 0.5f, 0.5f});
  nn::Tensor y = nn::one_hot(std::vector<int>{0, 0}, 3);
  // Row 1: -log 0.7. Row 2: p = 0 is clipped to 1e-7: -log 1e-7.
  EXPECT_NEAR(nn::categorical_crossentropy(p, y), (-std::log(0.7) - std::log(1e-7)) / 2, 1e-6);
}

TEST(CrossEntropy, FromTheLogitsHandComputed) {
  nn::Tensor z({3, 3}, std::vector<float>{0.0f, std::log(2.0f), std::log(3.0f),  // p = (1, 2, 3) / 6
                                          0.0f, 0.0f, 50.0f,                     // a confident wrong answer
                                          1000.0f, -1000.0f, 0.0f});             // extreme logits
  nn::Tensor y = nn::one_hot(std::vector<int>{2, 0, 1}, 3);
  // Row 1: -log(3/6) = log 2. Row 2: logsumexp(0, 0, 50) - 0 = 50 + log(1 + 2 e^-50) = 50 (no clip at 16.12).
  // Row 3: logsumexp(1000, -1000, 0) + 1000 = 2000.
  EXPECT_NEAR(nn::softmax_crossentropy(z, y), (std::log(2.0) + 50.0 + 2000.0) / 3, 1e-4);
  // The clipped loss on the probabilities caps row 2 and 3 at -log(1e-7).
  EXPECT_NEAR(nn::categorical_crossentropy(nn::softmax(z), y), (std::log(2.0) + 2 * -std::log(1e-7)) / 3, 1e-4);
}

TEST(CrossEntropy, FromTheLogitsEqualsTheClippedLossWhereNothingIsClipped) {
  nn::Tensor z = random_logits({16, 10}, 4);
  nn::Tensor y = nn::one_hot(std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5}, 10);
  EXPECT_NEAR(nn::softmax_crossentropy(z, y), nn::categorical_crossentropy(nn::softmax(z), y), 1e-6);
}

// Keras computes the model's loss from the logits of its last Dense layer
// (Dense(10, activation="softmax") + categorical_crossentropy). A model
// whose logits are (0, ..., 0, 50) for every image, scored against class 0,
// has a loss of 50: with the clipped probabilities it would be 16.12.
TEST(CrossEntropy, TheModelsLossComesFromTheLogits) {
  nn::Sequential model = nn::make_mnist_model(1);
  for (const nn::NamedParameter& w : model.named_parameters()) {
    if (w.name == "dense_1.kernel") w.parameter->value.fill(0.0f);
    if (w.name == "dense_1.bias") (w.parameter->value)[9] = 50.0f;
  }
  const nn::Tensor x = testing_nn::random_tensor({4, 28, 28, 1}, 5, 0.0f, 1.0f);
  const nn::Tensor y = nn::one_hot(std::vector<int>{0, 0, 0, 0}, 10);
  const double expected = 50.0 + std::log1p(9.0 * std::exp(-50.0));
  EXPECT_NEAR(model.compute_gradients(x, y), expected, 1e-4);
  EXPECT_NEAR(model.evaluate(x, y, 3).loss, expected, 1e-4);
}

TEST(CrossEntropy, FusedGradientEqualsTheChainOfBoth) {
  nn::Tensor z = random_logits({6, 10}, 2);
  nn::Tensor y = nn::one_hot(std::vector<int>{3, 1, 4, 1, 5, 9}, 10);
  nn::Tensor p = nn::softmax(z);
  nn::Tensor chain = nn::softmax_backward(p, nn::categorical_crossentropy_backward(p, y));
  nn::Tensor fused = nn::softmax_crossentropy_backward(p, y);
  EXPECT_TRUE(all_close(fused, chain, 1e-7, 1e-4));
}

TEST(CrossEntropy, GradientCheckInDouble) {
  // d loss / d z by central differences of the double-precision kernels,
  // against the fused (p - y) / N computed in float.
  const std::size_t n = 4, k = 10;
  nn::Tensor zf = random_logits({n, k}, 3);
  nn::Tensor y = nn::one_hot(std::vector<int>{2, 7, 7, 0}, k);
  std::vector<double> z(zf.span().begin(), zf.span().end()), yd(y.span().begin(), y.span().end());
  auto loss = [&](const std::vector<double>& zz) {
    std::vector<double> p(n * k);
    nn::softmax_rows(zz.data(), p.data(), n, k);
    return nn::crossentropy_rows(p.data(), yd.data(), n, k);
  };
  std::vector<double> numeric(n * k);
  const double h = 1e-5;
  for (std::size_t i = 0; i < n * k; ++i) {
    auto zp = z, zm = z;
    zp[i] += h;
    zm[i] -= h;
    numeric[i] = (loss(zp) - loss(zm)) / (2 * h);
  }
  nn::Tensor dz = nn::softmax_crossentropy_backward(nn::softmax(zf), y);
  std::vector<double> analytic(dz.span().begin(), dz.span().end());
  EXPECT_TRUE(all_close(std::span<const double>(analytic), numeric, 1e-6, 1e-4));
}

// softmax_backward on its own: L = sum(r * softmax(z)) in double, every
// logit nudged by +-eps, against softmax_backward_rows(p, r). The float
// layer function is then checked against that double gradient.
TEST(Softmax, BackwardMatchesCentralDifferencesInDouble) {
  const std::size_t n = 4, k = 10;
  const nn::Tensor zf = random_logits({n, k}, 5), rf = testing_nn::random_tensor({n, k}, 6);
  std::vector<double> z = testing_nn::as_double(zf);
  const std::vector<double> r = testing_nn::as_double(rf);
  auto loss = [&] {
    std::vector<double> p(n * k);
    nn::softmax_rows(z.data(), p.data(), n, k);
    double l = 0;
    for (std::size_t i = 0; i < p.size(); ++i) l += r[i] * p[i];
    return l;
  };
  std::vector<double> p(n * k), dz(n * k);
  nn::softmax_rows(z.data(), p.data(), n, k);
  nn::softmax_backward_rows(p.data(), r.data(), dz.data(), n, k);
  EXPECT_TRUE(all_close(std::span<const double>(dz), testing_nn::central_differences(z, loss, 1e-6), 1e-9, 1e-6));
  const nn::Tensor dzf = nn::softmax_backward(nn::softmax(zf), rf);
  EXPECT_TRUE(all_close(std::span<const double>(testing_nn::as_double(dzf)), dz, 1e-7, 1e-5));
}

// categorical_crossentropy_backward on its own: L(p) = crossentropy_rows(p, y)
// as a function of every entry of p (not only the simplex), with soft labels
// so that every entry has a slope. Entries inside the clip range get
// -y / (p N); the two entries below 1e-7 sit where the clip is flat: slope 0
// on both sides. The step is relative (1e-5 p), so it never leaves either region.
TEST(CrossEntropy, BackwardMatchesCentralDifferencesInDouble) {
  const std::size_t n = 3, k = 10;
  std::vector<double> p = testing_nn::random_doubles(n * k, 7, 0.01, 0.99);
  const std::vector<double> y = testing_nn::random_doubles(n * k, 8, 0.0, 1.0);
  p[4] = 3e-8;   // clipped from below
  p[17] = 0.0;   // clipped: log(0) never seen
  auto loss = [&] { return nn::crossentropy_rows(p.data(), y.data(), n, k); };
  std::vector<double> dp(n * k);
  nn::crossentropy_backward_rows(p.data(), y.data(), dp.data(), n, k);
  std::vector<double> numeric(n * k);
  for (std::size_t i = 0; i < n * k; ++i) {
    const std::size_t at[] = {i};
    numeric[i] = testing_nn::central_differences(p, loss, p[i] == 0 ? 1e-12 : 1e-5 * p[i], at)[0];
  }
  EXPECT_TRUE(all_close(std::span<const double>(dp), numeric, 1e-8, 1e-6));
  EXPECT_EQ(dp[4], 0.0);
  EXPECT_EQ(dp[17], 0.0);
  const nn::Tensor pf({n, k}, std::vector<float>(p.begin(), p.end())), yf({n, k}, std::vector<float>(y.begin(), y.end()));
  const auto pd = testing_nn::as_double(pf), yd = testing_nn::as_double(yf);  // p and y as float sees them
  std::vector<double> dpd(n * k);
  nn::crossentropy_backward_rows(pd.data(), yd.data(), dpd.data(), n, k);
  EXPECT_TRUE(all_close(std::span<const double>(testing_nn::as_double(nn::categorical_crossentropy_backward(pf, yf))),
                        dpd, 1e-7, 1e-6));
}

TEST(Accuracy, ArgmaxMatch) {
  nn::Tensor p({3, 3}, std::vector<float>{0.1f, 0.8f, 0.1f, 0.5f, 0.3f, 0.2f, 0.2f, 0.2f, 0.6f});
  nn::Tensor y = nn::one_hot(std::vector<int>{1, 1, 2}, 3);
  EXPECT_EQ(nn::correct_count(p, y), 2u);
  EXPECT_DOUBLE_EQ(nn::accuracy(p, y), 2.0 / 3.0);
}

TEST(Softmax, ShapeErrors) {
  try {
    nn::categorical_crossentropy(nn::Tensor({2, 10}), nn::Tensor({2, 9}));
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("(2, 10) and (2, 9)"));
  }
}

}  // namespace

namespace {

TEST(Ch08Executable, TooFewTrainingImagesAreAClearError) {
  testing_nn::expect_too_few_training_images_refused("ch08-softmax");
}

}  // namespace

// ---- Mean squared error on the softmax (chapter 10's --loss mse) ----------

namespace {

TEST(MeanSquaredError, IsTheMeanOverTheClassesThenOverTheBatchAsKerasComputesIt) {
  // Keras's documented example: y [[0, 1], [0, 0]], p [[1, 1], [1, 0]] -> rows 0.5 and 0.5 -> 0.5.
  const nn::Tensor y({2, 2}, std::vector<float>{0, 1, 0, 0}), p({2, 2}, std::vector<float>{1, 1, 1, 0});
  EXPECT_DOUBLE_EQ(nn::mean_squared_error(p, y), 0.5);
  // One row of 4 classes: ((0.5)^2 + (0.5 - 1)^2 + 0 + 0) / 4 = 0.125; a second row of 0: mean 0.0625.
  const nn::Tensor p2({2, 4}, std::vector<float>{0.5f, 0.5f, 0, 0, 0, 1, 0, 0});
  const nn::Tensor y2({2, 4}, std::vector<float>{0, 1, 0, 0, 0, 1, 0, 0});
  EXPECT_DOUBLE_EQ(nn::mean_squared_error(p2, y2), 0.0625);
  EXPECT_THAT(testing_nn::error_of([&] { nn::mean_squared_error(p2, y); }),
              ::testing::HasSubstr("mean_squared_error: expected two (N, K) tensors of the same shape"));
}

// loss(z) = mean_squared_error(softmax(z)) in double, against its backward
// pass (the squared error's, then the softmax's Jacobian) by central differences.
TEST(MeanSquaredError, GradientThroughTheSoftmaxMatchesCentralDifferencesInDouble) {
  const std::size_t n = 4, k = 10;
  std::vector<double> z = testing_nn::random_doubles(n * k, 11, -3.0, 3.0), y(n * k, 0.0);
  for (std::size_t i = 0; i < n; ++i) y[i * k + (3 * i + 1) % k] = 1.0;
  std::vector<double> p(n * k), dz(n * k);
  const auto loss = [&] {
    std::vector<double> q(n * k);
    nn::softmax_rows(z.data(), q.data(), n, k);
    return nn::squared_error_rows(q.data(), y.data(), n, k);
  };
  nn::softmax_rows(z.data(), p.data(), n, k);
  nn::squared_error_backward_rows(p.data(), y.data(), dz.data(), n, k);
  nn::softmax_backward_rows(p.data(), dz.data(), dz.data(), n, k);
  const std::vector<double> numeric = testing_nn::central_differences(z, loss, 1e-5);
  double largest = 0;
  for (double g : dz) largest = std::max(largest, std::abs(g));
  ASSERT_GT(largest, 1e-4);
  for (std::size_t i = 0; i < n * k; ++i) EXPECT_NEAR(dz[i], numeric[i], 1e-8 * largest) << "logit " << i;

  // The float path the model runs gives the same gradient.
  nn::Tensor zf({n, k}), yf({n, k});
  for (std::size_t i = 0; i < n * k; ++i) zf[i] = static_cast<float>(z[i]), yf[i] = static_cast<float>(y[i]);
  const nn::Tensor dzf = nn::softmax_mean_squared_error_backward(nn::softmax(zf), yf);
  for (std::size_t i = 0; i < n * k; ++i) EXPECT_NEAR(dzf[i], dz[i], 1e-6 * largest) << "logit " << i;
}

// The point of chapter 10's experiment: confidently wrong, cross-entropy's
// gradient on the true logit is about 1 (per sample), the squared error's about 0.
TEST(MeanSquaredError, ItsGradientVanishesWhenTheNetworkIsConfidentlyWrong) {
  nn::Tensor z({1, 10}, -20.0f), y({1, 10});
  y[0] = 1;
  z[0] = -10;  // the true class; class 1 at 0 takes almost all the probability
  z[1] = 0;
  const nn::Tensor p = nn::softmax(z);
  ASSERT_LT(p[0], 1e-4f);
  const float ce = nn::softmax_crossentropy_backward(p, y)[0], mse = nn::softmax_mean_squared_error_backward(p, y)[0];
  EXPECT_NEAR(ce, -1.0f, 1e-4f);  // p - y
  // mse: p_0 (dp_0 - sum_j dp_j p_j) with dp = 2 (p - y) / 10: about p_0 * (-0.2 - 0.2) = -0.4 p_0
  EXPECT_NEAR(mse, -0.4f * p[0], 0.01f * p[0]);
  EXPECT_LT(std::abs(mse), 1e-4f * std::abs(ce));

  // Even at a uniform p = 1/10, where training starts, the squared error's
  // is 50 times smaller: 2/K = 0.2 from the mean over the classes, and
  // p_true = 0.1 from the Jacobian (the dot product is 0 there):
  // dz_true = 0.1 * 0.2 * (0.1 - 1) = -0.018, against (0.1 - 1) = -0.9.
  const nn::Tensor uniform = nn::softmax(nn::Tensor({1, 10}));
  EXPECT_NEAR(nn::softmax_crossentropy_backward(uniform, y)[0], -0.9f, 1e-6f);
  EXPECT_NEAR(nn::softmax_mean_squared_error_backward(uniform, y)[0], -0.018f, 1e-6f);
}

}  // namespace
