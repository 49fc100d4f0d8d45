// Chapter 12: beyond the Keras program. Dropout with Keras's semantics, the
// `training` flag that Sequential sets, and Keras's "Simple MNIST convnet"
// (keras.io/examples/vision/mnist_convnet) built from the public API.
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <cmath>
#include <cstring>
#include <span>
#include <vector>

#include "gradcheck.hpp"
#include "nn/error.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/parallel.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;

bool same_bits(nn::ConstView a, nn::ConstView b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

nn::Tensor copy_of(nn::ConstView v) {
  nn::Tensor t(v.shape());
  std::memcpy(t.data(), v.data(), v.size() * sizeof(float));
  return t;
}

// ---- Dropout ------------------------------------------------------------------

TEST(Dropout, OutsideTrainingItIsTheIdentityWithoutACopy) {
  nn::Dropout drop({.rate = 0.5, .seed = 1});
  const nn::Tensor x = testing_nn::random_tensor({4, 10}, 3);
  const nn::ConstView y = drop.forward(x);  // training is false by default, as in Keras's call()
  EXPECT_EQ(y.data(), x.data());
  const nn::Tensor dy = testing_nn::random_tensor({4, 10}, 4);
  EXPECT_EQ(drop.backward(x, copy_of(y), dy).data(), dy.data());
  EXPECT_EQ(drop.draws, 0u);  // no mask was drawn
}

TEST(Dropout, InTrainingKeepsAFractionOneMinusRateDividedByIt) {
  for (double rate : {0.5, 0.25, 0.8}) {
    nn::Dropout drop({.rate = rate, .seed = 7});
    drop.training = true;
    const nn::Tensor x({200000}, 3.0f);
    const nn::ConstView y = drop.forward(x);
    const float keep = static_cast<float>(1.0 - rate);
    std::size_t kept = 0;
    for (std::size_t i = 0; i < y.size(); ++i) {
      if (y.data()[i] == 0.0f) continue;
      ++kept;
      ASSERT_EQ(y.data()[i], 3.0f / keep) << "a kept element is x / (1 - rate), as Keras divides; rate " << rate;
    }
    const double fraction = static_cast<double>(kept) / static_cast<double>(x.size());
    // 200,000 Bernoulli draws: the standard deviation of the fraction is below 0.0012.
    EXPECT_NEAR(fraction, 1.0 - rate, 0.006) << "rate " << rate;
  }
}

TEST(Dropout, RateZeroKeepsEverythingAndRateOneDropsEverything) {
  const nn::Tensor x = testing_nn::random_tensor({3, 5}, 1);
  nn::Dropout none({.rate = 0.0});
  none.training = true;
  EXPECT_EQ(none.forward(x).data(), x.data());
  nn::Dropout all({.rate = 1.0});
  all.training = true;
  const nn::ConstView y = all.forward(x);
  for (std::size_t i = 0; i < y.size(); ++i) EXPECT_EQ(y.data()[i], 0.0f);
  const nn::ConstView dx = all.backward(x, copy_of(y), testing_nn::random_tensor({3, 5}, 2));
  for (std::size_t i = 0; i < dx.size(); ++i) EXPECT_EQ(dx.data()[i], 0.0f);
}

TEST(Dropout, ARateOutsideZeroToOneIsAnError) {
  EXPECT_THAT(testing_nn::error_of([] { nn::Dropout({.rate = 1.5}); }), HasSubstr("outside [0, 1]"));
  EXPECT_THAT(testing_nn::error_of([] { nn::Dropout({.rate = -0.1}); }), HasSubstr("outside [0, 1]"));
  EXPECT_THAT(testing_nn::error_of([] { nn::Dropout({.rate = std::nan("")}); }), HasSubstr("outside [0, 1]"));
}

TEST(Dropout, EachCallDrawsANewMaskThatDependsOnlyOnTheSeedAndTheCallNumber) {
  const nn::Tensor x = testing_nn::random_tensor({8, 300}, 5);
  nn::Dropout drop({.rate = 0.5, .seed = 11});
  drop.training = true;
  const nn::Tensor first = copy_of(drop.forward(x));
  const nn::Tensor second = copy_of(drop.forward(x));
  EXPECT_EQ(drop.draws, 2u);
  EXPECT_FALSE(same_bits(first, second)) << "a new mask every training call";
  drop.draws = 0;  // replay
  EXPECT_TRUE(same_bits(drop.forward(x), first));
  nn::Dropout other_seed({.rate = 0.5, .seed = 12});
  other_seed.training = true;
  EXPECT_FALSE(same_bits(other_seed.forward(x), first));
  // The same mask whatever the number of threads.
  for (std::size_t threads : {1, 2, 3}) {
    nn::set_thread_count(threads);
    nn::Dropout again({.rate = 0.5, .seed = 11});
    again.training = true;
    EXPECT_TRUE(same_bits(again.forward(x), first)) << threads << " threads";
  }
  nn::set_thread_count(0);
}

TEST(Dropout, BackwardPassesTheGradientThroughTheKeptElementsOnly) {
  const nn::Tensor x = testing_nn::random_tensor({6, 50}, 8);
  const nn::Tensor dy = testing_nn::random_tensor({6, 50}, 9);
  nn::Dropout drop({.rate = 0.3, .seed = 2});
  drop.training = true;
  const nn::Tensor y = copy_of(drop.forward(x));
  const nn::ConstView dx = drop.backward(x, y, dy);
  const float keep = 0.7f;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (y.data()[i] == 0.0f)
      EXPECT_EQ(dx.data()[i], 0.0f) << i;
    else
      EXPECT_EQ(dx.data()[i], dy.data()[i] / keep) << i;  // d(x / keep)/dx = 1 / keep
  }
}

