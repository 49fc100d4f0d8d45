// Chapter 12: beyond the walkthrough's model. Learning-rate schedules
// (nn/schedules.hpp) and the RandomTranslation augmentation layer
// (nn/layers/random_translation.hpp).
//
// The expected schedule values are Keras 3's documented formulas
// (keras/src/optimizers/schedules/learning_rate_schedule.py) worked out by
// hand in the comments, not computed by the library.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "nn/error.hpp"
#include "nn/model.hpp"
#include "nn/optimizer.hpp"
#include "nn/parallel.hpp"
#include "nn/schedules.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;
using testing_nn::error_of;

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

}  // namespace
