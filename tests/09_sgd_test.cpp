// Chapter 09: the optimizers, one step against hand-computed values, and
// backpropagation through the whole network.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>

#include "nn/denormals.hpp"
#include "nn/error.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"
#include "nn/parallel.hpp"
#include "gradcheck.hpp"
#include "testing.hpp"

namespace {

using testing_nn::all_close;

// Steps `opt` `steps` times on w = [1, -2] with the constant gradient g = [0.5, 0.1].
std::vector<float> run(nn::Optimizer& opt, int steps) {
  nn::Parameter w("w", nn::Tensor({2}, std::vector<float>{1.0f, -2.0f}));
  w.grad = nn::Tensor({2}, std::vector<float>{0.5f, 0.1f});
  nn::Parameter* params[] = {&w};
  for (int i = 0; i < steps; ++i) opt.step(params);
  return {w.value[0], w.value[1]};
}

TEST(Optimizer, SGDIsWMinusLrG) {
  nn::SGD sgd({.learning_rate = 0.1f});
  // 1 - 0.1 * 0.5 = 0.95;  -2 - 0.1 * 0.1 = -2.01
  EXPECT_THAT(run(sgd, 1), ::testing::ElementsAre(::testing::FloatEq(0.95f), ::testing::FloatEq(-2.01f)));
}

TEST(Optimizer, MomentumTwoSteps) {
  nn::SGD sgd({.learning_rate = 0.1f, .momentum = 0.9f});
  // v1 = -0.1 g = (-0.05, -0.01), w1 = (0.95, -2.01)
  // v2 = 0.9 v1 - 0.1 g = (-0.095, -0.019), w2 = (0.855, -2.029)
  EXPECT_THAT(run(sgd, 2), ::testing::ElementsAre(::testing::FloatNear(0.855f, 1e-6f), ::testing::FloatNear(-2.029f, 1e-6f)));
}

TEST(Optimizer, NesterovOneStep) {
  nn::SGD sgd({.learning_rate = 0.1f, .momentum = 0.9f, .nesterov = true});
  // v1 = (-0.05, -0.01); w += 0.9 v1 - 0.1 g = (-0.095, -0.019) -> (0.905, -2.019)
  EXPECT_THAT(run(sgd, 1), ::testing::ElementsAre(::testing::FloatNear(0.905f, 1e-6f), ::testing::FloatNear(-2.019f, 1e-6f)));
}

TEST(Optimizer, RMSpropOneStep) {
  nn::RMSprop rms({.learning_rate = 0.01f});
  // s = 0.1 g^2 = (0.025, 0.001); step = 0.01 g / sqrt(s + 1e-7): 0.0316227 and 0.0316212
  EXPECT_THAT(run(rms, 1),
              ::testing::ElementsAre(::testing::FloatNear(0.9683773f, 1e-6f), ::testing::FloatNear(-2.0316212f, 1e-6f)));
}

// Keras puts epsilon inside the square root: w -= lr g / sqrt(s + eps). A
// large epsilon makes the difference with sqrt(s) + eps visible.
TEST(Optimizer, RMSpropEpsilonIsInsideTheSquareRoot) {
  nn::RMSprop rms({.learning_rate = 0.01f, .epsilon = 0.1f});
  // s = 0.1 g^2 = (0.025, 0.001); step = 0.01 g / sqrt(s + 0.1) = (0.0141421, 0.0031466)
  // (epsilon outside would give 0.0193713 and 0.0075975)
  EXPECT_THAT(run(rms, 1),
              ::testing::ElementsAre(::testing::FloatNear(0.9858579f, 1e-6f), ::testing::FloatNear(-2.0031466f, 1e-6f)));
}

TEST(Optimizer, AdamFirstStepMovesEachWeightByLr) {
  nn::Adam adam;  // Keras defaults: lr 1e-3, beta_1 0.9, beta_2 0.999, epsilon 1e-7
  // t = 1: m = 0.1 g, s = 0.001 g^2; step = lr sqrt(0.001) / 0.1 * m / sqrt(s) = lr * sign(g).
  // Both gradients are positive, so both weights go down by 0.001.
  EXPECT_THAT(run(adam, 1), ::testing::ElementsAre(::testing::FloatNear(0.999f, 1e-6f), ::testing::FloatNear(-2.001f, 1e-6f)));
  EXPECT_EQ(adam.iterations(), 1u);
}

TEST(Optimizer, AdamSecondStepWithTheSameGradient) {
  nn::Adam adam({.learning_rate = 0.1f});
  // A constant gradient keeps m / sqrt(s) at sign(g) after bias correction: each step moves lr.
  EXPECT_THAT(run(adam, 2), ::testing::ElementsAre(::testing::FloatNear(0.8f, 1e-5f), ::testing::FloatNear(-2.2f, 1e-5f)));
}

// Keras 3 (keras/src/optimizers/adam.py, update_step) keeps beta_1 and
// beta_2 as Python floats: 1 - beta is taken in double and rounded once to
// float (0.1f, 0.001f), while beta^t is a float power of float(beta). So
// (1 - beta_1) / (1 - beta_1^1) is 0.1f / (1 - 0.9f) = 0.99999976 rather
// than 1, and sqrt((1 - beta_2^1) / (1 - beta_2)) is
// sqrt(0.000999987125 / 0.00100000005) = 0.99999356: with a constant gradient
// every early step is about 6.7e-6 shorter than lr. g = 1000 makes epsilon
// negligible (sqrt(s) = 31.6 at the first step). The expected values are
// Keras's float operations in Keras's order, evaluated once in Python with
// every result rounded to float32; computing 1.0f - 0.999f in float instead
// (the course before) gives exactly -1 and -100: 7.4e-4 away after 100 steps.
TEST(Optimizer, AdamRoundsOneMinusBetaAsKeras3) {
  nn::Adam adam({.learning_rate = 1.0f});
  nn::Parameter w("w", nn::Tensor({1}, 0.0f));
  w.grad = nn::Tensor({1}, 1000.0f);
  nn::Parameter* params[] = {&w};
  adam.step(params);
  EXPECT_FLOAT_EQ(w.value[0], -0.99999326f);
  for (int i = 1; i < 100; ++i) adam.step(params);
  EXPECT_NEAR(w.value[0], -99.99926f, 2e-5);
}

// RMSprop likewise: Keras's velocity is rho * s + (1 - rho) * square(g),
// with 1 - rho = 1 - 0.9 in double, rounded to 0.1f (1.0f - 0.9f would be
// 0.100000024f). With w = 0, g = 1, lr = 1 and epsilon 0 the first step is
// 1 / sqrt(0.1f) = 3.16227770 (rounded to float: its bits are checked), where
// 1 / sqrt(0.100000024f) rounds to 3.16227746.
TEST(Optimizer, RMSpropRoundsOneMinusRhoAsKeras3) {
  nn::RMSprop rms({.learning_rate = 1.0f, .epsilon = 0.0f});
  nn::Parameter w("w", nn::Tensor({1}, 0.0f));
  w.grad = nn::Tensor({1}, 1.0f);
  nn::Parameter* params[] = {&w};
  rms.step(params);
  EXPECT_EQ(w.value[0], -3.1622776985168457f);
  EXPECT_NE(w.value[0], -3.1622774600982666f);
}

// Twenty steps on eight weights with constant gradients from 1e-6 to 123, to
// the last bit of Keras 3's float operations in Keras's order (each result
// rounded to float: no fused multiply-add, as TensorFlow's separate kernels
// for multiply, subtract and add). The expected values were computed once in
// Python by those operations on float32-rounded numbers; the course before,
// with 1.0f - beta in float (and its products in another order), is off in 7
// of the 8 Adam weights and 6 of the 8 RMSprop weights.
TEST(Optimizer, AdamAndRMSpropTwentyStepsBitForBitAsKeras3) {
  const std::vector<float> g = {0.3f, -1.7f, 0.011f, 2.5e-4f, 7.0f, -0.05f, 1e-6f, 123.0f};
  const auto twenty_steps = [&](nn::Optimizer& opt) {
    nn::Parameter w("w", nn::Tensor({8}));
    w.grad = nn::Tensor({8}, std::vector<float>(g));
    nn::Parameter* params[] = {&w};
    for (int i = 0; i < 20; ++i) opt.step(params);
    return std::vector<float>(w.value.span().begin(), w.value.span().end());
  };
  nn::Adam adam;
  EXPECT_THAT(twenty_steps(adam), ::testing::ElementsAre(-0.019999776f, 0.0199998412f, -0.0199976675f, -0.0199041869f,
                                                         -0.0199998543f, 0.0199993756f, -0.00956665259f, -0.019999858f));
  nn::RMSprop rms;
  EXPECT_THAT(twenty_steps(rms), ::testing::ElementsAre(-0.0285693053f, 0.0285693575f, -0.0285339803f, -0.0135301184f,
                                                        -0.0285693593f, 0.0285676364f, -6.32453666e-05f, -0.0285693593f));
}

// The bias correction, and what happens without it. m and s start at 0, so
// after the first step m = (1 - b1) g = 0.1 g and s = (1 - b2) g^2 = 0.001 g^2:
// both are too small, s far more than m. Keras multiplies the step by
// sqrt(1 - b2^t) / (1 - b1^t) = sqrt(0.001) / 0.1 = 0.316 at t = 1, and the
// step is lr * m / sqrt(s) = lr * sign(g). Without the correction it is
// lr * 0.1 g / (sqrt(0.001) |g|) = lr * 0.1 / 0.0316 = 3.162 lr: uncorrected
// Adam's first step is three times too LONG, not too short, because the root
// of s's bias (sqrt(0.001)) is smaller than m's (0.1). With a constant
// gradient the ratio (1 - b1^t) / sqrt(1 - b2^t) grows to 6.57 at t = 12 before
// it falls back toward 1.
TEST(Optimizer, AdamWithoutBiasCorrectionTakesLongerFirstSteps) {
  // The size of step t on w[0] (g = 0.5 at every step): w after t - 1 steps minus w after t.
  const auto step_size = [](bool corrected, int t) {
    nn::Adam before({.bias_correction = corrected}), after({.bias_correction = corrected});
    return static_cast<double>(run(before, t - 1)[0]) - run(after, t)[0];
  };
  const double lr = 1e-3;
  // epsilon 1e-7 against sqrt(s) = 0.016 (g = 0.5): 6e-6 relative; w's float rounding (6e-8) bounds the rest.
  EXPECT_NEAR(step_size(true, 1), lr, 2e-8);
  EXPECT_NEAR(step_size(false, 1), lr * 0.1 / std::sqrt(0.001), 2e-8);  // 3.162 lr
  EXPECT_NEAR(step_size(true, 10), lr, 2e-8);
  EXPECT_NEAR(step_size(false, 10), lr * (1 - std::pow(0.9, 10)) / std::sqrt(1 - std::pow(0.999, 10)), 1e-7);  // 6.52 lr
  nn::Adam corrected, uncorrected({.bias_correction = false});
  EXPECT_EQ(corrected.describe(), "Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07)");
  EXPECT_EQ(uncorrected.describe(),
            "Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, bias_correction=False)");
}

// A step that fails validation changes nothing: not the weights, not the
// optimizer's state, not its step count. The next correct step works as if
// the bad one never happened.
TEST(Optimizer, AFailedStepChangesNothing) {
  for (const char* name : {"sgd", "adam", "rmsprop"}) {
    auto opt = nn::make_optimizer(name, 0.1f);
    nn::Parameter w("w", nn::Tensor({2}, std::vector<float>{1.0f, -2.0f}));
    const nn::Tensor good({2}, std::vector<float>{0.5f, 0.1f}), wrong({3});
    nn::Parameter* params[] = {&w};
    w.grad = wrong;
    EXPECT_THROW(opt->step(params), nn::Error) << name;
    EXPECT_EQ(opt->iterations(), 0u) << name;
    EXPECT_EQ(w.value[0], 1.0f) << name;
    w.grad = good;
    EXPECT_NO_THROW(opt->step(params)) << name;
    EXPECT_EQ(opt->iterations(), 1u) << name;
    EXPECT_LT(w.value[0], 1.0f) << name;
    // And a failure after a good step keeps the state too.
    w.grad = wrong;
    EXPECT_THROW(opt->step(params), nn::Error) << name;
    w.grad = good;
    EXPECT_NO_THROW(opt->step(params)) << name;
    EXPECT_EQ(opt->iterations(), 2u) << name;
  }
}

// The state (a velocity, Adam's averages) belongs to the parameter, not to
// its position in the list: two parameters stepped in either order, or with
// a third one added later, move exactly as each would alone.
TEST(Optimizer, StateIsKeptPerParameter) {
  for (const char* name : {"sgd", "adam", "rmsprop"}) {
    SCOPED_TRACE(name);
    const float momentum = std::string(name) == "sgd" ? 0.9f : 0.0f;
    auto alone_a = nn::make_optimizer(name, 0.1f, momentum), alone_b = nn::make_optimizer(name, 0.1f, momentum);
    auto together = nn::make_optimizer(name, 0.1f, momentum);
    nn::Parameter a("a", nn::Tensor({2}, std::vector<float>{1.0f, -2.0f}));
    nn::Parameter b("b", nn::Tensor({3}, std::vector<float>{0.5f, 0.25f, 4.0f}));
    a.grad = nn::Tensor({2}, std::vector<float>{0.5f, 0.1f});
    b.grad = nn::Tensor({3}, std::vector<float>{-1.0f, 2.0f, 0.3f});
    nn::Parameter a1 = a, b1 = b, a2 = a, b2 = b, c("c", nn::Tensor({1}, 7.0f));
    for (int step = 0; step < 3; ++step) {
      nn::Parameter* one_a[] = {&a1};
      nn::Parameter* one_b[] = {&b1};
      alone_a->step(one_a);
      alone_b->step(one_b);
      std::vector<nn::Parameter*> both = {&a2, &b2};
      if (step == 1) both = {&b2, &a2};      // the other order
      if (step == 2) both = {&c, &a2, &b2};  // a newcomer in front
      together->step(both);
    }
    for (std::size_t i = 0; i < 2; ++i) EXPECT_EQ(a1.value[i], a2.value[i]) << "a[" << i << "]";
    for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(b1.value[i], b2.value[i]) << "b[" << i << "]";
  }
}

// A parameter whose shape changed under a stateful optimizer is an error, not
// a read past the end of its old state.
TEST(Optimizer, AParameterThatChangedShapeIsAnError) {
  auto adam = nn::make_optimizer("adam", 0.1f);
  nn::Parameter w("w", nn::Tensor({2}, 1.0f));
  nn::Parameter* params[] = {&w};
  adam->step(params);
  w.value = nn::Tensor({5}, 1.0f);
  w.grad = nn::Tensor({5}, 1.0f);
  try {
    adam->step(params);
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("parameter w is (5,), but it was (2,)"));
  }
}

