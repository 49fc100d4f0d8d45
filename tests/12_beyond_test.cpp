// Chapter 12: beyond the Keras program. Dropout with Keras's semantics, the
// `training` flag that Sequential sets, and Keras's "Simple MNIST convnet"
// (keras.io/examples/vision/mnist_convnet) built from the public API; then the
// ladder's pieces: learning-rate schedules (nn/schedules.hpp) and the
// RandomTranslation augmentation layer (nn/layers/random_translation.hpp).
//
// The expected schedule values are Keras 3's documented formulas
// (keras/src/optimizers/schedules/learning_rate_schedule.py) worked out by
// hand in the comments, not computed by the library.
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <gmock/gmock.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <span>
#include <vector>

#include "gradcheck.hpp"
#include "nn/batch_norm.hpp"
#include "nn/layers/batch_normalization.hpp"
#include "nn/error.hpp"
#include "nn/io.hpp"
#include "nn/layers.hpp"
#include "nn/mnist.hpp"
#include "nn/model.hpp"
#include "nn/npy.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"
#include "nn/parallel.hpp"
#include "nn/plot.hpp"
#include "nn/schedules.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;
using testing_nn::error_of;
using testing_nn::random_tensor;

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
// the Layer interface. Each training call of a random layer (Dropout,
// RandomTranslation) draws anew, so the layer under test replays draw 0 on
// every call: the check sees one function.
template <class RandomLayer>
class Replayed final : public nn::Layer {
 public:
  template <class Options>
  explicit Replayed(const Options& o) : layer_(o) { layer_.training = true; }
  std::string type() const override { return layer_.type(); }
  std::string base_name() const override { return layer_.base_name(); }
  nn::Shape output_shape(const nn::Shape& x) const override { return layer_.output_shape(x); }
  nn::ConstView forward(const nn::Tensor& x) override {
    layer_.draws = 0;
    return layer_.forward(x);
  }
  nn::ConstView backward(const nn::Tensor& x, const nn::Tensor& y, const nn::Tensor& dy, bool need_dx) override {
    return layer_.backward(x, y, dy, need_dx);
  }

 private:
  RandomLayer layer_;
};

