// Chapter 13: the gradient tape (nn/tape.hpp). Small graphs whose gradients
// are worked out by hand; the seed model's gradients through the tape against
// the hand-written backward pass (bit for bit where the same kernels run in
// the same order, within a derived bound where the fused convolution sums in
// another order); an epoch of fit through the tape; a residual block, which
// no Sequential of the hand-written layers can express, checked by central
// differences; and the errors.
#include <gtest/gtest.h>
#include <gmock/gmock.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <span>
#include <vector>

#include "nn/activations.hpp"
#include "nn/conv2d.hpp"
#include "nn/error.hpp"
#include "nn/gradcheck.hpp"
#include "nn/init.hpp"
#include "nn/layers.hpp"
#include "nn/model.hpp"
#include "nn/mnist.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"
#include "nn/random.hpp"
#include "nn/tape.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;
using testing_nn::error_of;
using testing_nn::random_tensor;

bool same_bits(const nn::Tensor& a, const nn::Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A batch of `n` real training images from `first`, and their one-hot labels.
struct Batch {
  nn::Tensor x, y;
};
Batch real_batch(std::size_t first, std::size_t n) {
  const auto& m = testing_nn::real_mnist();
  return {nn::slice_batch(nn::images_to_tensor(m.x_train), first, n),
          nn::one_hot(std::span(m.y_train.data).subspan(first, n))};
}

// ---- Small graphs, by hand -----------------------------------------------------

// [snippet tape-by-hand]
TEST(Tape, TwoOperationsGiveTheChainRulesGradients) {
  // f(a, b) = sum(a * b + a): df/da = b + 1, df/db = a, element by element.
  nn::Tape tape;
  const nn::Tensor a_value({3}, std::vector<float>{1.0f, -2.0f, 0.5f});
  const nn::Tensor b_value({3}, std::vector<float>{4.0f, 3.0f, -1.0f});
  const nn::Var a = tape.variable(a_value), b = tape.variable(b_value);
  const nn::Var f = nn::sum(nn::add(nn::multiply(a, b), a));  // a is used twice
  EXPECT_DOUBLE_EQ(f.item(), (4.0 + 1.0) + (-6.0 - 2.0) + (-0.5 + 0.5));
  tape.backward(f);
  EXPECT_THAT(std::vector<float>(a.grad().span().begin(), a.grad().span().end()),
              ::testing::ElementsAre(5.0f, 4.0f, 0.0f));  // b + 1
  EXPECT_THAT(std::vector<float>(b.grad().span().begin(), b.grad().span().end()),
              ::testing::ElementsAre(1.0f, -2.0f, 0.5f));  // a
}
// [end snippet tape-by-hand]

TEST(Tape, AValueUsedTwiceGetsTheSumOfBothGradients) {
  // sum(x * x) = sum(x^2): d/dx = 2x, which arrives as x (from the left) + x (from the right).
  nn::Tape tape;
  const nn::Tensor x_value = random_tensor({2, 5}, 3);
  const nn::Var x = tape.variable(x_value);
  tape.backward(nn::sum(nn::multiply(x, x)));
  for (std::size_t i = 0; i < x_value.size(); ++i) EXPECT_EQ(x.grad()[i], 2.0f * x_value[i]) << i;
}

TEST(Tape, MeanSpreadsTheGradientEvenly) {
  nn::Tape tape;
  const nn::Tensor x_value = random_tensor({4, 2}, 5);
  const nn::Var x = tape.variable(x_value);
  const nn::Var m = nn::mean(x);
  double expected = 0;
  for (float v : x_value.span()) expected += v;
  EXPECT_DOUBLE_EQ(m.item(), expected / 8);
  tape.backward(m);
  for (std::size_t i = 0; i < 8; ++i) EXPECT_EQ(x.grad()[i], 0.125f);
}

TEST(Tape, InputsGetNoGradientAndValuesOffThePathGetNone) {
  nn::Tape tape;
  const nn::Tensor v = random_tensor({3}, 1);
  const nn::Var data = tape.input(v), w = tape.variable(v), unused = tape.variable(v);
  const nn::Var off_path = nn::multiply(unused, unused);
  tape.backward(nn::sum(nn::multiply(data, w)));
  EXPECT_EQ(data.grad().size(), 0u);
  EXPECT_EQ(unused.grad().size(), 0u);
  EXPECT_EQ(off_path.grad().size(), 0u);
  ASSERT_EQ(w.grad().size(), 3u);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(w.grad()[i], v[i]);
}

TEST(Tape, ListsTheRecordedGraphInOrder) {
  nn::Tape tape;
  const nn::Tensor v({2, 3});
  const nn::Var x = tape.input(v);
  const nn::Var y = nn::relu(x);
  nn::sum(nn::add(y, x));
  EXPECT_EQ(tape.listing(),
            "v0 = input  (2, 3)\n"
            "v1 = relu(v0)  (2, 3)\n"
            "v2 = add(v1, v0)  (2, 3)\n"
            "v3 = sum(v2)  (1,)\n");
  EXPECT_EQ(tape.size(), 4u);
}

TEST(Tape, ReshapeIsAViewAndCostsNoValueBytes) {
  nn::Tape tape;
  const nn::Tensor v = random_tensor({2, 3, 4, 1}, 2);
  const nn::Var x = tape.variable(v);
  const nn::Var f = nn::flatten(x);
  EXPECT_EQ(f.shape(), (nn::Shape{2, 12}));
  EXPECT_TRUE(f.value().shares_buffer_with(v));
  EXPECT_EQ(tape.bytes(), 0u);  // a view of a variable, which is itself a view
  tape.backward(nn::sum(f));
  EXPECT_EQ(x.grad().shape(), v.shape());
  EXPECT_EQ(tape.bytes(), (24u + 24u + 1u) * sizeof(float) + sizeof(float));  // grads of x, f, the sum; the sum's value
}

TEST(Tape, ErrorsNameWhatIsWrong) {
  nn::Tape tape, other;
  const nn::Tensor v({2, 2});
  const nn::Var x = tape.variable(v), y = other.variable(v);
  EXPECT_THAT(error_of([&] { tape.backward(x); }), HasSubstr("a loss has one element"));
  EXPECT_THAT(error_of([&] { nn::add(x, y); }), HasSubstr("another tape"));
  EXPECT_THAT(error_of([&] { nn::add(x, tape.variable(nn::Tensor({3}))); }), HasSubstr("the shapes must be equal"));
  EXPECT_THAT(error_of([&] { nn::probabilities(x); }), HasSubstr("not a softmax_crossentropy"));
  EXPECT_THAT(error_of([&] { nn::dropout(x, 1.5, 1); }), HasSubstr("outside [0, 1]"));
  EXPECT_THAT(error_of([&] { nn::softmax_crossentropy(x, nn::Tensor({2, 3})); }), HasSubstr("(N, classes)"));
  tape.clear();
  EXPECT_THAT(error_of([&] { (void)x.value(); }), HasSubstr("cleared since?"));
  nn::Parameter frozen("moving_mean", nn::Tensor({2}), /*is_trainable=*/false);
  EXPECT_THAT(error_of([&] { tape.parameter(frozen); }), HasSubstr("not trainable"));
}

TEST(Tape, ALayerWithoutATapeFormSaysSo) {
  nn::BatchNormalization bn;
  bn.name = "batch_normalization";
  nn::Tape tape;
  const nn::Tensor v({2, 3});
  EXPECT_THAT(error_of([&] { bn.record(tape.input(v)); }),
              HasSubstr("batch_normalization (BatchNormalization) has no form on the gradient tape"));
}

TEST(Tape, DropoutReplaysTheLayersMask) {
  // Recording a Dropout layer draws the same mask as its forward pass would.
  const nn::Tensor x = random_tensor({4, 50}, 9);
  nn::Dropout layer({.rate = 0.5, .seed = 11});
  layer.training = true;
  const nn::Tensor y_layer(layer.forward(x).tensor());
  layer.draws = 0;
  nn::Tape tape;
  const nn::Var in = tape.variable(x);
  const nn::Var y = layer.record(in);
  EXPECT_TRUE(same_bits(y.value(), y_layer));
  tape.backward(nn::sum(y));
  const nn::Tensor dy(x.shape(), 1.0f);
  layer.draws = 0;
  layer.forward(x);
  EXPECT_TRUE(same_bits(in.grad(), nn::Tensor(layer.backward(x, y_layer, dy).tensor())));
}

// ---- The seed model: the tape against the hand-written backward pass ------------

// The gradients compute_gradients leaves in every parameter.
std::vector<nn::Tensor> gradients_of(nn::Sequential& model) {
  std::vector<nn::Tensor> out;
  for (nn::Parameter* p : model.parameters()) out.push_back(p->grad);
  return out;
}

TEST(TapeModel, SeedModelGradientsAreTheHandWrittenOnesBitForBitUnfused) {
  // Fusion off, the layers run the kernels the tape runs, in the same order.
  const Batch b = real_batch(0, 32);
  for (std::uint64_t seed : {1u, 2u}) {
    nn::Sequential model = nn::make_mnist_model(seed);
    model.set_fusion(false);
    model.compile(nn::make_optimizer("sgd", 0.01f));
    const double loss = model.compute_gradients(b.x, b.y);
    const std::vector<nn::Tensor> by_hand = gradients_of(model);
    for (nn::Parameter* p : model.parameters()) p->grad.fill(std::nanf(""));  // the tape must write them all
    std::size_t correct = 0;
    EXPECT_EQ(nn::tape_gradients(model, b.x, b.y, &correct), loss);
    const std::vector<nn::NamedParameter> named = model.named_parameters();
    for (std::size_t i = 0; i < named.size(); ++i)
      EXPECT_TRUE(same_bits(named[i].parameter->grad, by_hand[i])) << named[i].name << ", seed " << seed;
    EXPECT_GT(correct, 0u);
  }
}

TEST(TapeModel, WithTheFusedConvolutionOnlyTheConvolutionsGradientsDifferWithinTheirRoundingBound) {
  // Fused (fit's default), the convolution's kernel and bias gradients are
  // sums over 32 x 26 x 26 = 21,632 products x * dz added in another order.
  // Two orders of one sum of n terms differ by at most 2 (n - 1) u sum|terms|
  // (u = 2^-24, float's unit roundoff; Higham, Accuracy and Stability of
  // Numerical Algorithms, ch. 4). sum|terms| is the same convolution gradient
  // of |x| and |dz|, computed here by the kernel itself.
  const Batch b = real_batch(64, 32);
  nn::Sequential model = nn::make_mnist_model(3);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  model.compute_gradients(b.x, b.y);  // fused
  const std::vector<nn::Tensor> by_hand = gradients_of(model);

  // The tape, with the convolution recorded by hand to reach its dz.
  auto& conv = dynamic_cast<nn::Conv2D&>(*model.layers()[0]);
  nn::Tape tape;
  const nn::Var x = tape.input(b.x);
  const nn::Var z = nn::conv2d(x, tape.parameter(conv.kernel), tape.parameter(conv.bias));
  nn::Var h = nn::relu(z);
  for (std::size_t i = 1; i < model.layers().size(); ++i) {
    model.layers()[i]->training = true;
    h = model.layers()[i]->record(h);
  }
  tape.backward(nn::softmax_crossentropy(h, b.y));

  nn::Tensor abs_x = b.x, abs_dz = z.grad();
  for (float& v : abs_x.span()) v = std::abs(v);
  for (float& v : abs_dz.span()) v = std::abs(v);
  const nn::Conv2DGradients bound_terms =
      nn::conv2d_backward(abs_x, conv.kernel.value, abs_dz, nn::Conv2DVariant::naive, /*input_gradient=*/false);
  const double n = 32.0 * 26 * 26, u = std::ldexp(1.0, -24);
  const std::vector<nn::Parameter*> params = model.parameters();
  for (std::size_t t = 0; t < 2; ++t) {  // conv2d.kernel, conv2d.bias
    const nn::Tensor& terms = t == 0 ? bound_terms.dkernel : bound_terms.dbias;
    std::size_t differing = 0;
    for (std::size_t i = 0; i < terms.size(); ++i) {
      const double diff = std::abs(static_cast<double>(params[t]->grad[i]) - by_hand[t][i]);
      EXPECT_LE(diff, 2 * (n - 1) * u * terms[i] + 1e-12) << "tensor " << t << " entry " << i;
      differing += diff > 0;
    }
    if (t == 0) {
      EXPECT_GT(differing, 0u) << "the fused kernel gradient was expected to be summed in another order";
    }
  }
  for (std::size_t t = 2; t < params.size(); ++t)  // the Dense layers: the same kernels, the same order
    EXPECT_TRUE(same_bits(params[t]->grad, by_hand[t])) << t;
}

TEST(TapeModel, AnEpochOfFitThroughTheTapeGivesFitsWeightsBitForBit) {
  // 1,024 real images, 32 steps of 32, shuffled: fit with the layers' backward
  // passes (fusion off) against fit whose train step is the tape's.
  const Batch b = real_batch(0, 1024);
  nn::Sequential by_hand = nn::make_mnist_model(1), by_tape = nn::make_mnist_model(1);
  by_hand.set_fusion(false);
  by_hand.compile(nn::make_optimizer("sgd", 0.01f));
  by_tape.compile(nn::make_optimizer("sgd", 0.01f));
  const nn::History h1 = by_hand.fit(b.x, b.y, {.epochs = 1, .seed = 5});
  const nn::History h2 = by_tape.fit(
      b.x, b.y,
      {.epochs = 1, .seed = 5, .train_step = [&](const nn::Tensor& x, const nn::Tensor& y, std::size_t* correct) {
         return nn::tape_train_step(by_tape, x, y, correct);
       }});
  EXPECT_EQ(h1.epochs.at(0).loss, h2.epochs.at(0).loss);
  EXPECT_EQ(h1.epochs.at(0).accuracy, h2.epochs.at(0).accuracy);
  const auto w1 = by_hand.named_parameters(), w2 = by_tape.named_parameters();
  for (std::size_t i = 0; i < w1.size(); ++i)
    EXPECT_TRUE(same_bits(w1[i].parameter->value, w2[i].parameter->value)) << w1[i].name;
  // The weights moved: the comparison is not of two untouched models.
  EXPECT_FALSE(same_bits(w2[0].parameter->value, nn::make_mnist_model(1).named_parameters()[0].parameter->value));
}

TEST(TapeModel, AdamThroughTheTapeIsAdamThroughTheLayers) {
  const Batch b = real_batch(2048, 64);
  nn::Sequential by_hand = nn::make_mnist_model(4), by_tape = nn::make_mnist_model(4);
  by_hand.set_fusion(false);
  by_hand.compile(nn::make_optimizer("adam", 1e-3f));
  by_tape.compile(nn::make_optimizer("adam", 1e-3f));
  for (std::size_t step = 0; step < 2; ++step) {
    const nn::Tensor x = nn::slice_batch(b.x, step * 32, 32), y = nn::slice_batch(b.y, step * 32, 32);
    EXPECT_EQ(by_hand.train_on_batch(x, y), nn::tape_train_step(by_tape, x, y));
  }
  const auto w1 = by_hand.named_parameters(), w2 = by_tape.named_parameters();
  for (std::size_t i = 0; i < w1.size(); ++i)
    EXPECT_TRUE(same_bits(w1[i].parameter->value, w2[i].parameter->value)) << w1[i].name;
}

TEST(TapeModel, OnlyTheCategoricalCrossentropyIsRecorded) {
  nn::Sequential model = nn::make_mnist_model(1);
  model.compile(nn::make_optimizer("sgd", 0.01f), nn::Loss::mean_squared_error);
  const Batch b = real_batch(0, 2);
  EXPECT_THAT(error_of([&] { nn::tape_train_step(model, b.x, b.y); }), HasSubstr("categorical_crossentropy"));
}

// ---- What the layers cannot express: a residual block -----------------------------

TEST(TapeLayer, AResidualBlocksGradientsPassTheCentralDifferenceCheck) {
  nn::TapeLayer block = nn::make_residual_block(12, 21);
  const nn::Tensor x = random_tensor({5, 12}, 22);
  EXPECT_EQ(nn::layer_gradient_problems(block, x, /*seed=*/23, 1e-3, /*h=*/1e-3), "");
  EXPECT_EQ(block.output_shape({5, 12}), (nn::Shape{5, 12}));
}

TEST(TapeLayer, TheCheckCatchesAGraphThatLosesAPath) {
  // x + x W: the right values, but the skip's x recorded as data (an input,
  // no gradient), so dx misses the identity path. The check must see it.
  std::vector<nn::Parameter> weights;
  weights.emplace_back("kernel", random_tensor({6, 6}, 31));
  nn::TapeLayer broken({}, std::move(weights), [](nn::Var x, std::span<const nn::Var> w) {
    const nn::Var f = nn::dense(x, w[0], x.tape().input(nn::Tensor({6})));
    return nn::add(x.tape().input(x.value()), f);
  });
  const nn::Tensor x = random_tensor({4, 6}, 32);
  EXPECT_THAT(nn::layer_gradient_problems(broken, x, 33), HasSubstr("x["));
}

TEST(TapeLayer, AResidualModelTrainsInsideSequential) {
  nn::Sequential model({28, 28, 1});
  model.add(nn::Flatten());
  model.add(nn::Dense({.units = 32, .activation = nn::Activation::relu, .seed = 1}));
  model.add(nn::make_residual_block(32, 2));
  model.add(nn::Dense({.units = 10, .seed = 3}));
  model.compile(nn::make_optimizer("sgd", 0.1f));
  const Batch b = real_batch(0, 4096), test = real_batch(50000, 1000);
  const double before = model.evaluate(test.x, test.y).accuracy;
  model.fit(b.x, b.y, {.epochs = 2, .seed = 1});
  const double after = model.evaluate(test.x, test.y).accuracy;
  EXPECT_LT(before, 0.3);
  EXPECT_GT(after, 0.8);  // 2 epochs of 4,096 images: 0.838 with AVX-512
  EXPECT_THAT(model.summary(), HasSubstr("residual (Residual)"));
}

}  // namespace