TEST(Optimizer, FactoryAndErrors) {
  EXPECT_EQ(nn::make_optimizer("sgd", 0.01f)->describe(), "SGD(learning_rate=0.01)");
  EXPECT_EQ(nn::make_optimizer("sgd", 0.01f, 0.9f)->describe(), "SGD(learning_rate=0.01, momentum=0.9)");
  EXPECT_EQ(nn::make_optimizer("adam", 0)->describe(), "Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07)");
  EXPECT_EQ(nn::make_optimizer("rmsprop", 0)->describe(), "RMSprop(learning_rate=0.001, rho=0.9, epsilon=1e-07)");
  EXPECT_THROW(nn::make_optimizer("adagrad", 0.01f), nn::Error);
  EXPECT_THROW(nn::make_optimizer("adam", 0.01f, 0.9f), nn::Error);
  EXPECT_EQ(nn::make_optimizer("sgd", 0.01f, 0.9f, true)->describe(),
            "SGD(learning_rate=0.01, momentum=0.9, nesterov=True)");
  EXPECT_THROW(nn::make_optimizer("sgd", 0.01f, 0.0f, true), nn::Error);
  EXPECT_THROW(nn::SGD({.learning_rate = 0.1f, .momentum = 1.0f}), nn::Error);
  nn::SGD sgd;
  nn::Parameter w("w", nn::Tensor({2}));
  w.grad = nn::Tensor({3});
  nn::Parameter* params[] = {&w};
  EXPECT_THROW(sgd.step(params), nn::Error);
}