TEST(Dropout, GradientsMatchCentralDifferences) {
  Replayed<nn::Dropout> drop(nn::DropoutOptions{.rate = 0.5, .seed = 4});
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

// ---- Backward stops at the first step with weights ----------------------------

// The identity, counting its backward calls and whether they asked for dx.
class CountingIdentity final : public nn::Layer {
 public:
  int backward_calls = 0, dx_requests = 0;
  std::string type() const override { return "CountingIdentity"; }
  std::string base_name() const override { return "counting_identity"; }
  nn::Shape output_shape(const nn::Shape& x) const override { return x; }
  nn::ConstView forward(const nn::Tensor& x) override { return x; }
  nn::ConstView backward(const nn::Tensor&, const nn::Tensor&, const nn::Tensor& dy, bool need_dx) override {
    ++backward_calls;
    dx_requests += need_dx;
    return dy;
  }
};

TEST(Backprop, StepsInFrontOfTheFirstWeightsRunNoBackwardPass) {
  // A step without weights in front (as RandomTranslation is in chapter 12):
  // its backward pass, and the input gradient of the first Conv2D, would only
  // compute the gradient of the images, which nothing uses.
  nn::Sequential model({8, 8, 1});
  model.add(CountingIdentity());
  model.add(nn::Conv2D({.filters = 16, .kernel = 3, .activation = nn::Activation::relu, .seed = 1}));
  model.add(nn::MaxPooling2D({.pool = 2}));
  model.add(CountingIdentity());
  model.add(nn::Flatten());
  model.add(nn::Dense({.units = 10, .input_dim = 144, .seed = 2}));
  ASSERT_EQ(model.plan().size(), 5u) << "the conv-pool pair is one fused step";
  const nn::Tensor x = testing_nn::random_tensor({3, 8, 8, 1}, 1, 0.0f, 1.0f);
  const nn::Tensor y = nn::one_hot(std::vector<int>{1, 2, 3});
  model.compute_gradients(x, y);
  auto& front = dynamic_cast<CountingIdentity&>(*model.layers()[0]);
  auto& middle = dynamic_cast<CountingIdentity&>(*model.layers()[3]);
  EXPECT_EQ(front.backward_calls, 0);
  EXPECT_EQ(middle.backward_calls, 1);
  EXPECT_EQ(middle.dx_requests, 1) << "the fused Conv2D behind it has weights: it needs the gradient";
  // The gradients are those of the same model without the identity in front.
  nn::Sequential plain({8, 8, 1});
  plain.add(nn::Conv2D({.filters = 16, .kernel = 3, .activation = nn::Activation::relu, .seed = 1}));
  plain.add(nn::MaxPooling2D({.pool = 2}));
  plain.add(nn::Flatten());
  plain.add(nn::Dense({.units = 10, .input_dim = 144, .seed = 2}));
  plain.compute_gradients(x, y);
  const auto a = model.named_parameters(), b = plain.named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(same_bits(a[i].parameter->grad, b[i].parameter->grad)) << a[i].name;
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

// ---- Learning-rate schedules -----------------------------------------------

TEST(Schedules, CosineDecayFollowsHalfACosineToAlpha) {
  const nn::CosineDecay cosine({.initial_learning_rate = 0.1f, .decay_steps = 100});
  // 0.1 * 0.5 * (1 + cos(pi * s / 100))
  EXPECT_FLOAT_EQ(cosine(0), 0.1f);
  EXPECT_FLOAT_EQ(cosine(25), 0.085355339f);  // 0.05 * (1 + cos(pi / 4)) = 0.05 * 1.70710678
  EXPECT_FLOAT_EQ(cosine(50), 0.05f);         // cos(pi / 2) = 0
  EXPECT_NEAR(cosine(75), 0.014644661f, 1e-9f);  // 0.05 * (1 - 0.70710678)
  EXPECT_NEAR(cosine(100), 0.0f, 1e-9f);
  EXPECT_NEAR(cosine(1000), 0.0f, 1e-9f);  // Keras clamps the step at decay_steps

  const nn::CosineDecay floor({.initial_learning_rate = 0.1f, .decay_steps = 100, .alpha = 0.1f});
  // 0.1 * ((1 - 0.1) * cosine + 0.1)
  EXPECT_FLOAT_EQ(floor(0), 0.1f);
  EXPECT_FLOAT_EQ(floor(50), 0.055f);   // 0.1 * (0.9 * 0.5 + 0.1)
  EXPECT_FLOAT_EQ(floor(100), 0.01f);   // 0.1 * alpha
  EXPECT_FLOAT_EQ(floor(5000), 0.01f);
}

TEST(Schedules, CosineDecayWithWarmup) {
  const nn::CosineDecay warm(
      {.initial_learning_rate = 0.0f, .decay_steps = 100, .warmup_target = 0.1f, .warmup_steps = 10});
  // Warmup: (0.1 - 0) * s / 10 + 0; then the decay from 0.1 over the next 100 steps.
  EXPECT_FLOAT_EQ(warm(0), 0.0f);
  EXPECT_FLOAT_EQ(warm(5), 0.05f);
  EXPECT_FLOAT_EQ(warm(10), 0.1f);
  EXPECT_FLOAT_EQ(warm(60), 0.05f);  // halfway through the decay
  EXPECT_NEAR(warm(110), 0.0f, 1e-9f);
  EXPECT_NEAR(warm(500), 0.0f, 1e-9f);
}

TEST(Schedules, ExponentialDecay) {
  const nn::ExponentialDecay smooth({.initial_learning_rate = 0.1f, .decay_steps = 10, .decay_rate = 0.5f});
  // 0.1 * 0.5^(s / 10)
  EXPECT_FLOAT_EQ(smooth(0), 0.1f);
  EXPECT_FLOAT_EQ(smooth(5), 0.070710678f);  // 0.1 / sqrt(2)
  EXPECT_FLOAT_EQ(smooth(10), 0.05f);
  EXPECT_FLOAT_EQ(smooth(15), 0.035355339f);
  EXPECT_FLOAT_EQ(smooth(20), 0.025f);

  const nn::ExponentialDecay stairs(
      {.initial_learning_rate = 0.1f, .decay_steps = 10, .decay_rate = 0.5f, .staircase = true});
  // 0.1 * 0.5^floor(s / 10)
  EXPECT_FLOAT_EQ(stairs(0), 0.1f);
  EXPECT_FLOAT_EQ(stairs(9), 0.1f);
  EXPECT_FLOAT_EQ(stairs(10), 0.05f);
  EXPECT_FLOAT_EQ(stairs(19), 0.05f);
  EXPECT_FLOAT_EQ(stairs(20), 0.025f);
}

TEST(Schedules, PiecewiseConstantDecayBoundariesBelongToTheIntervalBelow) {
  // Keras's docstring example: 1.0 for steps <= 100000, 0.5 up to 110000, then 0.1.
  const nn::PiecewiseConstantDecay pieces({100000, 110000}, {1.0f, 0.5f, 0.1f});
  EXPECT_EQ(pieces(0), 1.0f);
  EXPECT_EQ(pieces(100000), 1.0f);
  EXPECT_EQ(pieces(100001), 0.5f);
  EXPECT_EQ(pieces(110000), 0.5f);
  EXPECT_EQ(pieces(110001), 0.1f);
  EXPECT_EQ(pieces(10000000), 0.1f);
}

TEST(Schedules, DescribeGivesTheKerasLine) {
  EXPECT_EQ(nn::CosineDecay({.initial_learning_rate = 0.001f, .decay_steps = 6330}).describe(),
            "CosineDecay(initial_learning_rate=0.001, decay_steps=6330)");
  EXPECT_EQ(nn::CosineDecay({.initial_learning_rate = 0.001f, .decay_steps = 6330, .alpha = 0.1f}).describe(),
            "CosineDecay(initial_learning_rate=0.001, decay_steps=6330, alpha=0.1)");
  EXPECT_EQ(nn::ExponentialDecay({.initial_learning_rate = 0.01f, .decay_steps = 1000, .decay_rate = 0.9f,
                                  .staircase = true})
                .describe(),
            "ExponentialDecay(initial_learning_rate=0.01, decay_steps=1000, decay_rate=0.9, staircase=True)");
  EXPECT_EQ(nn::PiecewiseConstantDecay({100, 110}, {1.0f, 0.5f, 0.1f}).describe(),
            "PiecewiseConstantDecay(boundaries=[100, 110], values=[1, 0.5, 0.1])");
}

TEST(Schedules, BadArgumentsThrow) {
  EXPECT_THAT(error_of([] { nn::CosineDecay({.initial_learning_rate = 0.1f, .decay_steps = 0}); }),
              HasSubstr("decay_steps must be > 0"));
  EXPECT_THAT(error_of([] { nn::ExponentialDecay({.initial_learning_rate = 0.1f, .decay_steps = 0, .decay_rate = 0.5f}); }),
              HasSubstr("decay_steps must be > 0"));
  EXPECT_THAT(error_of([] { nn::ExponentialDecay({.initial_learning_rate = 0.1f, .decay_steps = -5, .decay_rate = 0.5f}); }),
              HasSubstr("decay_steps must be > 0"));
  EXPECT_THAT(error_of([] { nn::PiecewiseConstantDecay({100, 200}, {1.0f, 0.5f}); }),
              HasSubstr("one more entry than boundaries"));
  EXPECT_THAT(error_of([] { nn::PiecewiseConstantDecay({200, 100}, {1.0f, 0.5f, 0.1f}); }),
              HasSubstr("strictly increasing"));
  EXPECT_THROW(nn::PiecewiseConstantDecay({}, {}), nn::Error);
}

// w = 1 with the constant gradient 1: each SGD step takes exactly lr off w.
TEST(Schedules, SGDUsesTheScheduleAtTheCountBeforeEachStep) {
  nn::SGD sgd({.learning_rate = 0.5f});  // overridden by the schedule
  // lr 1/8 at step 0, 1/4 at step 1, 1/2 after (powers of two: exact sums).
  // A schedule read at the count after the increment would start with 1/4.
  sgd.set_schedule(nn::PiecewiseConstantDecay({0, 1}, {0.125f, 0.25f, 0.5f}));
  nn::Parameter w("w", nn::Tensor({1}, 1.0f));
  w.grad = nn::Tensor({1}, 1.0f);
  nn::Parameter* params[] = {&w};
  sgd.step(params);
  EXPECT_EQ(w.value[0], 0.875f);
  sgd.step(params);
  EXPECT_EQ(w.value[0], 0.625f);
  sgd.step(params);
  EXPECT_EQ(w.value[0], 0.125f);
  sgd.step(params);
  EXPECT_EQ(w.value[0], -0.375f);

  sgd.set_schedule(nullptr);  // back to learning_rate=0.5
  sgd.step(params);
  EXPECT_EQ(w.value[0], -0.875f);
}

TEST(Schedules, MomentumAndRMSpropUseTheScheduledRate) {
  nn::Parameter w("w", nn::Tensor({1}, 1.0f));
  w.grad = nn::Tensor({1}, 1.0f);
  nn::Parameter* params[] = {&w};
  nn::SGD momentum({.learning_rate = 0.5f, .momentum = 0.5f});
  momentum.set_schedule(nn::PiecewiseConstantDecay({0}, {0.1f, 0.2f}));
  momentum.step(params);  // v = -0.1, w = 0.9
  momentum.step(params);  // v = 0.5 * -0.1 - 0.2 = -0.25, w = 0.65
  EXPECT_FLOAT_EQ(w.value[0], 0.65f);

  w.value[0] = 1.0f;
  nn::RMSprop rms({.learning_rate = 0.5f, .rho = 0.0f, .epsilon = 0.0f});
  rms.set_schedule(nn::PiecewiseConstantDecay({0}, {0.1f, 0.2f}));
  rms.step(params);  // rho 0: s = g^2 = 1, w -= lr g / 1 = 0.1
  rms.step(params);  // 0.2
  EXPECT_FLOAT_EQ(w.value[0], 0.7f);
}

TEST(Schedules, AdamStepSizeUsesTheScheduledRate) {
  // With a constant gradient Adam's bias-corrected m / sqrt(s) is 1 at every
  // step, so each step moves w by lr (less a hair for epsilon).
  nn::Adam adam({.learning_rate = 0.5f});
  adam.set_schedule(nn::ExponentialDecay({.initial_learning_rate = 0.01f, .decay_steps = 1, .decay_rate = 0.5f}));
  nn::Parameter w("w", nn::Tensor({1}, 1.0f));
  w.grad = nn::Tensor({1}, 2.0f);
  nn::Parameter* params[] = {&w};
  adam.step(params);  // lr(0) = 0.01
  EXPECT_NEAR(w.value[0], 0.99f, 1e-6f);
  adam.step(params);  // lr(1) = 0.005
  EXPECT_NEAR(w.value[0], 0.985f, 1e-6f);
  adam.step(params);  // lr(2) = 0.0025
  EXPECT_NEAR(w.value[0], 0.9825f, 1e-6f);
}

TEST(Schedules, OptimizerDescribeShowsTheSchedule) {
  nn::Adam adam;
  adam.set_schedule(nn::CosineDecay({.initial_learning_rate = 0.001f, .decay_steps = 6330}));
  EXPECT_EQ(adam.describe(),
            "Adam(learning_rate=CosineDecay(initial_learning_rate=0.001, decay_steps=6330), beta_1=0.9, "
            "beta_2=0.999, epsilon=1e-07)");
  auto sgd = nn::make_optimizer("sgd", 0.01f, 0.9f);
  sgd->set_schedule(nn::PiecewiseConstantDecay({100}, {0.01f, 0.001f}));
  EXPECT_EQ(sgd->describe(),
            "SGD(learning_rate=PiecewiseConstantDecay(boundaries=[100], values=[0.01, 0.001]), momentum=0.9)");
  ASSERT_NE(sgd->schedule(), nullptr);
  EXPECT_FLOAT_EQ((*sgd->schedule())(101), 0.001f);
}


// ---- RandomTranslation -----------------------------------------------------

// A (1, 3, 4, 1) image whose pixel (i, j) is 10 i + j + 1: 1 2 3 4 / 11 12 13 14 / 21 22 23 24.
nn::Tensor small_image() {
  nn::Tensor x({1, 3, 4, 1});
  for (std::size_t i = 0; i < 3; ++i)
    for (std::size_t j = 0; j < 4; ++j) x(0, i, j, 0) = static_cast<float>(10 * i + j + 1);
  return x;
}

std::vector<float> values(const nn::Tensor& t) { return {t.span().begin(), t.span().end()}; }

std::vector<float> shifted(const nn::Tensor& x, nn::Translation shift, nn::FillMode mode,
                           nn::Interpolation interpolation = nn::Interpolation::bilinear, float fill = 0.0f) {
  nn::Tensor y;
  const nn::Translation shifts[] = {shift};
  nn::translate_images(x, shifts, mode, interpolation, fill, y);
  return values(y);
}

TEST(RandomTranslation, InferenceIsTheIdentity) {
  nn::RandomTranslation layer({.height_factor = 0.5, .width_factor = 0.5, .seed = 3});
  const nn::Tensor x = random_tensor({4, 6, 5, 2}, 1);
  layer.training = false;
  const nn::ConstView y = layer.forward(x);
  EXPECT_EQ(values(y.tensor()), values(x));
  EXPECT_EQ(layer.draws, 0u);  // inference draws no shifts
  const nn::Tensor dy = random_tensor(x.shape(), 2);
  EXPECT_EQ(values(layer.backward(x, y, dy, true).tensor()), values(dy));
}

TEST(RandomTranslation, AWholePixelShiftMovesEveryPixelAndFillsTheBorder) {
  const nn::Tensor x = small_image();
  // One pixel right: column j reads column j - 1; column 0 reads outside.
  EXPECT_EQ(shifted(x, {.dx = 1}, nn::FillMode::reflect),
            (std::vector<float>{1, 1, 2, 3, 11, 11, 12, 13, 21, 21, 22, 23}));  // d c b a | a b c d
  EXPECT_EQ(shifted(x, {.dx = 1}, nn::FillMode::constant, nn::Interpolation::bilinear, 7.0f),
            (std::vector<float>{7, 1, 2, 3, 7, 11, 12, 13, 7, 21, 22, 23}));
  EXPECT_EQ(shifted(x, {.dx = 1}, nn::FillMode::nearest),
            (std::vector<float>{1, 1, 2, 3, 11, 11, 12, 13, 21, 21, 22, 23}));
  EXPECT_EQ(shifted(x, {.dx = 1}, nn::FillMode::wrap),
            (std::vector<float>{4, 1, 2, 3, 14, 11, 12, 13, 24, 21, 22, 23}));
  // Two pixels right: reflect mirrors about the edge (b a | a b), nearest repeats a.
  EXPECT_EQ(shifted(x, {.dx = 2}, nn::FillMode::reflect),
            (std::vector<float>{2, 1, 1, 2, 12, 11, 11, 12, 22, 21, 21, 22}));
  EXPECT_EQ(shifted(x, {.dx = 2}, nn::FillMode::nearest),
            (std::vector<float>{1, 1, 1, 2, 11, 11, 11, 12, 21, 21, 21, 22}));
  // One pixel up: row i reads row i + 1; the last row reads below the image.
  EXPECT_EQ(shifted(x, {.dy = -1}, nn::FillMode::reflect),
            (std::vector<float>{11, 12, 13, 14, 21, 22, 23, 24, 21, 22, 23, 24}));
  EXPECT_EQ(shifted(x, {.dy = -1}, nn::FillMode::constant),
            (std::vector<float>{11, 12, 13, 14, 21, 22, 23, 24, 0, 0, 0, 0}));
  // Left and down at once.
  EXPECT_EQ(shifted(x, {.dx = -1, .dy = 1}, nn::FillMode::constant),
            (std::vector<float>{0, 0, 0, 0, 2, 3, 4, 0, 12, 13, 14, 0}));
  // No shift: the image itself, in every mode.
  EXPECT_EQ(shifted(x, {}, nn::FillMode::constant), values(x));
}

TEST(RandomTranslation, AFractionalShiftInterpolatesBilinearly) {
  const nn::Tensor x = small_image();
  // Half a pixel right: the mean of each pixel and its left neighbour (at the
  // border, reflect's neighbour is the pixel itself).
  EXPECT_EQ(shifted(x, {.dx = 0.5f}, nn::FillMode::reflect),
            (std::vector<float>{1, 1.5f, 2.5f, 3.5f, 11, 11.5f, 12.5f, 13.5f, 21, 21.5f, 22.5f, 23.5f}));
  EXPECT_EQ(shifted(x, {.dx = 0.5f}, nn::FillMode::constant),
            (std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f, 5.5f, 11.5f, 12.5f, 13.5f, 10.5f, 21.5f, 22.5f, 23.5f}));
  // Half a pixel down and right: the mean of four pixels, (1 + 2 + 11 + 12) / 4 = 6.5 at (1, 1).
  const std::vector<float> both = shifted(x, {.dx = 0.5f, .dy = 0.5f}, nn::FillMode::reflect);
  EXPECT_FLOAT_EQ(both[1 * 4 + 1], 6.5f);
  EXPECT_FLOAT_EQ(both[2 * 4 + 3], 18.5f);  // (13 + 14 + 23 + 24) / 4
  // A quarter pixel left: 3/4 of the pixel, 1/4 of its right neighbour.
  const std::vector<float> quarter = shifted(x, {.dx = -0.25f}, nn::FillMode::reflect);
  EXPECT_FLOAT_EQ(quarter[0], 1.25f);  // 0.75 * 1 + 0.25 * 2
  EXPECT_FLOAT_EQ(quarter[3], 4.0f);   // 0.75 * 4 + 0.25 * 4 (reflected)
}

TEST(RandomTranslation, NearestInterpolationTakesTheClosestPixel) {
  const nn::Tensor x = small_image();
  EXPECT_EQ(shifted(x, {.dx = 0.4f}, nn::FillMode::reflect, nn::Interpolation::nearest), values(x));
  EXPECT_EQ(shifted(x, {.dx = 0.6f}, nn::FillMode::reflect, nn::Interpolation::nearest),
            shifted(x, {.dx = 1}, nn::FillMode::reflect));
}

// <T x, v> = <x, T^T v> for every x and v when T^T is T's adjoint.
TEST(RandomTranslation, TheAdjointIsTheTranspose) {
  const nn::Tensor x = random_tensor({3, 7, 6, 2}, 11), v = random_tensor({3, 7, 6, 2}, 12);
  const std::vector<nn::Translation> shifts = {{.dx = 1.3f, .dy = -0.7f}, {.dx = -2.6f, .dy = 2.2f}, {.dx = 0.5f, .dy = 0}};
  const auto dot = [](const nn::Tensor& a, const nn::Tensor& b) {
    double sum = 0;
    for (std::size_t i = 0; i < a.size(); ++i) sum += static_cast<double>(a[i]) * b[i];
    return sum;
  };
  for (const nn::FillMode mode : {nn::FillMode::reflect, nn::FillMode::constant, nn::FillMode::nearest, nn::FillMode::wrap})
    for (const nn::Interpolation interpolation : {nn::Interpolation::bilinear, nn::Interpolation::nearest}) {
      nn::Tensor tx, tv;
      nn::translate_images(x, shifts, mode, interpolation, 0.0f, tx);  // fill 0: T is linear
      nn::translate_images_adjoint(v, shifts, mode, interpolation, tv);
      EXPECT_NEAR(dot(tx, v), dot(x, tv), 1e-4) << static_cast<int>(mode) << " " << static_cast<int>(interpolation);
    }
  // By hand: one pixel right with a constant border sends each gradient one pixel left; column 3 gets none.
  const nn::Tensor g = small_image();
  nn::Tensor dx;
  const nn::Translation right[] = {{.dx = 1}};
  nn::translate_images_adjoint(g, right, nn::FillMode::constant, nn::Interpolation::bilinear, dx);
  EXPECT_EQ(values(dx), (std::vector<float>{2, 3, 4, 0, 12, 13, 14, 0, 22, 23, 24, 0}));
  // Reflect: column 0 was read twice (by output columns 0 and 1).
  nn::translate_images_adjoint(g, right, nn::FillMode::reflect, nn::Interpolation::bilinear, dx);
  EXPECT_EQ(values(dx), (std::vector<float>{3, 3, 4, 0, 23, 13, 14, 0, 43, 23, 24, 0}));
}

TEST(RandomTranslation, BackwardIsTheAdjointOfTheLastTrainingShift) {
  nn::RandomTranslation layer({.height_factor = 0.2, .width_factor = 0.2, .seed = 5});
  layer.training = true;
  const nn::Tensor x = random_tensor({4, 10, 10, 1}, 21), dy = random_tensor({4, 10, 10, 1}, 22);
  const nn::ConstView y = layer.forward(x);
  nn::Tensor expected;
  nn::translate_images_adjoint(dy, layer.last_translations(), nn::FillMode::reflect, nn::Interpolation::bilinear,
                               expected);
  EXPECT_EQ(values(layer.backward(x, y, dy, true).tensor()), values(expected));
  EXPECT_EQ(layer.backward(x, y, dy, false).size(), 0u);  // the first layer: no input gradient
}

// The generic check of dx against central differences, with call 0's shifts
// replayed on every call (Replayed, above).
TEST(RandomTranslation, GradientsMatchCentralDifferences) {
  for (const nn::FillMode mode : {nn::FillMode::reflect, nn::FillMode::constant, nn::FillMode::wrap}) {
    Replayed<nn::RandomTranslation> shift(nn::RandomTranslationOptions{.height_factor = 0.3, .width_factor = 0.3,
                                                                       .fill_mode = mode, .seed = 6, .fill_value = 0.5f});
    const nn::Tensor x = random_tensor({3, 7, 6, 2}, 23);
    EXPECT_EQ(testing_nn::layer_gradient_problems(shift, x, 5), "") << static_cast<int>(mode);
  }
}

TEST(RandomTranslation, FitShiftsTheTrainingBatchesAndEvaluateDoesNot) {
  nn::Sequential model({6, 6, 1});
  model.add(nn::RandomTranslation({.height_factor = 1.0 / 6, .width_factor = 1.0 / 6, .seed = 2}));
  model.add(nn::Flatten());
  model.add(nn::Dense({.units = 10, .input_dim = 36, .seed = 3}));
  model.compile(nn::make_optimizer("sgd", 0.01f));
  auto& shift = dynamic_cast<nn::RandomTranslation&>(*model.layers()[0]);
  const nn::Tensor x = random_tensor({16, 6, 6, 1}, 1, 0.0f, 1.0f);
  const nn::Tensor y = nn::one_hot(std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5});
  const nn::Tensor p1 = model.predict(x);
  const nn::Evaluation before = model.evaluate(x, y);
  EXPECT_EQ(shift.draws, 0u);  // inference: no shifts
  EXPECT_TRUE(same_bits(model.predict(x), p1));
  // A training step sees shifted images: its loss is not the inference loss.
  EXPECT_NE(model.compute_gradients(x, y), before.loss);
  EXPECT_EQ(shift.draws, 1u);
  model.fit(x, y, {.epochs = 2, .batch_size = 8, .seed = 1});
  EXPECT_EQ(shift.draws, 1u + 4u);  // two batches an epoch
  model.predict(x);
  EXPECT_FALSE(shift.training);  // predict runs in inference
  EXPECT_EQ(shift.draws, 5u);
}