// The generic check of the gradients against central differences, through
// the Layer interface. Each training call draws a new mask, so the layer
// under test replays mask 0 on every call: the check sees one function.
class ReplayedDropout final : public nn::Layer {
 public:
  explicit ReplayedDropout(const nn::DropoutOptions& o) : dropout_(o) { dropout_.training = true; }
  std::string type() const override { return "Dropout"; }
  std::string base_name() const override { return "dropout"; }
  nn::Shape output_shape(const nn::Shape& x) const override { return x; }
  nn::ConstView forward(const nn::Tensor& x) override {
    dropout_.draws = 0;
    return dropout_.forward(x);
  }
  nn::ConstView backward(const nn::Tensor& x, const nn::Tensor& y, const nn::Tensor& dy, bool need_dx) override {
    return dropout_.backward(x, y, dy, need_dx);
  }

 private:
  nn::Dropout dropout_;
};

TEST(Dropout, GradientsMatchCentralDifferences) {
  ReplayedDropout drop({.rate = 0.5, .seed = 4});
  const nn::Tensor x = testing_nn::random_tensor({4, 7, 7, 3}, 21);
  EXPECT_EQ(testing_nn::layer_gradient_problems(drop, x, 5), "");
}

// ---- The training flag ---------------------------------------------------------

nn::Sequential small_model_with_dropout(std::uint64_t seed) {
  nn::Sequential model({6, 6, 1});
  model.add(nn::Flatten());
  model.add(nn::Dense({.units = 20, .input_dim = 36, .activation = nn::Activation::relu, .seed = seed}));
  model.add(nn::Dropout({.rate = 0.5, .seed = seed + 1}));
  model.add(nn::Dense({.units = 10, .input_dim = 20, .seed = seed + 2}));
  return model;
}

TEST(TrainingFlag, FitTrainsWithDropoutAndPredictAndEvaluateRunWithout) {
  nn::Sequential model = small_model_with_dropout(3);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  auto& drop = dynamic_cast<nn::Dropout&>(*model.layers()[2]);
  const nn::Tensor x = testing_nn::random_tensor({16, 6, 6, 1}, 1, 0.0f, 1.0f);
  const nn::Tensor y = nn::one_hot(std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5});

  // predict and evaluate: inference, no mask drawn, and the same answer every time.
  const nn::Tensor p1 = model.predict(x);
  const nn::Tensor p2 = model.predict(x);
  EXPECT_TRUE(same_bits(p1, p2));
  const nn::Evaluation e = model.evaluate(x, y);
  EXPECT_EQ(drop.draws, 0u);
  EXPECT_FALSE(drop.training);

  // A training step draws a mask; the loss it sees is not the inference loss.
  const double train_loss = model.compute_gradients(x, y);
  EXPECT_EQ(drop.draws, 1u);
  EXPECT_TRUE(drop.training);
  EXPECT_NE(train_loss, e.loss);

  // After training, predict is back in inference: equal to the model with the
  // Dropout taken out (same weights).
  model.train_on_batch(x, y);
  const nn::Tensor p3 = model.predict(x);
  EXPECT_FALSE(drop.training);
  nn::Sequential without({6, 6, 1});
  without.add(nn::Flatten());
  without.add(nn::Dense({.units = 20, .input_dim = 36, .activation = nn::Activation::relu, .seed = 3}));
  without.add(nn::Dense({.units = 10, .input_dim = 20, .seed = 5}));
  auto from = model.named_parameters();
  auto to = without.named_parameters();
  ASSERT_EQ(from.size(), to.size());
  for (std::size_t i = 0; i < to.size(); ++i) to[i].parameter->value = from[i].parameter->value;  // a deep copy
  EXPECT_TRUE(same_bits(without.predict(x), p3));
}