// The course's model, whole, in double: its analytic gradient (the naive
// kernels' backward passes chained, lib/src/course/model_gradcheck.cpp) against central
// differences of its loss, over every weight of conv2d and dense_1, the
// dense bias, and 2000 random weights of the (5408, 100) dense kernel. Then
// the float model's compute_gradients, fused and not, against that gradient.
TEST(Backprop, WholeModelGradientsMatchCentralDifferencesInDouble) {
  const std::size_t n = 2;
  nn::Sequential model = nn::make_mnist_model(21);
  // Non-zero biases, so that no unit sits at a ReLU kink on a zero input.
  std::uint64_t seed = 30;
  for (auto& w : model.named_parameters())
    if (w.name.ends_with(".bias")) w.parameter->value = testing_nn::random_tensor(w.parameter->value.shape(), seed++, -0.1f, 0.1f);
  const nn::Tensor xf = testing_nn::random_tensor({n, 28, 28, 1}, 40, 0.0f, 1.0f);  // pixel-like
  const nn::Tensor yf = nn::one_hot(std::vector<int>{3, 8}, 10);
  const std::vector<double> x = testing_nn::as_double(xf), y = testing_nn::as_double(yf);
  testing_nn::DoubleModel net = testing_nn::DoubleModel::of(model, xf.shape());
  ASSERT_EQ(net.flat(), 5408u);

  // No kink within reach of a step: a step of eps moves a conv
  // pre-activation by at most eps (a pixel in [0, 1] times eps), so its
  // winner keeps winning while its lead is above eps, and a Dense(100) one by
  // at most its reach times eps; clear() asks for twice each. (The check
  // `ch09-sgd --gradcheck` runs.)
  const double eps = 1e-6;
  const nn::ModelGradientCheck check = nn::check_model_gradients(model, xf, yf, eps, 2000, 50);
  ASSERT_TRUE(check.margins.clear(eps)) << "a unit at a kink: other seeds";
  EXPECT_GE(check.margins.hidden_reach, 1.0);
  const auto weights = model.named_parameters();
  ASSERT_EQ(check.tensors.size(), 6u);
  for (const nn::TensorGradientCheck& t : check.tensors) {
    SCOPED_TRACE(t.name);
    EXPECT_TRUE(all_close(std::span<const double>(t.analytic), t.numeric, 1e-8, 1e-6));
    EXPECT_LT(t.max_relative_error(), 1e-4);
  }
  EXPECT_EQ(check.tensors[2].checked(), 2000u);  // a sample of the (5408, 100) kernel
  EXPECT_EQ(check.tensors[0].checked(), 288u);   // every entry of the others

  // A planted bug shows: dense's weight gradients with the wrong sign are off
  // by 200% where they are not zero; the other layers' are not affected.
  const nn::ModelGradientCheck broken = nn::check_model_gradients(model, xf, yf, eps, 200, 50, "dense");
  for (const nn::TensorGradientCheck& t : broken.tensors) {
    SCOPED_TRACE(t.name);
    if (t.name.starts_with("dense."))
      EXPECT_NEAR(t.max_relative_error(), 2.0, 1e-6);
    else
      EXPECT_LT(t.max_relative_error(), 1e-4);
  }
  EXPECT_THROW(nn::check_model_gradients(model, xf, yf, eps, 200, 50, "pool"), nn::Error);

  const auto analytic = net.gradients(x, y);
  // The float model on the same weights and batch. Its gradients are sums of
  // float products (off by up to ~6e-7 of the largest gradient here):
  // compared within 2e-5 of the tensor's largest gradient, or 1e-4 relative.
  const double loss_double = net.loss(x, y);
  for (bool fusion : {true, false}) {
    SCOPED_TRACE(fusion ? "fused" : "unfused");
    model.set_fusion(fusion);
    EXPECT_NEAR(model.compute_gradients(xf, yf), loss_double, 1e-5 * loss_double);
    const auto params = model.parameters();
    for (std::size_t t = 0; t < 6; ++t) {
      double largest = 0;
      for (double g : analytic[t]) largest = std::max(largest, std::abs(g));
      ASSERT_GT(largest, 0.0) << weights[t].name;
      EXPECT_TRUE(all_close(std::span<const double>(testing_nn::as_double(params[t]->grad)), analytic[t], 2e-5 * largest, 1e-4))
          << weights[t].name;
    }
  }
}