TEST(RandomTranslation, ShiftsStayWithinTheFactorTimesTheSize) {
  const nn::RandomTranslation layer({.height_factor = 2.0 / 28, .width_factor = 3.0 / 28, .seed = 1});
  const std::vector<nn::Translation> shifts = layer.translations(0, 2000, 28, 28);
  float min_dx = 0, max_dx = 0, min_dy = 0, max_dy = 0;
  bool fractional = false;
  for (const nn::Translation& s : shifts) {
    EXPECT_LE(std::abs(s.dy), 2.0f + 1e-5f);
    EXPECT_LE(std::abs(s.dx), 3.0f + 1e-5f);
    min_dx = std::min(min_dx, s.dx), max_dx = std::max(max_dx, s.dx);
    min_dy = std::min(min_dy, s.dy), max_dy = std::max(max_dy, s.dy);
    fractional = fractional || s.dx != std::round(s.dx);
  }
  // Uniform over the whole range, both ways, fractions of a pixel included.
  EXPECT_LT(min_dy, -1.9f);
  EXPECT_GT(max_dy, 1.9f);
  EXPECT_LT(min_dx, -2.9f);
  EXPECT_GT(max_dx, 2.9f);
  EXPECT_TRUE(fractional);
  // A factor of 0 on one axis: no shift on it.
  const nn::RandomTranslation sideways({.width_factor = 0.1, .seed = 1});
  for (const nn::Translation& s : sideways.translations(0, 100, 28, 28)) EXPECT_EQ(s.dy, 0.0f);
}