TEST(TrainingFlag, TheModelsGradientWithDropoutMatchesCentralDifferences) {
  // The whole model's gradient, in training mode, with the mask replayed for
  // every evaluation of the loss.
  nn::Sequential model = small_model_with_dropout(8);
  auto& drop = dynamic_cast<nn::Dropout&>(*model.layers()[2]);
  const nn::Tensor x = testing_nn::random_tensor({5, 6, 6, 1}, 2, 0.0f, 1.0f);
  const nn::Tensor y = nn::one_hot(std::vector<int>{1, 3, 5, 7, 9});
  auto loss_at = [&] {
    drop.draws = 0;
    return model.compute_gradients(x, y);
  };
  loss_at();
  nn::Parameter& w = *model.named_parameters()[0].parameter;  // dense.kernel, (36, 20)
  const nn::Tensor grad = w.grad;  // a deep copy
  std::size_t checked = 0, zero = 0;
  for (std::size_t i = 0; i < w.size(); i += 7) {
    const float keep = w.value.data()[i];
    const double h = 1e-3;
    w.value.data()[i] = static_cast<float>(keep + h);
    const double up = loss_at();
    w.value.data()[i] = static_cast<float>(keep - h);
    const double down = loss_at();
    w.value.data()[i] = keep;
    const double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(grad.data()[i], numeric, 2e-3 + 2e-2 * std::abs(numeric)) << "dense.kernel[" << i << "]";
    ++checked;
    zero += grad.data()[i] == 0.0f;
  }
  EXPECT_GT(checked, 90u);
  EXPECT_LT(zero, checked) << "some gradients pass through the kept units";
}

// ---- Keras's "Simple MNIST convnet" --------------------------------------------

TEST(KerasIoConvnet, BuildsFromThePublicApiWithKerasSummaryAndLearns) {
  // keras.io/examples/vision/mnist_convnet, line for line.
  nn::Sequential model({28, 28, 1});
  model.add(nn::Conv2D({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = 1}));
  model.add(nn::MaxPooling2D({.pool = 2}));
  model.add(nn::Conv2D({.filters = 64, .kernel = 3, .input_channels = 32, .activation = nn::Activation::relu,
                        .seed = 2}));
  model.add(nn::MaxPooling2D({.pool = 2}));
  model.add(nn::Flatten());
  model.add(nn::Dropout({.rate = 0.5, .seed = 3}));
  model.add(nn::Dense({.units = 10, .input_dim = 1600, .seed = 4}));
  model.compile(std::make_unique<nn::Adam>());

  EXPECT_EQ(model.param_count(), 34826u);
  const std::string summary = model.summary();
  EXPECT_THAT(summary, HasSubstr("conv2d_1 (Conv2D)            (None, 11, 11, 64)        18496\n"));
  // 30 characters do not fit Keras's 29-column field: it is cut, as tf.keras 2.x cuts it.
  EXPECT_THAT(summary, HasSubstr("max_pooling2d_1 (MaxPooling2 (None, 5, 5, 64)          0\n"));
  EXPECT_THAT(summary, HasSubstr("dropout (Dropout)            (None, 1600)              0\n"));
  EXPECT_THAT(summary, HasSubstr("dense (Dense)                (None, 10)                16010\n"));
  EXPECT_THAT(summary, HasSubstr("Total params: 34,826\n"));

  // Ten Adam steps of batch 128 on real digits: the loss falls.
  const auto& m = testing_nn::real_mnist();
  const nn::Tensor x = nn::slice_batch(nn::images_to_tensor(m.x_train), 0, 128);
  const nn::Tensor y = nn::one_hot(std::span(m.y_train.data).first(128));
  const double first = model.train_on_batch(x, y);
  double last = first;
  for (int step = 0; step < 20; ++step) last = model.train_on_batch(x, y);
  EXPECT_NEAR(first, std::log(10.0), 0.3) << "about ln 10 at the start";
  EXPECT_LT(last, 0.6 * first);
  EXPECT_TRUE(std::isfinite(last));
}

}  // namespace