// `ch09-sgd --gradcheck`'s check, seed by seed: a right backward pass
// passes for every seed (seeds 8, 9, 15 and 16735544563634316263 once failed
// it: a dense.kernel entry whose gradient was nearly 0, judged against its
// own size), and a flipped sign in any one layer (--break) is caught, in that
// layer's two tensors and no other, for every seed.
TEST(Backprop, SeededCheckPassesForEverySeedAndCatchesAFlippedSignInEveryLayer) {
  std::vector<std::uint64_t> seeds;
  for (std::uint64_t s = 1; s <= 20; ++s) seeds.push_back(s);
  seeds.push_back(16735544563634316263ull);
  for (std::uint64_t seed : seeds) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    nn::SeededGradientCheck s = nn::seeded_gradient_check(seed);
    ASSERT_TRUE(s.check.margins.clear(1e-6)) << "no clear batch in " << s.draws << " draws";
    EXPECT_EQ(nn::wrong_tensors(s.check), std::vector<std::string>{});
    for (const nn::TensorGradientCheck& t : s.check.tensors) {
      EXPECT_LT(t.max_abs_error(), 1e-8) << t.name;  // the rounding of the loss over 2h, about 5e-10
      EXPECT_LT(t.max_relative_error(), 1e-5) << t.name;  // 10 times below the tolerance at least
    }
    // --break's planted bug (DoubleModel::broken) in each layer. The central
    // differences do not depend on it: only the backward pass runs again.
    nn::DoubleModel net = nn::DoubleModel::of(s.model, s.x.shape());
    const std::vector<double> x = nn::as_double(s.x), y = nn::as_double(s.y);
    for (std::string layer : {"conv2d", "dense", "dense_1"}) {
      SCOPED_TRACE("--break " + layer);
      net.broken = layer;
      const auto g = net.gradients(x, y);
      nn::ModelGradientCheck broken = s.check;
      for (std::size_t t = 0; t < 6; ++t) broken.tensors[t].analytic = nn::pick(g[t], broken.tensors[t].which);
      EXPECT_EQ(nn::wrong_tensors(broken), (std::vector<std::string>{layer + ".kernel", layer + ".bias"}));
      for (const nn::TensorGradientCheck& t : broken.tensors) {
        if (t.name.starts_with(layer + ".")) {
          EXPECT_NEAR(t.max_relative_error(), 2.0, 1e-6) << t.name;
        }
      }
    }
  }
}