TEST(RandomTranslation, TheShiftsOfCallKDependOnlyOnTheSeedAndK) {
  const nn::RandomTranslationOptions options{.height_factor = 0.1, .width_factor = 0.1, .seed = 42};
  nn::RandomTranslation a(options), b(options), other({.height_factor = 0.1, .width_factor = 0.1, .seed = 43});
  a.training = b.training = other.training = true;
  const nn::Tensor x = random_tensor({8, 28, 28, 1}, 31);
  const std::vector<float> a0 = values(a.forward(x).tensor());
  EXPECT_EQ(a.draws, 1u);
  EXPECT_EQ(values(b.forward(x).tensor()), a0);              // same seed, same call: same images
  EXPECT_NE(values(other.forward(x).tensor()), a0);          // another seed
  const std::vector<float> a1 = values(a.forward(x).tensor());
  EXPECT_NE(a1, a0);                                         // the next call draws new shifts
  EXPECT_EQ(a.draws, 2u);
  a.draws = 0;                                               // replay
  EXPECT_EQ(values(a.forward(x).tensor()), a0);
  EXPECT_EQ(values(a.forward(x).tensor()), a1);
  // translations(k) is what call k applied.
  const std::vector<nn::Translation> t1 = a.translations(1, 8, 28, 28);
  ASSERT_EQ(a.last_translations().size(), 8u);
  for (std::size_t n = 0; n < 8; ++n) {
    EXPECT_EQ(a.last_translations()[n].dx, t1[n].dx);
    EXPECT_EQ(a.last_translations()[n].dy, t1[n].dy);
  }
  // Every image gets its own shift.
  EXPECT_NE(t1[0].dx, t1[1].dx);
}