// The error measure on the case that fooled the old one: an entry whose
// gradient is nearly 0 and off by rounding noise is judged against 1% of the
// tensor's largest gradient, not against its own size.
TEST(Backprop, TensorRelativeErrorJudgesNearZeroEntriesAgainstTheTensorsScale) {
  const std::vector<double> numeric = {0.08, -0.03, 2e-6, 0.0};
  const std::vector<double> analytic = {0.08 + 4e-10, -0.03, 2e-6 + 4e-10, 0.0};
  // Against its own size, the third entry is off by 2e-4; against 0.01 * 0.08, by 5e-7.
  EXPECT_NEAR(nn::relative_error(analytic[2], numeric[2]), 4e-10 / (2e-6 + 4e-10), 1e-15);
  EXPECT_NEAR(nn::tensor_relative_error(analytic, numeric, nn::kGradientFloor), 4e-10 / 8e-4, 1e-12);
  // A wrong entry of that size is still caught: off by itself, 2e-6 / 8e-4.
  const std::vector<double> wrong = {0.08, -0.03, 0.0, 0.0};
  EXPECT_NEAR(nn::tensor_relative_error(wrong, numeric, nn::kGradientFloor), 2.5e-3, 1e-12);
  // A flipped sign: exactly 2, from the largest entry.
  const std::vector<double> flipped = {-0.08, 0.03, -2e-6, 0.0};
  EXPECT_DOUBLE_EQ(nn::tensor_relative_error(flipped, numeric, nn::kGradientFloor), 2.0);
  EXPECT_EQ(nn::tensor_relative_error(std::vector<double>(3, 0.0), std::vector<double>(3, 0.0), 0.01), 0.0);
  EXPECT_THROW(nn::tensor_relative_error(analytic, std::vector<double>(3, 0.0), 0.01), nn::Error);
}

TEST(Backprop, LossDecreasesOver50StepsOnAFixedBatch) {
  const auto& m = testing_nn::real_mnist();
  nn::Tensor x = nn::slice_batch(nn::images_to_tensor(m.x_train), 0, 32);
  nn::Tensor y = nn::one_hot(std::span(m.y_train.data).first(32));
  nn::Sequential model = nn::make_mnist_model(3);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  const double first = model.train_on_batch(x, y);
  double last = first;
  for (int i = 1; i <= 50; ++i) {
    // Small steps of gradient descent on one fixed batch: every step lowers the loss.
    const double loss = model.train_on_batch(x, y);
    EXPECT_LT(loss, last) << "step " << i;
    last = loss;
  }
  EXPECT_NEAR(first, std::log(10.0), 0.1);  // an untrained network guesses uniformly
  EXPECT_LT(last, 0.85 * first) << "first " << first << ", after 50 steps " << last;
}

// ---- Updating during the backward pass -------------------------------------

// Every rule of nn/optimizer.hpp, as make_optimizer builds them.
std::vector<std::function<std::unique_ptr<nn::Optimizer>()>> every_rule() {
  return {[] { return nn::make_optimizer("sgd", 0.05f); },
          [] { return nn::make_optimizer("sgd", 0.05f, 0.9f); },
          [] { return nn::make_optimizer("sgd", 0.05f, 0.9f, true); },
          [] { return nn::make_optimizer("rmsprop", 0.0f); },
          [] { return nn::make_optimizer("adam", 0.0f); }};
}

bool same_bits(const nn::Tensor& a, const nn::Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Optimizer, UpdatingInBlocksInAnyOrderIsOneStepBitForBit) {
  for (const auto& make : every_rule()) {
    std::mt19937 rng(3);
    std::normal_distribution<float> normal;
    nn::Parameter whole("w", nn::Tensor({1000})), blocks = whole;
    for (float& v : whole.value.span()) v = normal(rng);
    blocks.value = whole.value;
    auto one = make(), parts = make();
    for (int step = 0; step < 3; ++step) {
      for (float& g : whole.grad.span()) g = normal(rng);
      const std::vector<float> g(whole.grad.span().begin(), whole.grad.span().end());  // a copy: not p.grad
      nn::Parameter* w1[] = {&whole};
      nn::Parameter* w2[] = {&blocks};
      one->step(w1);
      parts->begin_step(w2);
      for (std::size_t lo : {900, 300, 0, 600})  // blocks of 300, then the last 100, out of order
        parts->update_block(blocks, g.data() + lo, lo, std::min<std::size_t>(300, 1000 - lo));
      ASSERT_TRUE(same_bits(whole.value, blocks.value)) << one->describe() << ", step " << step;
    }
  }
}

TEST(Optimizer, AnUpdateOutsideAStepOrPastTheEndIsAnError) {
  nn::Parameter w("w", nn::Tensor({4})), other("other", nn::Tensor({4}));
  nn::SGD sgd;
  const float g[4] = {};
  EXPECT_THROW(sgd.update_block(w, g, 0, 4), nn::Error);  // no begin_step yet
  nn::Parameter* params[] = {&w};
  sgd.begin_step(params);
  EXPECT_THROW(sgd.update_block(w, g, 2, 4), nn::Error);      // elements 2..5 of 4
  EXPECT_THROW(sgd.update_block(other, g, 0, 4), nn::Error);  // not in this step
  EXPECT_NO_THROW(sgd.update_block(w, g, 0, 4));
}