TEST(RandomTranslation, TheThreadCountDoesNotChangeTheResult) {
  nn::RandomTranslation layer({.height_factor = 2.0 / 28, .width_factor = 2.0 / 28, .seed = 9});
  layer.training = true;
  const nn::Tensor x = random_tensor({64, 28, 28, 1}, 41), dy = random_tensor({64, 28, 28, 1}, 42);
  std::vector<float> y_by_threads[2], dx_by_threads[2];
  for (std::size_t threads : {1u, 2u}) {
    nn::set_thread_count(threads);
    layer.draws = 0;
    const nn::ConstView y = layer.forward(x);
    y_by_threads[threads - 1] = values(y.tensor());
    dx_by_threads[threads - 1] = values(layer.backward(x, y, dy, true).tensor());
  }
  nn::set_thread_count(0);
  EXPECT_EQ(y_by_threads[0], y_by_threads[1]);
  EXPECT_EQ(dx_by_threads[0], dx_by_threads[1]);
}

TEST(RandomTranslation, ShapesNamesAndBadArguments) {
  nn::RandomTranslation layer({.height_factor = 0.1, .width_factor = 0.1});
  EXPECT_EQ(layer.type(), "RandomTranslation");
  EXPECT_EQ(layer.base_name(), "random_translation");
  EXPECT_EQ(layer.output_shape({32, 28, 28, 1}), nn::Shape({32, 28, 28, 1}));
  EXPECT_EQ(layer.param_count(), 0u);
  EXPECT_THAT(error_of([&] { layer.output_shape({32, 784}); }), HasSubstr("(N, H, W, C)"));
  EXPECT_THAT(error_of([] { nn::RandomTranslation({.height_factor = 1.5}); }), HasSubstr("height_factor"));
  EXPECT_THAT(error_of([] { nn::RandomTranslation({.width_factor = std::nan("")}); }), HasSubstr("width_factor"));
  nn::Tensor y;
  const nn::Translation one[] = {{}};
  EXPECT_THAT(error_of([&] { nn::translate_images(nn::Tensor({2, 4, 4, 1}), one, nn::FillMode::reflect,
                                                  nn::Interpolation::bilinear, 0.0f, y); }),
              HasSubstr("1 shifts for a batch of 2"));

  nn::Sequential model({28, 28, 1});
  model.add(nn::RandomTranslation({.height_factor = 2.0 / 28, .width_factor = 2.0 / 28, .seed = 1}));
  model.add(nn::Flatten());
  // tf.keras 2.x's summary cuts the name column at 28 characters.
  EXPECT_THAT(model.summary(), HasSubstr("random_translation (RandomTr (None, 28, 28, 1)         0"));
}

}  // namespace

// ---- The chapter's executable ---------------------------------------------------