// update(Parameter&) is public on every rule: the rule's own elementwise
// update used to be an overload named update, and hid it (`s.update(p)` did
// not compile on an nn::SGD).
TEST(Optimizer, UpdateOfOneParameterIsCallableOnEveryRule) {
  nn::Parameter w("w", nn::Tensor({2}, std::vector<float>{1.0f, -2.0f}));
  w.grad = nn::Tensor({2}, std::vector<float>{0.5f, 0.1f});
  nn::Parameter* params[] = {&w};
  nn::SGD s({.learning_rate = 0.1f});
  s.begin_step(params);
  s.update(w);  // SGD: w -= 0.1 g
  EXPECT_FLOAT_EQ(w.value[0], 0.95f);
  EXPECT_FLOAT_EQ(w.value[1], -2.01f);
  nn::Adam a;
  nn::RMSprop r;
  a.begin_step(params);
  a.update(w);
  r.begin_step(params);
  r.update(w);
  EXPECT_LT(w.value[0], 0.95f);  // both moved it against its gradient
}

// A non-trainable parameter (a moving mean) is the layer's own state: every
// rule leaves it as it is, needs no gradient for it, and keeps no state for it.
TEST(Optimizer, NonTrainableParametersAreNeverUpdated) {
  for (const auto& make : every_rule()) {
    nn::Parameter w("w", nn::Tensor({2}, std::vector<float>{1.0f, -2.0f}));
    w.grad = nn::Tensor({2}, std::vector<float>{0.5f, 0.1f});
    nn::Parameter mean("moving_mean", nn::Tensor({3}, std::vector<float>{4.0f, 5.0f, 6.0f}), /*is_trainable=*/false);
    EXPECT_EQ(mean.grad.size(), 0u) << "no gradient is kept for it";
    auto opt = make();
    nn::Parameter* params[] = {&w, &mean};
    opt->step(params);  // no error: its empty grad is not checked
    opt->begin_step(params);
    opt->update(mean);
    EXPECT_THROW(opt->update_block(mean, w.grad.data(), 0, 1), nn::Error) << "no state was made for it";
    EXPECT_EQ(mean.value[0], 4.0f);
    EXPECT_EQ(mean.value[1], 5.0f);
    EXPECT_EQ(mean.value[2], 6.0f);
    EXPECT_NE(w.value[0], 1.0f) << opt->describe() << ": the trainable one moved";
  }
}

// The documented contract of Parameter::grad: a training step need not keep
// it. The fast Dense updates its kernel from each block of the gradient and
// never writes kernel.grad (its bias grad is written); compute_gradients
// always writes every grad.
TEST(Backprop, ATrainingStepDoesNotKeepTheDenseKernelGradient) {
  nn::Sequential model = nn::make_mnist_model(5);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  nn::Tensor x({8, 28, 28, 1});
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& v : x.span()) v = u(rng);
  const nn::Tensor y = nn::one_hot(std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7});
  model.train_on_batch(x, y);  // a first step: the weights of the next one are new
  model.compute_gradients(x, y);
  nn::Parameter& kernel = *model.named_parameters()[2].parameter;  // dense.kernel
  nn::Parameter& bias = *model.named_parameters()[3].parameter;    // dense.bias
  const nn::Tensor kernel_grad = kernel.grad, bias_grad = bias.grad;
  model.train_on_batch(x, y);  // at the same weights, then a step
  model.train_on_batch(x, y);  // at other weights: other gradients
  EXPECT_TRUE(same_bits(kernel.grad, kernel_grad)) << "not kept: left as the last backward pass wrote it";
  EXPECT_FALSE(same_bits(bias.grad, bias_grad)) << "the bias's is written";
  model.compute_gradients(x, y);
  EXPECT_FALSE(same_bits(kernel.grad, kernel_grad)) << "compute_gradients writes it";
}

// train_on_batch updates each layer's weights during the backward pass (the
// Dense layers block by block, from gradients never written to memory); that
// must be compute_gradients followed by one optimizer step, bit for bit: for
// every rule, on 1 and 2 threads, at batch sizes that leave edge rows.
TEST(Backprop, UpdatingDuringBackwardIsGradientsThenAStepBitForBit) {
  const std::size_t threads_before = nn::thread_count();
  for (std::size_t threads : {1, 2}) {
    nn::set_thread_count(threads);
    for (const auto& make : every_rule())
      for (std::size_t batch : {1, 13, 32}) {
        nn::Sequential during = nn::make_mnist_model(5), after = nn::make_mnist_model(5);
        during.compile(make());
        after.compile(make());
        auto apart = make();  // the optimizer for the model stepped after its gradients
        std::mt19937 rng(7);
        std::uniform_real_distribution<float> u(0.0f, 1.0f);
        for (int step = 0; step < 2; ++step) {
          nn::Tensor x({batch, 28, 28, 1});
          for (float& v : x.span()) v = u(rng) < 0.8f ? 0.0f : u(rng);
          std::vector<int> labels(batch);
          for (std::size_t i = 0; i < batch; ++i) labels[i] = static_cast<int>((i * 7 + step) % 10);
          const nn::Tensor y = nn::one_hot(labels);
          const double loss_during = during.train_on_batch(x, y);
          const double loss_after = after.compute_gradients(x, y);
          apart->step(after.parameters());
          ASSERT_EQ(loss_during, loss_after);
        }
        const auto a = during.named_parameters(), b = after.named_parameters();
        for (std::size_t t = 0; t < a.size(); ++t)
          EXPECT_TRUE(same_bits(a[t].parameter->value, b[t].parameter->value))
              << a[t].name << " differs: " << apart->describe() << ", batch " << batch << ", " << threads << " threads";
      }
  }
  nn::set_thread_count(threads_before);
}