namespace {

TEST(Ch12Beyond, AnUnknownStepIsOneClearError) {
  const auto run = testing_nn::run_program("ch12-beyond", {"--step", "fastest", "--seed", "1"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_THAT(run.output, HasSubstr("--step 'fastest' is not a step; the steps are: sgd, momentum, convnet, augment, "
                                    "schedule, best"));
}

TEST(Ch12Beyond, TheBestStepBuildsTheShiftsAndTheScheduleAndTrains) {
  testing_nn::TempDir dir;
  const auto run = testing_nn::run_program(
      "ch12-beyond", {"--step", "best", "--seed", "1", "--epochs", "2", "--max-steps", "3", "--plots", dir.path().string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("random_translation (RandomTr (None, 28, 28, 1)         0\n"));
  // The cosine decays over every batch of the two epochs: 2 * ceil(54000 / 128) = 844.
  EXPECT_THAT(run.output, HasSubstr("learning_rate=CosineDecay(initial_learning_rate=0.002, decay_steps=844)"));
  EXPECT_THAT(run.output, HasSubstr("result step=best seed=1 epochs=1 batches=3 "));
}

// --probabilities, as ch11-predict's: the trained model's model.predict on
// the test set as .npy, and the line with model.evaluate's loss and accuracy
// that tools/keras-reference/check-weights.mjs reads.
TEST(Ch12Beyond, ProbabilitiesWritesTheTrainedModelsTestSetPredictions) {
  testing_nn::TempDir dir;
  const auto run = testing_nn::run_program(
      "ch12-beyond", {"--step", "sgd", "--seed", "1", "--epochs", "1", "--max-steps", "3", "--save",
                      (dir / "weights").string(), "--probabilities", (dir / "p.npy").string(), "--plots",
                      dir.path().string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nn::Tensor p = nn::load_npy(dir / "p.npy");
  const auto& m = testing_nn::real_mnist();
  const nn::Tensor x = nn::images_to_tensor(m.x_test), y = nn::one_hot(m.y_test.data);
  ASSERT_EQ(p.shape(), (nn::Shape{x.dim(0), 10}));
  nn::Sequential model = nn::make_mnist_model(0);  // --step sgd trains the course's model
  model.load(dir / "weights");
  EXPECT_TRUE(testing_nn::all_close(p, model.predict(x), 1e-6, 0));
  const nn::Evaluation e = model.evaluate(x, y, 128);  // the batch ch12-beyond evaluates with
  EXPECT_THAT(run.output, HasSubstr(fmt::format("test set: loss {:.6f} accuracy {:.6f}", e.loss, e.accuracy)));
  EXPECT_THAT(run.output, HasSubstr("Wrote the probabilities (10000, 10) to " + (dir / "p.npy").string()));
}

TEST(Ch12Beyond, TheLadderTableAveragesTheRunsOfEachStepInLadderOrder) {
  testing_nn::TempDir dir;
  nn::write_file_atomic(dir / "results.txt",
                        "ladder: --step convnet --seed 1\n"
                        "result step=convnet seed=1 epochs=15 batches=6330 train_seconds=90.00 test_accuracy=0.9910 test_loss=0.03\n"
                        "result step=convnet seed=2 epochs=15 batches=6330 train_seconds=100.00 test_accuracy=0.9920 test_loss=0.03\n"
                        "result step=sgd seed=1 epochs=10 batches=18750 train_seconds=19.00 test_accuracy=0.9761 test_loss=0.07\n");
  const auto run = testing_nn::run_program("ch12-beyond",
                                           {"--ladder", (dir / "results.txt").string(), "--plots", dir.path().string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const auto sgd = run.output.find("| `--step sgd`: course model, SGD | **97.61%** (97.61–97.61) | 1 | 19 s |");
  const auto convnet = run.output.find("| `--step convnet`: keras.io convnet | **99.15%** (99.10–99.20) | 2 | 95 s |");
  ASSERT_NE(sgd, std::string::npos) << run.output;
  ASSERT_NE(convnet, std::string::npos) << run.output;
  EXPECT_LT(sgd, convnet) << "the ladder's order, not the file's";
  EXPECT_TRUE(std::filesystem::exists(dir / "12-ladder.png"));

  nn::write_file_atomic(dir / "bad.txt", "result step=convnet seed=1 train_seconds=abc test_accuracy=0.99\n");
  const auto bad = testing_nn::run_program("ch12-beyond", {"--ladder", (dir / "bad.txt").string(), "--plots",
                                                           dir.path().string()});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.output, HasSubstr("bad.txt:1: not a result line of ch12-beyond"));
}

// The ladder figure names each rung by a label beside its mean; rungs that
// train about as long (the three 15-epoch convnet rungs, 54 s each) would
// print their labels on top of each other, so nn::plot::spread_labels moves
// them apart. Expected positions worked out by hand.
TEST(Ch12Beyond, LadderLabelsAreSpreadApartInTheirOrderAndOthersStayPut) {
  // The committed ladder's means: convnet 99.15, augment 99.29, schedule
  // 99.21 overlap at a gap of 0.1; sgd 97.67 and best 99.51 do not. The three
  // become one group centred on their mean, 297.65 / 3 = 99.21667.
  const std::vector<double> placed = nn::plot::spread_labels({99.15, 99.29, 99.21, 97.67, 99.51}, 0.1);
  ASSERT_EQ(placed.size(), 5u);
  EXPECT_NEAR(placed[0], 99.11667, 1e-5);
  EXPECT_NEAR(placed[2], 99.21667, 1e-5);
  EXPECT_NEAR(placed[1], 99.31667, 1e-5);
  EXPECT_EQ(placed[3], 97.67) << "a label that overlaps nothing stays where it was";
  EXPECT_EQ(placed[4], 99.51);

  // A merged group that reaches down into the one below merges with it too:
  // 0.12 and 0.2 first, then with 0 (their group's low end is 0.073, closer
  // than 0.1 to 0), then the last 0.2: five labels 0.1 apart around 0.72 / 5.
  const std::vector<double> cascade = nn::plot::spread_labels({0.2, 0.0, 0.12, 0.2, 0.2}, 0.1);
  EXPECT_NEAR(cascade[1], -0.056, 1e-9);
  EXPECT_NEAR(cascade[2], 0.044, 1e-9);
  // The three 0.2s keep their order among themselves (a stable sort): 0, 3, 4.
  EXPECT_NEAR(cascade[0], 0.144, 1e-9);
  EXPECT_NEAR(cascade[3], 0.244, 1e-9);
  EXPECT_NEAR(cascade[4], 0.344, 1e-9);

  EXPECT_TRUE(nn::plot::spread_labels({}, 1.0).empty());
  EXPECT_THAT(error_of([] { nn::plot::spread_labels({1.0, 2.0}, 0.0); }), HasSubstr("the gap 0 is not a positive"));
  EXPECT_THAT(error_of([] { nn::plot::spread_labels({1.0, std::nan("")}, 0.1); }),
              HasSubstr("the position nan is not finite"));
}

}  // namespace

// ---- BatchNormalization: the kernels -------------------------------------------

namespace {

// x: rows x channels of doubles in [-2, 3), shifted per channel so that the
// channels have different means.
std::vector<double> bn_input(std::size_t rows, std::size_t channels, std::uint64_t seed) {
  std::vector<double> x = testing_nn::random_doubles(rows * channels, seed, -2.0, 3.0);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] += static_cast<double>(i % channels);
  return x;
}

TEST(BatchNormKernels, TrainingForwardNormalizesEachChannelWithTheBiasedBatchVariance) {
  const std::size_t rows = 24, channels = 3;
  const std::vector<double> x = bn_input(rows, channels, 1);
  const std::vector<double> gamma{1.5, -0.5, 2.0}, beta{0.25, 1.0, -3.0};
  std::vector<double> y(x.size()), mean(channels), variance(channels);
  nn::batch_norm_forward_training(rows, channels, x.data(), gamma.data(), beta.data(), 1e-3, y.data(), mean.data(),
                                  variance.data());
  for (std::size_t c = 0; c < channels; ++c) {
    double m = 0, v = 0;
    for (std::size_t r = 0; r < rows; ++r) m += x[r * channels + c];
    m /= rows;
    for (std::size_t r = 0; r < rows; ++r) v += (x[r * channels + c] - m) * (x[r * channels + c] - m);
    v /= rows;  // biased: Keras 3's ops.moments
    EXPECT_NEAR(mean[c], m, 1e-12);
    EXPECT_NEAR(variance[c], v, 1e-12);
    for (std::size_t r = 0; r < rows; ++r)
      EXPECT_NEAR(y[r * channels + c], gamma[c] * (x[r * channels + c] - m) / std::sqrt(v + 1e-3) + beta[c], 1e-12);
  }
}

TEST(BatchNormKernels, InferenceUsesTheGivenStatistics) {
  // One row by hand: (x - mean) / sqrt(var + eps) * gamma + beta.
  const std::vector<float> x{1.0f, 4.0f}, gamma{2.0f, 1.0f}, beta{0.5f, -1.0f}, mean{0.0f, 2.0f},
      variance{1.0f, 3.999f};
  std::vector<float> y(2);
  nn::batch_norm_forward_inference<float>(1, 2, x.data(), gamma.data(), beta.data(), mean.data(), variance.data(),
                                          1e-3, y.data());
  EXPECT_NEAR(y[0], 2.0 / std::sqrt(1.001) + 0.5, 1e-6);
  EXPECT_NEAR(y[1], 2.0 / 2.0 - 1.0, 1e-6);
}

TEST(BatchNormKernels, MovingAverageKeepsMomentumOfTheOldValue) {
  const std::vector<double> mean{1.0, -2.0}, variance{4.0, 0.5};
  std::vector<double> moving_mean{0.0, 0.0}, moving_variance{1.0, 1.0};
  nn::batch_norm_update_moving(2, mean.data(), variance.data(), 0.99, moving_mean.data(), moving_variance.data());
  EXPECT_NEAR(moving_mean[0], 0.01, 1e-15);
  EXPECT_NEAR(moving_mean[1], -0.02, 1e-15);
  EXPECT_NEAR(moving_variance[0], 0.99 + 0.04, 1e-15);
  EXPECT_NEAR(moving_variance[1], 0.99 + 0.005, 1e-15);
  nn::batch_norm_update_moving(2, mean.data(), variance.data(), 0.99, moving_mean.data(), moving_variance.data());
  EXPECT_NEAR(moving_mean[0], 0.01 * 0.99 + 0.01, 1e-15);
}

// dx, dgamma and dbeta against central differences of L = sum(r * y), all in
// double. The layer is smooth (no kinks), so the central difference's error
// is O(h^2) times the third derivative: with h = 1e-4, about 1e-8 of the
// gradients, far under the 1e-6 asked.
TEST(BatchNormKernels, BackwardMatchesCentralDifferences) {
  const std::size_t rows = 12, channels = 3;
  std::vector<double> x = bn_input(rows, channels, 2);
  std::vector<double> gamma{1.5, -0.5, 2.0}, beta{0.25, 1.0, -3.0};
  const std::vector<double> r = testing_nn::random_doubles(x.size(), 3);
  auto loss = [&] {
    std::vector<double> y(x.size()), mean(channels), variance(channels);
    nn::batch_norm_forward_training(rows, channels, x.data(), gamma.data(), beta.data(), 1e-3, y.data(), mean.data(),
                                    variance.data());
    double l = 0;
    for (std::size_t i = 0; i < y.size(); ++i) l += r[i] * y[i];
    return l;
  };
  std::vector<double> y(x.size()), mean(channels), variance(channels), dx(x.size()), dgamma(channels), dbeta(channels);
  nn::batch_norm_forward_training(rows, channels, x.data(), gamma.data(), beta.data(), 1e-3, y.data(), mean.data(),
                                  variance.data());
  nn::batch_norm_backward(rows, channels, x.data(), gamma.data(), mean.data(), variance.data(), 1e-3, r.data(),
                          dx.data(), dgamma.data(), dbeta.data());
  const auto close = [](const std::vector<double>& analytic, const std::vector<double>& numeric, const char* what) {
    double largest = 0, worst = 0;
    for (std::size_t i = 0; i < analytic.size(); ++i) {
      largest = std::max(largest, std::abs(numeric[i]));
      worst = std::max(worst, std::abs(analytic[i] - numeric[i]));
    }
    EXPECT_GT(largest, 0.1) << what;
    EXPECT_LT(worst, 1e-6 * largest) << what;
  };
  close(dx, nn::central_differences(x, loss, 1e-4), "dx");
  close(dgamma, nn::central_differences(gamma, loss, 1e-4), "dgamma");
  close(dbeta, nn::central_differences(beta, loss, 1e-4), "dbeta");
  // The input gradient of a channel sums to 0: shifting every x of a channel
  // by the same amount shifts its mean too and leaves y unchanged.
  for (std::size_t c = 0; c < channels; ++c) {
    double s = 0;
    for (std::size_t i = c; i < dx.size(); i += channels) s += dx[i];
    EXPECT_NEAR(s, 0.0, 1e-12);
  }
}

// The float instantiation (the layer's kernels) against the double one, on a
// convolution-sized batch (8 x 26 x 26 rows): the sums are taken in double in
// both, so what is left is float rounding of x, y and dx, a few 1e-7.
TEST(BatchNormKernels, FloatMatchesTheDoubleReference) {
  const std::size_t rows = 8 * 26 * 26, channels = 5;
  const nn::Tensor xf = testing_nn::random_tensor({rows, channels}, 7, -1.0f, 4.0f);
  const nn::Tensor dyf = testing_nn::random_tensor({rows, channels}, 8);
  const std::vector<float> gamma{1.0f, 0.5f, -2.0f, 1.5f, 0.1f}, beta{0.0f, 1.0f, -1.0f, 0.5f, 2.0f};
  const std::vector<double> xd = nn::as_double(xf), dyd = nn::as_double(dyf), gd(gamma.begin(), gamma.end()),
                            bd(beta.begin(), beta.end());
  std::vector<float> yf(rows * channels), mf(channels), vf(channels), dxf(rows * channels), dgf(channels), dbf(channels);
  std::vector<double> yd(rows * channels), md(channels), vd(channels), dxd(rows * channels), dgd(channels), dbd(channels);
  nn::batch_norm_forward_training(rows, channels, xf.data(), gamma.data(), beta.data(), 1e-3, yf.data(), mf.data(),
                                  vf.data());
  nn::batch_norm_forward_training(rows, channels, xd.data(), gd.data(), bd.data(), 1e-3, yd.data(), md.data(), vd.data());
  nn::batch_norm_backward(rows, channels, xf.data(), gamma.data(), mf.data(), vf.data(), 1e-3, dyf.data(), dxf.data(),
                          dgf.data(), dbf.data());
  nn::batch_norm_backward(rows, channels, xd.data(), gd.data(), md.data(), vd.data(), 1e-3, dyd.data(), dxd.data(),
                          dgd.data(), dbd.data());
  for (std::size_t i = 0; i < yf.size(); ++i) {
    ASSERT_NEAR(yf[i], yd[i], 2e-6 * (1 + std::abs(yd[i]))) << i;
    ASSERT_NEAR(dxf[i], dxd[i], 2e-6 * (1 + std::abs(dxd[i]))) << i;
  }
  for (std::size_t c = 0; c < channels; ++c) {
    EXPECT_NEAR(vf[c], vd[c], 1e-6 * vd[c]);
    EXPECT_NEAR(dgf[c], dgd[c], 1e-5 * (1 + std::abs(dgd[c])));
    EXPECT_NEAR(dbf[c], dbd[c], 1e-5 * (1 + std::abs(dbd[c])));
  }
}

}  // namespace

// ---- BatchNormalization: the layer -----------------------------------------------

namespace {

TEST(BatchNormalizationLayer, BuildsFromTheInputWithKerasNamesAndInitialValues) {
  nn::BatchNormalization bn;
  EXPECT_FALSE(bn.built());
  bn.training = false;
  const nn::Tensor x = testing_nn::random_tensor({2, 3, 3, 5}, 1);
  const nn::ConstView y = bn.forward(x);
  ASSERT_TRUE(bn.built());
  EXPECT_EQ(bn.type(), "BatchNormalization");
  EXPECT_EQ(bn.base_name(), "batch_normalization");
  std::vector<std::string> names;
  for (nn::Parameter* p : bn.parameters()) names.push_back(p->name);
  EXPECT_EQ(names, (std::vector<std::string>{"gamma", "beta", "moving_mean", "moving_variance"}));
  EXPECT_TRUE(bn.gamma.trainable && bn.beta.trainable);
  EXPECT_FALSE(bn.moving_mean.trainable || bn.moving_variance.trainable);
  EXPECT_EQ(bn.param_count(), 20u);  // 4 x C, as Keras's Param # (two of them not trainable)
  // Inference with the initial moving statistics (0, 1): y = x / sqrt(1 + 0.001).
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], x[i] / std::sqrt(1.001), 1e-6) << i;
  EXPECT_THAT(error_of([&] { bn.forward(testing_nn::random_tensor({2, 3, 3, 4}, 1)); }),
              HasSubstr("has 4 channels, the layer was built for 5"));
  EXPECT_THAT(error_of([] { nn::BatchNormalization({.momentum = 1.5}); }), HasSubstr("momentum 1.5"));
}

TEST(BatchNormalizationLayer, TrainingMovesTheMovingStatisticsAndInferenceLeavesThem) {
  nn::BatchNormalization bn({.channels = 3});
  const nn::Tensor x = testing_nn::random_tensor({8, 4, 3}, 2, 1.0f, 5.0f);  // means near 3, variances near 4/3
  bn.training = true;
  bn.forward(x);
  // Per channel, the batch statistics, then one step of the moving average.
  for (std::size_t c = 0; c < 3; ++c) {
    double m = 0, v = 0;
    for (std::size_t i = c; i < x.size(); i += 3) m += x[i];
    m /= 32;
    for (std::size_t i = c; i < x.size(); i += 3) v += (x[i] - m) * (x[i] - m);
    v /= 32;
    EXPECT_NEAR(bn.moving_mean.value[c], 0.01 * m, 1e-6);
    EXPECT_NEAR(bn.moving_variance.value[c], 0.99 + 0.01 * v, 1e-6);
  }
  const nn::Tensor mean_after = bn.moving_mean.value, variance_after = bn.moving_variance.value;
  bn.training = false;
  bn.forward(x);
  EXPECT_TRUE(same_bits(bn.moving_mean.value, mean_after));
  EXPECT_TRUE(same_bits(bn.moving_variance.value, variance_after));
  EXPECT_THAT(error_of([&] { bn.backward(x, x, x); }), HasSubstr("backward needs a training forward"));
}

TEST(BatchNormalizationLayer, GradientsMatchCentralDifferences) {
  nn::BatchNormalization bn({.channels = 5});
  bn.training = true;
  // Different scales per channel through gamma and beta, so that the check
  // sees more than the initial (1, 0).
  for (std::size_t c = 0; c < 5; ++c) bn.gamma.value[c] = 0.5f + 0.3f * c, bn.beta.value[c] = 0.1f * c;
  const nn::Tensor x = testing_nn::random_tensor({4, 3, 3, 5}, 11);
  // Steps of 3e-3, not the default 1e-2: the layer is smooth but curved, and
  // over 1e-2 the two one-sided slopes differ by more than the kink test
  // allows (110 of 180 entries of dx flagged); 3e-3 flags none.
  EXPECT_EQ(testing_nn::layer_gradient_problems(bn, x, 12, 1e-3, 3e-3), "");
}

// update_statistics: training-mode forward passes, no update. With one batch
// repeated k times the moving statistics become 0.99^k of their start plus
// (1 - 0.99^k) of the batch's; no trainable weight changes, bit for bit.
TEST(BatchNormalizationLayer, UpdateStatisticsMovesOnlyTheMovingStatistics) {
  nn::Sequential model({6, 6, 1});
  model.add(nn::Flatten());
  model.add(nn::BatchNormalization());  // 36 channels: the pixels themselves
  model.add(nn::Dense({.units = 10, .seed = 7}));
  const nn::Tensor one = testing_nn::random_tensor({16, 6, 6, 1}, 8, 0.0f, 1.0f);
  nn::Tensor x({16 * 100 + 5, 6, 6, 1});  // the same 16 images 100 times, then 5 (not a whole batch)
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = one[i % one.size()];
  std::vector<nn::Tensor> before;
  for (nn::Parameter* p : model.parameters()) before.push_back(p->value);
  EXPECT_THAT(error_of([&] { model.update_statistics(x, 0); }), HasSubstr("batch_size must be at least 1"));
  model.update_statistics(x, 16);
  std::size_t i = 0;
  for (nn::Parameter* p : model.parameters()) {
    if (p->trainable) {
      EXPECT_TRUE(same_bits(p->value, before[i])) << p->name;
    }
    ++i;
  }
  auto& bn = dynamic_cast<nn::BatchNormalization&>(*model.layers()[1]);
  const double kept = std::pow(0.99, 100);  // of the start: mean 0, variance 1
  for (std::size_t c = 0; c < 36; ++c) {
    double m = 0, v = 0;
    for (std::size_t n = 0; n < 16; ++n) m += one[n * 36 + c];
    m /= 16;
    for (std::size_t n = 0; n < 16; ++n) v += (one[n * 36 + c] - m) * (one[n * 36 + c] - m);
    v /= 16;  // biased, as Keras
    // 100 float updates of a value near 0.5: a few ulps each.
    EXPECT_NEAR(bn.moving_mean.value[c], (1 - kept) * m, 1e-5) << c;
    EXPECT_NEAR(bn.moving_variance.value[c], kept + (1 - kept) * v, 1e-5) << c;
  }
  const nn::Tensor mean = bn.moving_mean.value;
  model.update_statistics(x.batch_view(0, 15), 16);  // no whole batch: nothing runs
  EXPECT_TRUE(same_bits(bn.moving_mean.value, mean));
}

TEST(BatchNormalizationLayer, InASequentialModelItTrainsSavesAndLoads) {
  auto make = [](std::uint64_t seed) {
    nn::Sequential model({6, 6, 1});
    model.add(nn::Flatten());
    model.add(nn::Dense({.units = 20, .input_dim = 36, .activation = nn::Activation::relu, .seed = seed}));
    model.add(nn::BatchNormalization());
    model.add(nn::Dense({.units = 10, .input_dim = 20, .seed = seed + 1}));
    model.compile(nn::make_optimizer("sgd", 0.1f, 0.9f));
    return model;
  };
  nn::Sequential model = make(3);
  EXPECT_EQ(model.layers()[2]->name, "batch_normalization");
  const nn::Tensor x = testing_nn::random_tensor({16, 6, 6, 1}, 4, 0.0f, 1.0f);
  std::vector<int> labels(16);
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(i % 10);
  const nn::Tensor y = nn::one_hot(labels);
  const double first = model.train_on_batch(x, y);
  double last = first;
  for (int step = 0; step < 30; ++step) last = model.train_on_batch(x, y);
  EXPECT_LT(last, 0.5 * first);
  auto& bn = dynamic_cast<nn::BatchNormalization&>(*model.layers()[2]);
  EXPECT_EQ(model.param_count(), 36u * 20 + 20 + 4 * 20 + 20 * 10 + 10);
  EXPECT_THAT(model.summary(), HasSubstr("Non-trainable params: 40\n"));  // moving_mean and moving_variance
  // 31 steps moved gamma and beta (the optimizer) and the moving statistics
  // (the forward passes), which are not left at their initial values.
  float moved_gamma = 0, moved_mean = 0;
  for (std::size_t c = 0; c < 20; ++c)
    moved_gamma = std::max(moved_gamma, std::abs(bn.gamma.value[c] - 1.0f)),
    moved_mean = std::max(moved_mean, std::abs(bn.moving_mean.value[c]));
  EXPECT_GT(moved_gamma, 1e-3f);
  EXPECT_GT(moved_mean, 1e-3f);
  // predict runs in inference: the same answer twice, and the moving statistics stay.
  const nn::Tensor mean = bn.moving_mean.value;
  const nn::Tensor p = model.predict(x);
  EXPECT_TRUE(same_bits(model.predict(x), p));
  EXPECT_TRUE(same_bits(bn.moving_mean.value, mean));
  // The moving statistics are saved and loaded with the weights.
  testing_nn::TempDir dir;
  model.save(dir.path());
  EXPECT_TRUE(std::filesystem::exists(dir / "batch_normalization.moving_variance.npy"));
  nn::Sequential fresh = make(9);
  fresh.predict(x);  // builds its BatchNormalization
  fresh.load(dir.path());
  EXPECT_TRUE(same_bits(fresh.predict(x), p));
}

}  // namespace