// Adam's and RMSprop's running means fill with denormal floats during
// training, which make Intel cores slow; both rules update with denormals
// flushed to zero, on every thread that runs the update. g = 1e-20 makes
// g^2 = 1e-40, a denormal: unflushed, Adam's s would be 1e-43 and RMSprop's
// 1e-41. The tensor is large enough for parallel_for to split it over both threads.
TEST(Denormals, AdamAndRMSpropFlushTheirStateOnEveryThread) {
  if (!nn::can_flush_denormals()) GTEST_SKIP() << "no flush mode on this CPU";
  const std::size_t threads_before = nn::thread_count();
  nn::set_thread_count(2);
  for (const std::string name : {"adam", "rmsprop"}) {
    nn::Parameter w("w", nn::Tensor({std::size_t{1} << 17}));
    w.value.fill(0.5f);
    w.grad.fill(1e-20f);
    auto opt = nn::make_optimizer(name, 0.0f);
    nn::Parameter* params[] = {&w};
    opt->step(params);
    const auto state = opt->state(w);
    ASSERT_FALSE(state.empty());
    const nn::Tensor& s = state.back();  // the mean of g^2 (Adam's second, RMSprop's only)
    std::size_t denormal = 0;
    for (float v : s.span()) denormal += std::fpclassify(v) == FP_SUBNORMAL;
    EXPECT_EQ(denormal, 0u) << name << ": " << denormal << " of " << s.size() << " values of s are denormal";
    EXPECT_EQ(s[0], 0.0f) << name;
    EXPECT_EQ(s[s.size() - 1], 0.0f) << name << ": the last block, on the worker thread";
    // Flushed or not, the weight is the same: sqrt(s) of 1e-21 or 0 is lost
    // beside epsilon, and the update (3e-18 for Adam) is below half of 0.5's last bit.
    EXPECT_EQ(w.value[s.size() - 1], 0.5f) << name;
  }
  nn::set_thread_count(threads_before);
}

// SGD never flushes: chapter 10's SGD model stays bit for bit what it was.
TEST(Denormals, SGDKeepsADenormalUpdate) {
  nn::Parameter w("w", nn::Tensor({1}));  // 0
  w.grad.fill(1e-38f);
  nn::SGD sgd({.learning_rate = 0.01f});
  nn::Parameter* params[] = {&w};
  sgd.step(params);
  EXPECT_EQ(std::fpclassify(w.value[0]), FP_SUBNORMAL) << w.value[0];  // -1e-40
}

// The mode is the thread's, set for the update and restored after it: the
// caller and the pool's workers compute with denormals again after a step.
TEST(Denormals, TheModeIsRestoredAfterAScopeAndAfterAStep) {
  if (!nn::can_flush_denormals()) GTEST_SKIP() << "no flush mode on this CPU";
  volatile float tiny = 1e-38f;  // volatile: computed at run time, under the thread's mode
  EXPECT_FALSE(nn::flushing_denormals());
  {
    const nn::FlushDenormals flush;
    EXPECT_TRUE(nn::flushing_denormals());
    EXPECT_EQ(tiny * 0.1f, 0.0f);
    {
      const nn::FlushDenormals again;  // already on: the inner scope's end keeps it on
    }
    EXPECT_TRUE(nn::flushing_denormals());
    const nn::FlushDenormals off(false);  // changes nothing
    EXPECT_TRUE(nn::flushing_denormals());
  }
  EXPECT_FALSE(nn::flushing_denormals());
  EXPECT_EQ(std::fpclassify(tiny * 0.1f), FP_SUBNORMAL);

  const std::size_t threads_before = nn::thread_count();
  nn::set_thread_count(2);
  nn::Parameter w("w", nn::Tensor({std::size_t{1} << 17}));
  w.grad.fill(1e-20f);
  nn::Adam adam;
  nn::Parameter* params[] = {&w};
  adam.step(params);
  std::atomic<int> flushing = 0, chunks = 0;
  nn::parallel_for(0, 2, [&](std::size_t, std::size_t) {
    ++chunks;
    flushing += nn::flushing_denormals();
  });
  EXPECT_EQ(chunks, 2);
  EXPECT_EQ(flushing, 0) << "a thread still flushes after the step";
  nn::set_thread_count(threads_before);
}

}  // namespace

namespace {

TEST(Ch09Executable, TooFewTrainingImagesAreAClearError) {
  testing_nn::expect_too_few_training_images_refused("ch09-sgd");
}

}  // namespace
