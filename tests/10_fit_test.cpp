// Chapter 10: Sequential, compile, fit, evaluate, predict, save and load.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "nn/error.hpp"
#include "nn/fused.hpp"
#include "nn/init.hpp"
#include "nn/parallel.hpp"
#include "nn/plot.hpp"
#include "nn/io.hpp"
#include "nn/layers.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/npy.hpp"
#include "nn/one_hot.hpp"
#include "nn/softmax.hpp"
#include "gradcheck.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;
using testing_nn::TempDir;

struct Data {
  nn::Tensor x_train, y_train, x_test, y_test;
};

// The first `n_train` training and `n_test` test images of the real MNIST.
Data subset(std::size_t n_train, std::size_t n_test) {
  const auto& m = testing_nn::real_mnist();
  return {nn::slice_batch(nn::images_to_tensor(m.x_train), 0, n_train),
          nn::one_hot(std::span(m.y_train.data).first(n_train)),
          nn::slice_batch(nn::images_to_tensor(m.x_test), 0, n_test),
          nn::one_hot(std::span(m.y_test.data).first(n_test))};
}

bool same_bits(const nn::Tensor& a, const nn::Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Fit, BatchesPerEpoch) {
  EXPECT_EQ(nn::batches_per_epoch(60000, 32), 1875u);
  EXPECT_EQ(nn::batches_per_epoch(100, 32), 4u);  // 32 + 32 + 32 + 4
  EXPECT_EQ(nn::batches_per_epoch(64, 32), 2u);
}

TEST(Fit, SummaryAsKerasPrintsIt) {
  const std::string expected =
      "Model: \"sequential\"\n"
      "_________________________________________________________________\n"
      "Layer (type)                 Output Shape              Param #\n"
      "=================================================================\n"
      "conv2d (Conv2D)              (None, 26, 26, 32)        320\n"
      "_________________________________________________________________\n"
      "max_pooling2d (MaxPooling2D) (None, 13, 13, 32)        0\n"
      "_________________________________________________________________\n"
      "flatten (Flatten)            (None, 5408)              0\n"
      "_________________________________________________________________\n"
      "dense (Dense)                (None, 100)               540900\n"
      "_________________________________________________________________\n"
      "dense_1 (Dense)              (None, 10)                1010\n"
      "=================================================================\n"
      "Total params: 542,230\n"
      "Trainable params: 542,230\n"
      "Non-trainable params: 0\n"
      "_________________________________________________________________\n";
  EXPECT_EQ(nn::make_mnist_model(1).summary(), expected);
}

TEST(Fit, ProgressLineFormat) {
  EXPECT_EQ(nn::progress_line(1875, 1875, 6.2, 0.27634, 0.919, true),
            "1875/1875 [==============================] - 6s 3ms/step - loss: 0.2763 - accuracy: 0.9190");
  EXPECT_EQ(nn::progress_line(375, 1875, 1.0, 1.5, 0.5, false),
            " 375/1875 [======>.......................] - ETA: 4s - loss: 1.5000 - accuracy: 0.5000");
  EXPECT_EQ(nn::progress_line(313, 313, 0.2, 0.05, 0.98, true),
            "313/313 [==============================] - 0s 639us/step - loss: 0.0500 - accuracy: 0.9800");
}

TEST(Fit, AddChecksTheShapes) {
  nn::Sequential model({28, 28, 1});
  model.add(nn::Flatten());
  try {
    model.add(nn::Dense({.units = 10, .input_dim = 100}));
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot add Dense after an output of shape (None, 784)"));
  }
}

// Data of the wrong shape, an uncompiled or empty model: one clear error
// from every entry point, naming what is wrong, before any work.
TEST(Fit, WrongDataAndModelsAreClearErrors) {
  using testing_nn::error_of;
  nn::Sequential model = nn::make_mnist_model(1);
  const nn::Tensor x = testing_nn::random_tensor({4, 28, 28, 1}, 1, 0.0f, 1.0f);
  const nn::Tensor y = nn::one_hot(std::vector<int>{1, 2, 3, 4});
  EXPECT_THAT(error_of([&] { model.fit(x, y, {}); }), HasSubstr("fit: call compile() first"));
  EXPECT_THAT(error_of([&] { model.train_on_batch(x, y); }), HasSubstr("train_on_batch: call compile() first"));
  model.compile(nn::make_optimizer("sgd", 0.01f));
  const nn::Tensor small = testing_nn::random_tensor({4, 14, 14, 1}, 2), flat({4, 784});
  for (const nn::Tensor* bad : {&small, &flat}) {
    const std::string expected = "x has shape " + bad->shape().str() + ", but the model takes (None, 28, 28, 1)";
    EXPECT_THAT(error_of([&] { model.fit(*bad, y, {}); }), HasSubstr("fit: " + expected));
    EXPECT_THAT(error_of([&] { model.train_on_batch(*bad, y); }), HasSubstr(expected));
    EXPECT_THAT(error_of([&] { model.evaluate(*bad, y); }), HasSubstr("evaluate: " + expected));
    EXPECT_THAT(error_of([&] { model.predict(*bad); }), HasSubstr("predict: " + expected));
  }
  const nn::Tensor y5({4, 5}), y3 = nn::one_hot(std::vector<int>{1, 2, 3});
  EXPECT_THAT(error_of([&] { model.fit(x, y5, {}); }), HasSubstr("fit: y has shape (4, 5); for x (4, 28, 28, 1) the model needs (4, 10)"));
  EXPECT_THAT(error_of([&] { model.evaluate(x, y3); }), HasSubstr("evaluate: y has shape (3, 10)"));
  EXPECT_THAT(error_of([&] { model.fit(x, y, {.x_val = &x, .y_val = &y5}); }), HasSubstr("fit (validation data): y has shape (4, 5)"));

  nn::Sequential empty({28, 28, 1});
  EXPECT_THAT(error_of([&] { empty.compile(nn::make_optimizer("sgd", 0.01f)); }), HasSubstr("compile: the model has no layers"));
  EXPECT_THAT(error_of([&] { empty.predict(x); }), HasSubstr("predict: the model has no layers"));
  EXPECT_THAT(error_of([&] { empty.evaluate(x, y); }), HasSubstr("evaluate: the model has no layers"));
  EXPECT_EQ(empty.param_count(), 0u);
}

TEST(Fit, ASmallNetworkLearnsFromASubset) {
  Data d = subset(3000, 1000);
  nn::Sequential model = nn::make_mnist_model(7);
  model.compile(nn::make_optimizer("sgd", 0.01f, 0.9f));
  nn::History h = model.fit(d.x_train, d.y_train, {.epochs = 2, .batch_size = 32, .seed = 7});
  ASSERT_EQ(h.epochs.size(), 2u);
  EXPECT_EQ(h.epochs[0].steps, 94u);  // 3000 / 32 -> 93 full batches and one of 24
  EXPECT_LT(h.epochs[1].loss, h.epochs[0].loss);
  nn::Evaluation e = model.evaluate(d.x_test, d.y_test);
  EXPECT_GT(e.accuracy, 0.85) << "chance is 0.10";
  // predict gives probabilities whose argmax agrees with evaluate's accuracy.
  nn::Tensor p = model.predict(d.x_test);
  EXPECT_EQ(p.shape().str(), "(1000, 10)");
  EXPECT_DOUBLE_EQ(nn::accuracy(p, d.y_test), e.accuracy);
}

TEST(Fit, TheLastPartialBatchIsTrainedAndWeighted) {
  // 100 images in batches of 32: 32, 32, 32 and a last batch of 4. Keras's
  // epoch loss is the running mean over samples, so the last batch counts
  // 4/100, not 1/4. Replayed by hand with train_on_batch on the same slices
  // (no shuffle), the epoch's loss, accuracy and final weights must agree.
  Data d = subset(100, 10);
  nn::Sequential model = nn::make_mnist_model(2), by_hand = nn::make_mnist_model(2);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  by_hand.compile(nn::make_optimizer("sgd", 0.01f));
  nn::History h = model.fit(d.x_train, d.y_train, {.epochs = 1, .batch_size = 32, .shuffle = false});
  EXPECT_EQ(h.steps, 4u);
  EXPECT_EQ(h.epochs[0].steps, 4u);
  double loss_sum = 0, plain_mean = 0;
  std::size_t correct_sum = 0;
  for (std::size_t first : {0u, 32u, 64u, 96u}) {
    const std::size_t count = std::min<std::size_t>(32, 100 - first);
    std::size_t correct = 0;
    const double loss = by_hand.train_on_batch(nn::slice_batch(d.x_train, first, count),
                                               nn::slice_batch(d.y_train, first, count), &correct);
    loss_sum += loss * static_cast<double>(count);
    plain_mean += loss / 4;
    correct_sum += correct;
  }
  EXPECT_NEAR(h.epochs[0].loss, loss_sum / 100, 1e-9);
  EXPECT_GT(std::abs(h.epochs[0].loss - plain_mean), 1e-4) << "the batches' plain mean would not tell the two apart";
  EXPECT_DOUBLE_EQ(h.epochs[0].accuracy, static_cast<double>(correct_sum) / 100);
  auto w = model.named_parameters(), w_hand = by_hand.named_parameters();
  for (std::size_t i = 0; i < w.size(); ++i) EXPECT_TRUE(same_bits(w[i].parameter->value, w_hand[i].parameter->value)) << w[i].name;
}

TEST(Fit, AnEmptyTrainingSetIsAnError) {
  nn::Sequential model = nn::make_mnist_model(2);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  const nn::Tensor x({0, 28, 28, 1}), y({0, 10});
  EXPECT_THAT(testing_nn::error_of([&] { model.fit(x, y, {.epochs = 1}); }),
              HasSubstr("fit: the training set is empty"));
  // So are an empty validation set (before any training), and evaluating or predicting nothing.
  const nn::Tensor x1 = testing_nn::random_tensor({1, 28, 28, 1}, 1), y1 = nn::one_hot(std::vector<int>{3});
  const nn::Tensor kernel_before = model.named_parameters()[0].parameter->value;
  EXPECT_THAT(testing_nn::error_of([&] { model.fit(x1, y1, {.epochs = 1, .x_val = &x, .y_val = &y}); }),
              HasSubstr("fit: the validation set is empty"));
  EXPECT_TRUE(same_bits(model.named_parameters()[0].parameter->value, kernel_before)) << "trained before checking";
  EXPECT_THAT(testing_nn::error_of([&] { model.evaluate(x, y); }), HasSubstr("evaluate: the set is empty"));
  EXPECT_THAT(testing_nn::error_of([&] { model.predict(x); }), HasSubstr("predict: no images"));
}

TEST(Fit, SameSeedSameThreadsGiveIdenticalWeights) {
  Data d = subset(640, 10);
  auto train = [&] {
    nn::Sequential model = nn::make_mnist_model(5);
    model.compile(nn::make_optimizer("sgd", 0.01f, 0.9f));
    model.fit(d.x_train, d.y_train, {.epochs = 2, .batch_size = 32, .seed = 9});
    std::vector<nn::Tensor> w;
    for (auto& nt : model.named_parameters()) w.push_back(nt.parameter->value);
    return w;
  };
  auto a = train(), b = train();
  ASSERT_EQ(a.size(), 6u);
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i], b[i])) << "tensor " << i;
}

TEST(Fit, MaxStepsAndNoShuffle) {
  Data d = subset(320, 10);
  nn::Sequential model = nn::make_mnist_model(5);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  nn::History h = model.fit(d.x_train, d.y_train, {.epochs = 3, .shuffle = false, .max_steps = 4});
  EXPECT_EQ(h.steps, 4u);
  EXPECT_THAT(h.stopped, HasSubstr("--max-steps 4"));
}

TEST(Fit, MaxStepsZeroTrainsNothing) {
  Data d = subset(64, 10);
  nn::Sequential model = nn::make_mnist_model(6);
  std::vector<nn::Tensor> initial;
  for (auto& nt : model.named_parameters()) initial.push_back(nt.parameter->value);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  nn::History h = model.fit(d.x_train, d.y_train, {.epochs = 2, .max_steps = 0});
  EXPECT_EQ(h.steps, 0u);
  EXPECT_TRUE(h.epochs.empty());
  auto w = model.named_parameters();
  for (std::size_t i = 0; i < w.size(); ++i) EXPECT_TRUE(same_bits(w[i].parameter->value, initial[i])) << w[i].name;
}

TEST(Fit, ANaNLossStopsAndKeepsTheLastGoodWeights) {
  Data d = subset(320, 10);
  nn::Sequential model = nn::make_mnist_model(5);
  std::vector<nn::Tensor> initial;
  for (auto& nt : model.named_parameters()) initial.push_back(nt.parameter->value);
  model.compile(nn::make_optimizer("sgd", 1e30f));  // diverges at once
  nn::History h = model.fit(d.x_train, d.y_train, {.epochs = 2, .batch_size = 32, .seed = 1});
  EXPECT_TRUE(h.nan_loss);
  EXPECT_TRUE(h.epochs.empty());
  EXPECT_THAT(h.stopped, HasSubstr("at epoch 1"));
  auto w = model.named_parameters();
  for (std::size_t i = 0; i < w.size(); ++i) EXPECT_TRUE(same_bits(w[i].parameter->value, initial[i])) << w[i].name;
}

TEST(Fit, AnInterruptKeepsTheWeightsOfTheLastCompletedEpoch) {
  // Ctrl-C (the interrupt flag) arrives after epoch 1 and 3 batches of epoch
  // 2: fit stops before the next batch and the model comes back with the
  // weights of the end of epoch 1, the ones that were saved.
  Data d = subset(320, 10);
  nn::Sequential model = nn::make_mnist_model(5);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  std::atomic<bool> stop{false};
  std::vector<nn::Tensor> epoch_1;
  nn::History h = model.fit(d.x_train, d.y_train,
                            {.epochs = 3, .seed = 1, .interrupt = &stop,
                             .on_epoch_end = [&](int, const nn::EpochLog&) {
                               for (auto& nt : model.named_parameters()) epoch_1.push_back(nt.parameter->value);
                             },
                             .on_batch_end = [&](std::size_t step) { stop = step == 13; }});
  EXPECT_TRUE(h.interrupted);
  EXPECT_EQ(h.epochs.size(), 1u);
  EXPECT_EQ(h.steps, 13u);  // 10 batches of 32 in epoch 1, then 3 of epoch 2
  EXPECT_THAT(h.stopped, HasSubstr("interrupted during epoch 2; the weights were reset to those of the end of epoch 1"));
  auto w = model.named_parameters();
  ASSERT_EQ(epoch_1.size(), w.size());
  for (std::size_t i = 0; i < w.size(); ++i) EXPECT_TRUE(same_bits(w[i].parameter->value, epoch_1[i])) << w[i].name;
}

// Keras's validation_split cuts floor(n * (1 - fraction)) samples for
// training and keeps the rest, in their order, for validation.
TEST(ValidationSplit, TheCutIsKerasFloor) {
  EXPECT_EQ(nn::split_for_validation(60000, 0.1), 54000u);
  EXPECT_EQ(nn::split_for_validation(10, 0.25), 7u);  // floor(7.5): 7 train, 3 validate
  EXPECT_EQ(nn::split_for_validation(2000, 0.5), 1000u);
  EXPECT_EQ(nn::split_for_validation(2, 0.5), 1u);
  using testing_nn::error_of;
  for (double bad : {-0.1, 1.0, 1.5, std::nan("")})
    EXPECT_THAT(error_of([&] { nn::split_for_validation(100, bad); }), HasSubstr("is outside [0, 1)")) << bad;
  EXPECT_EQ(nn::split_for_validation(10, 0.01), 9u);  // floor(9.9): one image still validates
  EXPECT_THAT(error_of([&] { nn::split_for_validation(10, 1e-20); }),  // 1 - 1e-20 is 1 in double
              HasSubstr("validation_split 1e-20 of 10 samples leaves 10 to train and 0 to validate"));
  EXPECT_THAT(error_of([&] { nn::split_for_validation(10, 0.95); }),  // floor(0.5)
              HasSubstr("leaves 0 to train and 10 to validate"));
  EXPECT_THAT(error_of([&] { nn::split_for_validation(1, 0.5); }),
              HasSubstr("leaves 0 to train and 1 to validate"));
}

// fit(x, y, {.validation_split = 0.25}) on 100 images trains on exactly the
// first 75, shuffled, and validates on exactly the last 25: the weights are
// bit for bit those of fit on the first 75 alone with the same seed, the
// last 25 can be replaced by garbage without touching training, and every
// epoch's val_loss and val_accuracy are evaluate() on the last 25.
TEST(ValidationSplit, ValidatesOnTheLastPartAndNeverTrainsOnIt) {
  Data d = subset(100, 10);
  const nn::Tensor x_first = nn::slice_batch(d.x_train, 0, 75), y_first = nn::slice_batch(d.y_train, 0, 75);
  const nn::Tensor x_last = nn::slice_batch(d.x_train, 75, 25), y_last = nn::slice_batch(d.y_train, 75, 25);

  nn::Sequential split = nn::make_mnist_model(3), alone = nn::make_mnist_model(3);
  split.compile(nn::make_optimizer("sgd", 0.05f));
  alone.compile(nn::make_optimizer("sgd", 0.05f));
  std::vector<nn::Evaluation> evaluated;  // evaluate() on the last 25 after each epoch
  nn::History h = split.fit(d.x_train, d.y_train,
                            {.epochs = 3, .batch_size = 16, .seed = 4, .validation_split = 0.25,
                             .on_epoch_end = [&](int, const nn::EpochLog&) {
                               evaluated.push_back(split.evaluate(x_last, y_last, 16));
                             }});
  nn::History h_alone = alone.fit(x_first, y_first, {.epochs = 3, .batch_size = 16, .seed = 4});
  ASSERT_EQ(h.epochs.size(), 3u);
  EXPECT_EQ(h.epochs[0].steps, 5u);  // 75 / 16 -> 4 full batches and one of 11, not 100 / 16 -> 7
  auto w = split.named_parameters(), w_alone = alone.named_parameters();
  for (std::size_t i = 0; i < w.size(); ++i)
    EXPECT_TRUE(same_bits(w[i].parameter->value, w_alone[i].parameter->value)) << w[i].name;
  for (std::size_t e = 0; e < 3; ++e) {
    EXPECT_TRUE(h.epochs[e].has_validation);
    EXPECT_EQ(h.epochs[e].val_loss, evaluated[e].loss) << "epoch " << e + 1;
    EXPECT_EQ(h.epochs[e].val_accuracy, evaluated[e].accuracy) << "epoch " << e + 1;
    EXPECT_EQ(h.epochs[e].loss, h_alone.epochs[e].loss) << "epoch " << e + 1;
    EXPECT_FALSE(h_alone.epochs[e].has_validation);
  }

  // 1e4 in every pixel of the held-out images: any one of them trained on
  // would change the weights. They come out bit for bit the same; only the
  // validation loss, measured on them, sees the garbage.
  nn::Tensor x_poisoned = d.x_train;
  for (std::size_t i = 75 * 784; i < x_poisoned.size(); ++i) x_poisoned[i] = 1e4f;
  nn::Sequential poisoned = nn::make_mnist_model(3);
  poisoned.compile(nn::make_optimizer("sgd", 0.05f));
  nn::History hp = poisoned.fit(x_poisoned, d.y_train, {.epochs = 3, .batch_size = 16, .seed = 4, .validation_split = 0.25});
  EXPECT_FALSE(hp.nan_loss) << hp.stopped;
  ASSERT_EQ(hp.epochs.size(), 3u);
  EXPECT_GT(hp.epochs[2].val_loss, 10 * h.epochs[2].val_loss);
  auto wp = poisoned.named_parameters();
  for (std::size_t i = 0; i < w.size(); ++i)
    EXPECT_TRUE(same_bits(wp[i].parameter->value, w_alone[i].parameter->value)) << wp[i].name;
}

TEST(ValidationSplit, BadSplitsAreClearErrorsBeforeAnyTraining) {
  using testing_nn::error_of;
  Data d = subset(10, 10);
  nn::Sequential model = nn::make_mnist_model(2);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  const nn::Tensor kernel_before = model.named_parameters()[0].parameter->value;
  EXPECT_THAT(error_of([&] { model.fit(d.x_train, d.y_train, {.epochs = 1, .validation_split = 1.0}); }),
              HasSubstr("validation_split 1 is outside [0, 1)"));
  EXPECT_THAT(error_of([&] { model.fit(d.x_train, d.y_train, {.epochs = 1, .validation_split = -0.5}); }),
              HasSubstr("validation_split -0.5 is outside [0, 1)"));
  EXPECT_THAT(error_of([&] { model.fit(d.x_train, d.y_train, {.epochs = 1, .validation_split = 1e-20}); }),
              HasSubstr("leaves 10 to train and 0 to validate"));
  EXPECT_THAT(error_of([&] { model.fit(d.x_train, d.y_train, {.epochs = 1, .validation_split = 0.95}); }),
              HasSubstr("leaves 0 to train and 10 to validate"));
  EXPECT_THAT(error_of([&] {
                model.fit(d.x_train, d.y_train,
                          {.epochs = 1, .x_val = &d.x_test, .y_val = &d.y_test, .validation_split = 0.5});
              }),
              HasSubstr("fit: give validation data (x_val, y_val) or a validation_split, not both"));
  EXPECT_TRUE(same_bits(model.named_parameters()[0].parameter->value, kernel_before)) << "trained before checking";
}

TEST(Weights, SaveLoadRoundTripIsBitExact) {
  TempDir dir;
  Data d = subset(64, 10);
  nn::Sequential trained = nn::make_mnist_model(1);
  trained.compile(nn::make_optimizer("adam", 0));
  trained.fit(d.x_train, d.y_train, {.epochs = 1, .seed = 1});
  trained.save(dir.path());
  for (const char* f : {"conv2d.kernel", "conv2d.bias", "dense.kernel", "dense.bias", "dense_1.kernel", "dense_1.bias"})
    EXPECT_TRUE(std::filesystem::exists(dir / (std::string(f) + ".npy"))) << f;
  nn::Sequential fresh = nn::make_mnist_model(99);
  fresh.load(dir.path());
  auto a = trained.named_parameters(), b = fresh.named_parameters();
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_bits(a[i].parameter->value, b[i].parameter->value)) << a[i].name;
  EXPECT_TRUE(same_bits(trained.predict(d.x_test), fresh.predict(d.x_test)));
}

TEST(Weights, NpyHeaderAsNumPyWritesIt) {
  const std::string h = nn::npy_header({3, 3, 1, 32});
  EXPECT_THAT(h, ::testing::StartsWith("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 3, 1, 32), }"));
  EXPECT_EQ((10 + h.size()) % 64, 0u);
  EXPECT_EQ(h.back(), '\n');
  EXPECT_THAT(nn::npy_header({10}), HasSubstr("'shape': (10,)"));
}

TEST(Weights, LoadNamesAMismatchAndChangesNothing) {
  TempDir dir;
  // A complete set, from a model whose hidden layer has 99 units instead of 100.
  nn::Sequential model({28, 28, 1});
  model.add(nn::Conv2D({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = 1}));
  model.add(nn::MaxPooling2D({.pool = 2}));
  model.add(nn::Flatten());
  model.add(nn::Dense({.units = 99, .input_dim = 5408, .activation = nn::Activation::relu, .seed = 2}));
  model.add(nn::Dense({.units = 10, .input_dim = 99, .seed = 3}));
  model.save(dir.path());
  nn::Sequential other = nn::make_mnist_model(2);
  std::vector<nn::Tensor> before;
  for (auto& nt : other.named_parameters()) before.push_back(nt.parameter->value);
  try {
    other.load(dir.path());
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("dense.kernel.npy: shape (5408, 99) does not match the model's dense.kernel (5408, 100)"));
  }
  auto w = other.named_parameters();
  for (std::size_t i = 0; i < w.size(); ++i) EXPECT_TRUE(same_bits(w[i].parameter->value, before[i])) << w[i].name;
}

TEST(Weights, MalformedNpyFiles) {
  TempDir dir;
  nn::save_npy(dir / "ok.npy", nn::Tensor({4}, 1.0f));
  auto bytes = nn::read_file(dir / "ok.npy");
  auto error_of = [&](std::vector<std::uint8_t> b) {
    nn::write_file_atomic(dir / "bad.npy", b);
    try {
      nn::load_npy(dir / "bad.npy");
    } catch (const nn::Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_THAT(error_of({bytes.begin(), bytes.end() - 1}), HasSubstr("holds 15 bytes of data, but the shape (4,) needs 16"));
  EXPECT_THAT(error_of({bytes.begin(), bytes.begin() + 5}), HasSubstr("not a .npy file"));
  auto f8 = bytes;
  std::string header(f8.begin() + 10, f8.begin() + 74);
  auto pos = header.find("<f4");
  f8[10 + pos + 2] = '8';
  EXPECT_THAT(error_of(f8), HasSubstr("bad.npy: .npy header: 'descr' is '<f8'; only '<f4' (float32, little-endian) is read"));
  EXPECT_THROW(nn::load_npy(dir / "missing.npy"), nn::Error);
}

// A .npy file of `data_bytes` zero bytes of data whose header says `shape`.
std::vector<std::uint8_t> npy_bytes(const std::string& shape, std::size_t data_bytes) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  const std::string preamble{'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<char>(header.size()),
                             static_cast<char>(header.size() >> 8)};
  const std::string file = preamble + header + std::string(data_bytes, '\0');
  return {file.begin(), file.end()};
}

TEST(Weights, NpyShapesWhoseByteCountOverflowAreRefused) {
  // (2^62 + 1) * 4 bytes wraps to 4 in 64 bits: a 132-byte file whose header
  // claims 2^62 + 1 floats once passed the size check.
  TempDir dir;
  auto b = npy_bytes("(4611686018427387905,)", 4);
  nn::write_file_atomic(dir / "huge.npy", b);
  EXPECT_THAT(testing_nn::error_of([&] { nn::load_npy(dir / "huge.npy"); }),
              HasSubstr("huge.npy: the shape (4611686018427387905,) has more elements than a float tensor can hold"));
  // The product itself overflows.
  EXPECT_THAT(testing_nn::error_of([&] { nn::decode_npy(npy_bytes("(4294967296, 4294967296, 2)", 0), "big.npy"); }),
              HasSubstr("big.npy: the shape (4294967296, 4294967296, 2) has more elements"));
  // A minus sign is not a huge dimension (std::stoull would read -1 as 2^64 - 1).
  EXPECT_THAT(testing_nn::error_of([&] { nn::decode_npy(npy_bytes("(-1,)", 0), "neg.npy"); }),
              HasSubstr("neg.npy: .npy header: 'shape' has a negative dimension: '-1,)"));
}

TEST(Weights, DecodeNpyFromMemoryIsLoadNpy) {
  TempDir dir;
  nn::Tensor t({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6.5f});
  nn::save_npy(dir / "t.npy", t);
  nn::Tensor back = nn::decode_npy(nn::read_file(dir / "t.npy"), "t.npy");
  EXPECT_EQ(back.shape(), t.shape());
  EXPECT_EQ(std::vector<float>(back.span().begin(), back.span().end()), std::vector<float>(t.span().begin(), t.span().end()));
  EXPECT_THAT(testing_nn::error_of([&] { nn::decode_npy(npy_bytes("(2,)", 4), "mem.npy"); }),
              HasSubstr("mem.npy: holds 4 bytes of data, but the shape (2,) needs 8"));
}

// A .npy file by hand: the preamble of version `major`.0 (a 2-byte header
// length in 1.0, 4 bytes in 2.0 and 3.0), `header` as given, then the float32
// values 0, 1, 2, ... (`floats` of them).
std::vector<std::uint8_t> npy_file(const std::string& header, std::size_t floats, int major = 1) {
  std::string file = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  for (int i = 0; i < (major == 1 ? 2 : 4); ++i) file += static_cast<char>(header.size() >> (8 * i));
  file += header;
  for (std::size_t i = 0; i < floats; ++i) {
    const float v = static_cast<float>(i);
    file.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  return {file.begin(), file.end()};
}

std::string decode_error(const std::string& header, std::size_t floats = 6, int major = 1) {
  return testing_nn::error_of([&] { nn::decode_npy(npy_file(header, floats, major), "x.npy"); });
}

TEST(Weights, NpyHeaderCommentCannotHideTheRealDescr) {
  // NumPy reads the header as a Python literal, comments skipped: this file is
  // float64, shape (5,), 40 bytes. A reader that searched the text for
  // "'descr': '<f4'" and "'shape': (" found both in the comment and read the
  // 40 bytes as 10 floats.
  EXPECT_THAT(decode_error("{'descr': '<f8', # 'descr': '<f4', 'shape': (10,)\n"
                           " 'fortran_order': False, 'shape': (5,), }\n",
                           10),
              HasSubstr("x.npy: .npy header: expected a key after the value of 'descr', not '# 'descr': '<f4', 'shape...' "
                        "(a comment: NumPy skips it, this reader does not read comments)"));
  // After the dict too: NumPy reads '<f8', shape (5,).
  EXPECT_THAT(decode_error("{'descr': '<f8', 'fortran_order': False, 'shape': (5,), } # 'descr': '<f4'\n", 5),
              HasSubstr("x.npy: .npy header: expected only spaces and newlines after the closing '}', not '# 'descr'"));
}

TEST(Weights, NpyHeaderIsReadAsNumPyReadsIt) {
  // Any key order, either quote, spaces and newlines between tokens, trailing
  // commas in the dict and the tuple, padding after it; and versions 2.0 and 3.0.
  struct Case { std::string header; int major; };
  const std::vector<Case> cases = {
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" + std::string(50, ' ') + "\n", 1},
      {"{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", 1},
      {"{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,3)}", 1},
      {"{'descr':'<f4','fortran_order':False,'shape':(2,3)}", 1},
      {"\t {  'fortran_order' :False ,\n  'shape' : ( 2 , 3 , ) ,\r\n 'descr'\t: \"<f4\" , }  \n \n", 1},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 2},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 3},
  };
  for (const Case& c : cases) {
    const nn::Tensor t = nn::decode_npy(npy_file(c.header, 6, c.major), "x.npy");
    EXPECT_EQ(t.shape(), nn::Shape({2, 3})) << c.header;
    EXPECT_EQ(std::vector<float>(t.span().begin(), t.span().end()), (std::vector<float>{0, 1, 2, 3, 4, 5})) << c.header;
  }
  EXPECT_EQ(nn::decode_npy(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", 6), "x.npy").shape(),
            nn::Shape({6}));
  EXPECT_EQ(nn::decode_npy(npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 1, 3)}", 6), "x.npy").shape(),
            nn::Shape({1, 2, 1, 3}));
}

TEST(Weights, NpyHeaderFaultsNameTheField) {
  // Each header is wrong in one place; the data (6 floats) fits the shape (2, 3).
  const std::string descr = "'descr': '<f4'", order = "'fortran_order': False", shape = "'shape': (2, 3)";
  auto dict = [](const std::string& a, const std::string& b, const std::string& c) {
    return "{" + a + ", " + b + ", " + c + "}\n";
  };
  struct Case { std::string header, error; };
  const std::vector<Case> cases = {
      {dict(descr, descr, shape), "x.npy: .npy header: 'descr' appears twice"},
      {dict(descr, order, "'order': 1"), "x.npy: .npy header: unknown key 'order'; a .npy header has 'descr', "
                                         "'fortran_order' and 'shape'"},
      {"{" + descr + ", " + shape + "}", "x.npy: .npy header: 'fortran_order' is missing"},
      {"{}", "x.npy: .npy header: 'descr' is missing"},
      {dict("'descr': '<f8'", order, shape), "x.npy: .npy header: 'descr' is '<f8'; only '<f4' (float32, "
                                             "little-endian) is read"},
      {dict("'descr': 'float32'", order, shape), "x.npy: .npy header: 'descr' is 'float32'; only '<f4'"},
      {dict("'descr': [('a', '<f4')]", order, shape), "expected a string such as '<f4' in the value of 'descr'"},
      {dict("'descr': '<f4\xe9'", order, shape), "x.npy: .npy header: byte 14 is 0xe9; a header is printable ASCII"},
      {"{'descr': '<f4\n, " + order + ", " + shape + "}", "unterminated string in the value of 'descr'"},
      {dict(descr, "'fortran_order': True", shape), "x.npy: .npy header: 'fortran_order' is True; only C-ordered"},
      {dict(descr, "'fortran_order': 0", shape), "expected True or False in the value of 'fortran_order', not '0, "},
      {dict(descr, order, "'shape': (2.0, 3)"), "x.npy: .npy header: 'shape': the dimension 2.0 is not a plain "
                                                "decimal integer"},
      {dict(descr, order, "'shape': (2, 3L)"), "'shape': the dimension 3L is not a plain decimal integer"},
      {dict(descr, order, "'shape': (02, 3)"), "'shape': the dimension 02 has a leading zero"},
      {dict(descr, order, "'shape': (-2, 3)"), "x.npy: .npy header: 'shape' has a negative dimension: '-2, 3)}"},
      {dict(descr, order, "'shape': (18446744073709551616, 3)"),
       "x.npy: .npy header: 'shape': the dimension 18446744073709551616 does not fit in 64 bits"},
      {dict(descr, order, "'shape': (4294967296, 4294967296, 2)"),
       "x.npy: the shape (4294967296, 4294967296, 2) has more elements than fit in memory"},
      {dict(descr, order, "'shape': (6)"), "x.npy: .npy header: 'shape' is (6), an integer; a 1-D shape is written (6,)"},
      {dict(descr, order, "'shape': [2, 3]"), "expected a tuple such as (10,) or (3, 3, 1, 32) in the value of 'shape'"},
      {dict(descr, order, "'shape': (2 3)"), "expected ',' or ')' in the value of 'shape', not '3)}"},
      {dict(descr, order, "'shape': ()"), "x.npy: .npy header: 'shape' () has rank 0; the course's tensors have rank 1 to 4"},
      {dict(descr, order, shape) + "x", "expected only spaces and newlines after the closing '}', not 'x'"},
      {dict(descr, order, shape) + "  ", "spaces after the last newline of the header"},
      {"{" + descr + " " + order + ", " + shape + "}", "expected ',' or '}' after the value of 'descr', not ''fortran"},
      {"{" + descr + ", " + order + ", " + shape, "expected ',' or '}' after the value of 'shape', not the end of the header"},
      {"{" + descr + ",, " + order + ", " + shape + "}", "expected a key after the value of 'descr', not ', 'fortran"},
      {"[" + descr + "]", "x.npy: .npy header: expected '{' (a dict) at the start, not '['descr"},
  };
  for (const Case& c : cases) EXPECT_THAT(decode_error(c.header), HasSubstr(c.error)) << c.header;
  // The preamble.
  auto file = npy_file(dict(descr, order, shape), 6);
  file[6] = 4;
  EXPECT_THAT(testing_nn::error_of([&] { nn::decode_npy(file, "x.npy"); }),
              HasSubstr("x.npy: unsupported .npy version 4.0 (1.0, 2.0 and 3.0 are read)"));
  file[6] = 1, file[7] = 1;
  EXPECT_THAT(testing_nn::error_of([&] { nn::decode_npy(file, "x.npy"); }),
              HasSubstr("x.npy: unsupported .npy version 1.1"));
  file = npy_file(dict(descr, order, shape), 0, 2);
  file[11] = 1;  // a header of 16 MiB and more
  EXPECT_THAT(testing_nn::error_of([&] { nn::decode_npy(file, "x.npy"); }),
              HasSubstr("x.npy: file ends inside the .npy header"));
}

}  // namespace

namespace {

TEST(Fused, ConvReluPoolMatchesTheLayersOneByOne) {
  // Random images and kernels, several shapes, 1 to 3 threads: the fused
  // step's output equals conv -> ReLU -> pool exactly (the same kernels and
  // comparisons), and its kernel, bias and input gradients equal those of
  // pool backward -> ReLU backward -> conv backward up to float summation order.
  struct Case { std::size_t n, h, w, c_in, c_out, pool; };
  const std::size_t before = nn::thread_count();
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (std::size_t threads : {1u, 2u, 3u}) {
    nn::set_thread_count(threads);
    for (auto [n, h, w, c_in, c_out, pool] :
         {Case{5, 28, 28, 1, 32, 2}, Case{3, 11, 9, 1, 16, 2}, Case{2, 12, 12, 1, 16, 3}, Case{2, 11, 13, 3, 8, 2}}) {
      SCOPED_TRACE(fmt::format("threads {} n {} {}x{}x{} c_out {} pool {}", threads, n, h, w, c_in, c_out, pool));
      nn::Conv2D conv({.filters = c_out, .kernel = 3, .input_channels = c_in, .activation = nn::Activation::relu,
                       .seed = n + h});
      for (float& v : conv.bias.value.span()) v = 0.1f * u(rng);
      nn::Tensor x({n, h, w, c_in});
      for (float& v : x.span()) v = u(rng);
      const nn::Tensor maps(conv.forward(x).tensor());  // a copy of the layer's output
      nn::Tensor pooled = nn::max_pool2d_forward(maps, pool);
      nn::Tensor y(pooled.shape());
      std::vector<std::uint8_t> where;
      nn::conv2d_relu_maxpool_forward(x, conv.kernel.value, conv.bias.value, pool, conv.options().variant, y, where);
      EXPECT_TRUE(testing_nn::all_close(y, pooled, 0, 0));

      nn::Tensor dy(pooled.shape());
      for (float& v : dy.span()) v = u(rng);
      const nn::ConstView dx_expected = conv.backward(x, maps, nn::max_pool2d_backward(maps, dy, pool));
      nn::Tensor dkernel, dbias, dx;
      nn::conv2d_relu_maxpool_backward(x, conv.kernel.value, y, where, dy, pool, conv.options().variant, dkernel,
                                       dbias, &dx);
      EXPECT_TRUE(testing_nn::all_close(dkernel, conv.kernel.grad, 1e-5, 1e-4));
      EXPECT_TRUE(testing_nn::all_close(dbias, conv.bias.grad, 1e-5, 1e-4));
      EXPECT_TRUE(testing_nn::all_close(dx, dx_expected, 1e-5, 1e-4)) << "the input gradient";
    }
  }
  nn::set_thread_count(before);
}

// The fused step's backward pass on its own, against central differences of
// L = sum(r * maxpool(relu(conv(x)))) computed in double by the naive kernels
// (tests/gradcheck.cpp), for every kernel weight and bias. The double chain's
// own analytic gradient is checked first at 1e-6; the fused float one then at
// float tolerance. Inputs are chosen with no pre-activation and no pooling
// near-tie within reach of a step.
TEST(Fused, BackwardMatchesCentralDifferencesInDouble) {
  struct Case { std::size_t n, h, w, c_in, c_out, pool; nn::Conv2DVariant variant; };
  const std::size_t before = nn::thread_count();
  const double eps = 1e-6;
  for (std::size_t threads : {1u, 3u}) {
    nn::set_thread_count(threads);
    std::uint64_t seed = 60;  // the same data for every thread count
    for (auto [n, h, w, c_in, c_out, pool, variant] :
         {Case{3, 28, 28, 1, 8, 2, nn::Conv2DVariant::direct3x3}, Case{2, 11, 9, 2, 16, 2, nn::Conv2DVariant::threaded},
          Case{2, 12, 12, 1, 8, 3, nn::Conv2DVariant::direct3x3}}) {
      SCOPED_TRACE(fmt::format("threads {} n {} {}x{}x{} c_out {} pool {} {}", threads, n, h, w, c_in, c_out, pool,
                               nn::conv2d_variant_name(variant)));
      const nn::Tensor x = testing_nn::random_tensor({n, h, w, c_in}, seed++, 0.0f, 1.0f);
      const nn::Tensor kernel = testing_nn::random_tensor({3, 3, c_in, c_out}, seed++, -0.5f, 0.5f);
      const nn::Tensor bias = testing_nn::random_tensor({c_out}, seed++, -0.1f, 0.1f);
      const nn::Conv2DDims d = nn::conv2d_dims(x.shape(), kernel.shape());
      const nn::Tensor r = testing_nn::random_tensor(nn::max_pool2d_output_shape(d.y_shape(), pool), seed++);
      const auto xd = testing_nn::as_double(x), rd = testing_nn::as_double(r);
      auto kd = testing_nn::as_double(kernel), bd = testing_nn::as_double(bias);

      const auto pass = testing_nn::conv_relu_pool(d, pool, xd, kd, bd);
      // A step of eps moves a pre-activation by at most eps (|x| < 1).
      ASSERT_GT(testing_nn::smallest_magnitude(pass.z), 4 * eps) << "a unit at the ReLU's kink: other seeds";
      ASSERT_GT(testing_nn::smallest_pool_gap(d.y_shape(), pool, pass.a), 4 * eps) << "a near-tie: other seeds";
      auto loss = [&, pool = pool] {  // a copy: clang 14 cannot capture a structured binding
        const auto p = testing_nn::conv_relu_pool(d, pool, xd, kd, bd);
        double l = 0;
        for (std::size_t i = 0; i < p.pooled.size(); ++i) l += rd[i] * p.pooled[i];
        return l;
      };
      const auto dk_numeric = testing_nn::central_differences(kd, loss, eps);
      const auto db_numeric = testing_nn::central_differences(bd, loss, eps);
      std::vector<double> dk, db;
      testing_nn::conv_relu_pool_backward(d, pool, xd, kd, pass, rd, dk, db);
      EXPECT_TRUE(testing_nn::all_close(std::span<const double>(dk), dk_numeric, 1e-8, 1e-6)) << "double dkernel";
      EXPECT_TRUE(testing_nn::all_close(std::span<const double>(db), db_numeric, 1e-8, 1e-6)) << "double dbias";

      nn::Tensor y(r.shape());
      std::vector<std::uint8_t> where;
      nn::conv2d_relu_maxpool_forward(x, kernel, bias, pool, variant, y, where);
      nn::Tensor dkernel, dbias;
      nn::conv2d_relu_maxpool_backward(x, kernel, y, where, r, pool, variant, dkernel, dbias, nullptr);
      // Float sums of up to n * OH * OW terms: within 2e-5 of the largest
      // gradient, or 1e-4 relative.
      auto largest = [](const std::vector<double>& v) {
        double m = 0;
        for (double e : v) m = std::max(m, std::abs(e));
        return m;
      };
      EXPECT_TRUE(testing_nn::all_close(std::span<const double>(testing_nn::as_double(dkernel)), dk_numeric,
                                        2e-5 * largest(dk_numeric), 1e-4)) << "fused dkernel";
      EXPECT_TRUE(testing_nn::all_close(std::span<const double>(testing_nn::as_double(dbias)), db_numeric,
                                        2e-5 * largest(db_numeric), 1e-4)) << "fused dbias";
    }
  }
  nn::set_thread_count(before);
}

TEST(Fused, TheModelTrainsTheSameWithAndWithoutFusion) {
  Data d = subset(96, 10);
  auto gradients = [&](bool fusion) {
    nn::Sequential model = nn::make_mnist_model(8);
    model.set_fusion(fusion);
    const double loss = model.compute_gradients(d.x_train, d.y_train);
    std::vector<nn::Tensor> g;
    for (const nn::Parameter* p : model.parameters()) g.push_back(p->grad);
    return std::pair{loss, g};
  };
  auto [loss_fused, g_fused] = gradients(true);
  auto [loss_plain, g_plain] = gradients(false);
  EXPECT_DOUBLE_EQ(loss_fused, loss_plain);
  ASSERT_EQ(g_fused.size(), g_plain.size());
  for (std::size_t i = 0; i < g_fused.size(); ++i)
    EXPECT_TRUE(testing_nn::all_close(g_fused[i], g_plain[i], 1e-6, 1e-4)) << "gradient " << i;
}

}  // namespace

// ---- A weights folder is saved and loaded as one set ------------------------

namespace {

namespace fs = std::filesystem;

// Every weight of the model set to `value`: the identity of a saved set.
void fill_weights(nn::Sequential& model, float value) {
  for (auto& nt : model.named_parameters()) nt.parameter->value.fill(value);
}

// The one value every weight of the model holds, or NaN when they differ (a
// set mixed from two saves).
float the_value_of(nn::Sequential& model) {
  const float first = model.named_parameters().front().parameter->value.data()[0];
  for (auto& nt : model.named_parameters())
    for (float v : nt.parameter->value.span())
      if (v != first) return NAN;
  return first;
}

// The names in `dir`'s parent that start with "." + dir's name: the temporaries of a save.
std::vector<std::string> temporaries_beside(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir.parent_path()))
    if (e.path().filename().string().starts_with("." + dir.filename().string())) out.push_back(e.path().filename());
  return out;
}

TEST(WeightSet, AWriteThatFailsMidwayLeavesTheOldSetIntactAndLoadable) {
  TempDir tmp;
  const fs::path dir = tmp / "weights";
  nn::Sequential model = nn::make_mnist_model(1);
  fill_weights(model, 1.0f);
  model.save(dir);
  fill_weights(model, 2.0f);
  nn::fail_writes_after(3);  // the disk fills during the fourth file
  const std::string error = testing_nn::error_of([&] { model.save(dir); });
  nn::fail_writes_after(-1);
  EXPECT_THAT(error, HasSubstr("write failed: No space left on device"));
  nn::Sequential fresh = nn::make_mnist_model(2);
  ASSERT_EQ(testing_nn::error_of([&] { fresh.load(dir); }), "");
  EXPECT_EQ(the_value_of(fresh), 1.0f) << "the old set, whole";
  EXPECT_EQ(fmt::format("{}", fmt::join(temporaries_beside(dir), " ")), "") << "temporaries left beside the folder";
}

TEST(WeightSet, AProcessKilledMidSaveLeavesTheOldSetOrTheNewOneNeverAMix) {
  TempDir tmp;
  const fs::path dir = tmp / "weights";
  nn::Sequential model = nn::make_mnist_model(1);
  fill_weights(model, 0.0f);
  const auto start = std::chrono::steady_clock::now();
  model.save(dir);
  model.save(dir);
  const long save_us =
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start).count() / 2;
  std::mt19937_64 rng(11);
  float before = 0.0f;  // the set in the folder before this run's child
  for (int run = 1; run <= 25; ++run) {
    int done[2];  // the child writes one byte to done[1] after each complete save
    ASSERT_EQ(::pipe(done), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {  // saves the sets 1000*run + 1, + 2, ... until it is killed
      ::close(done[0]);
      try {
        for (int k = 1;; ++k) {
          fill_weights(model, static_cast<float>(1000 * run + k));
          model.save(dir);
          if (::write(done[1], "s", 1) != 1) break;
        }
      } catch (...) {
      }
      ::_exit(2);
    }
    ::close(done[1]);
    // Let 0, 1 or 2 saves complete, then kill at a random moment within about
    // one save's time (fsync makes a save's time depend on the disk).
    const int complete = std::uniform_int_distribution<int>(0, 2)(rng);
    char byte = 0;
    for (int k = 0; k < complete; ++k) ASSERT_EQ(::read(done[0], &byte, 1), 1) << "the saving child died in run " << run;
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<long>(0, save_us)(rng)));
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ::close(done[0]);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the saving child stopped by itself in run " << run;
    nn::Sequential fresh = nn::make_mnist_model(2);
    ASSERT_EQ(testing_nn::error_of([&] { fresh.load(dir); }), "") << "run " << run;
    const float v = the_value_of(fresh);
    ASSERT_FALSE(std::isnan(v)) << "run " << run << ": the folder mixes two saves";
    // The set the kill found complete: the one before, or one of this child's, at least its last complete one.
    if (complete == 0)
      EXPECT_TRUE(v == before || v >= static_cast<float>(1000 * run + 1)) << "run " << run << ": " << v;
    else
      EXPECT_GE(v, static_cast<float>(1000 * run + complete)) << "run " << run << ": a completed save was lost";
    before = v;
  }
  // The next save cleans up what the killed ones left beside the folder.
  fill_weights(model, 5.0f);
  model.save(dir);
  EXPECT_EQ(fmt::format("{}", fmt::join(temporaries_beside(dir), " ")), "") << "temporaries left beside the folder";
  nn::Sequential fresh = nn::make_mnist_model(2);
  fresh.load(dir);
  EXPECT_EQ(the_value_of(fresh), 5.0f);
}

TEST(WeightSet, AFolderMixedFromTwoSavesIsRefused) {
  TempDir tmp;
  nn::Sequential model = nn::make_mnist_model(1);
  fill_weights(model, 1.0f);
  model.save(tmp / "a");
  fill_weights(model, 2.0f);
  model.save(tmp / "b");
  fs::copy_file(tmp / "b" / "dense.kernel.npy", tmp / "a" / "dense.kernel.npy", fs::copy_options::overwrite_existing);
  nn::Sequential fresh = nn::make_mnist_model(2);
  const std::string error = testing_nn::error_of([&] { fresh.load(tmp / "a"); });
  EXPECT_THAT(error, HasSubstr((tmp / "a" / "dense.kernel.npy").string()));
  EXPECT_THAT(error, HasSubstr("does not match the manifest"));
  // Without its manifest a folder is not a set this course saved (or one whose save never finished).
  fs::remove(tmp / "b" / "manifest.txt");
  EXPECT_THAT(testing_nn::error_of([&] { fresh.load(tmp / "b"); }),
              HasSubstr((tmp / "b").string() + ": no manifest.txt"));
}

TEST(WeightSet, NonFiniteWeightsAreRefusedNamingTheFile) {
  TempDir tmp;
  for (float bad : {NAN, INFINITY}) {
    nn::Sequential model = nn::make_mnist_model(1);
    model.named_parameters()[3].parameter->value.data()[7] = bad;  // dense.bias
    model.save(tmp / "w");
    nn::Sequential fresh = nn::make_mnist_model(2);
    EXPECT_THAT(testing_nn::error_of([&] { fresh.load(tmp / "w"); }),
                HasSubstr((tmp / "w" / "dense.bias.npy").string() + ": value 7 is " + (std::isnan(bad) ? "NaN" : "inf")));
  }
}

TEST(WeightSet, StaleTemporariesAreRemovedAndForeignFilesAreNeverDeleted) {
  TempDir tmp;
  const fs::path dir = tmp / "weights";
  nn::Sequential model = nn::make_mnist_model(1);
  // What a save killed long ago left: its process no longer exists.
  fs::create_directories(tmp / ".weights.saving-999999999");
  nn::write_file_atomic(tmp / ".weights.saving-999999999" / "conv2d.kernel.npy", std::string("half"));
  model.save(dir);
  EXPECT_FALSE(fs::exists(tmp / ".weights.saving-999999999"));
  // A folder that holds something else than weights is not replaced.
  nn::write_file_atomic(dir / "notes.txt", std::string("mine"));
  EXPECT_THAT(testing_nn::error_of([&] { model.save(dir); }), HasSubstr(dir.string() + ": holds notes.txt, which its manifest.txt does not list; a save would "
                                  "delete it: refusing to replace the folder"));
  EXPECT_TRUE(fs::exists(dir / "notes.txt"));
  EXPECT_TRUE(fs::exists(dir / "conv2d.kernel.npy"));
}

// A weights folder made read-only between two saves: the save fails, naming
// the folder and the cause, and leaves the old set where it was; every later
// save says the same (it said "cannot create folder: Success").
TEST(WeightSet, AReadOnlyFolderKeepsItsSetAndTheMessageSaysWhy) {
  if (::geteuid() == 0)
    GTEST_SKIP() << "root ignores chmod 555; WeightSet.AFailedStepLeavesTheOldSetAndNamesTheCause fails the same step "
                    "through the test hook";
  TempDir tmp;
  const fs::path dir = tmp / "w";
  nn::Sequential model = nn::make_mnist_model(1);
  fill_weights(model, 1.0f);
  model.save(dir);
  fs::permissions(dir, fs::perms::owner_read | fs::perms::owner_exec | fs::perms::group_read |
                           fs::perms::group_exec | fs::perms::others_read | fs::perms::others_exec);
  fill_weights(model, 2.0f);
  for (int k = 0; k < 2; ++k) {
    EXPECT_THAT(testing_nn::error_of([&] { model.save(dir); }),
                HasSubstr(dir.string() + ": cannot replace the files in it: Permission denied")) << "save " << k;
    nn::Sequential fresh = nn::make_mnist_model(2);
    ASSERT_EQ(testing_nn::error_of([&] { fresh.load(dir); }), "");
    EXPECT_EQ(the_value_of(fresh), 1.0f) << "the old set, in place";
    EXPECT_EQ(fmt::format("{}", fmt::join(temporaries_beside(dir), " ")), "") << "temporaries left beside the folder";
  }
  fs::permissions(dir, fs::perms::owner_write, fs::perm_options::add);
  model.save(dir);
  nn::Sequential fresh = nn::make_mnist_model(2);
  fresh.load(dir);
  EXPECT_EQ(the_value_of(fresh), 2.0f);
}

// Every step of a save that the system can refuse, failed through the test
// hook (root ignores chmod 555, and CI runs as root): the save fails with the
// system's reason, the old set stays in place whole, nothing is left beside
// it, and the next save works.
TEST(WeightSet, AFailedStepLeavesTheOldSetAndNamesTheCause) {
  TempDir tmp;
  const fs::path dir = tmp / "w";
  nn::Sequential model = nn::make_mnist_model(1);
  fill_weights(model, 1.0f);
  model.save(dir);
  const std::pair<const char*, int> steps[] = {{"remove", EACCES}, {"create", ENOSPC}, {"swap", EIO}};
  for (const auto& [step, error] : steps) {
    fill_weights(model, 2.0f);
    nn::fail_folder_step(step, error);
    for (int k = 0; k < 2; ++k) {  // the second save says the same as the first
      const std::string message = testing_nn::error_of([&] { model.save(dir); });
      EXPECT_THAT(message, HasSubstr(std::strerror(error))) << step << ", save " << k;
      EXPECT_THAT(message, HasSubstr(tmp.path().string())) << step << ", save " << k;
      nn::Sequential fresh = nn::make_mnist_model(2);
      ASSERT_EQ(testing_nn::error_of([&] { fresh.load(dir); }), "") << step;
      EXPECT_EQ(the_value_of(fresh), 1.0f) << step << ": the old set, in place";
      EXPECT_EQ(fmt::format("{}", fmt::join(temporaries_beside(dir), " ")), "") << step << ": temporaries left";
    }
    nn::fail_folder_step("", 0);
    fill_weights(model, 1.0f);
    ASSERT_EQ(testing_nn::error_of([&] { model.save(dir); }), "") << "after " << step;
  }
  nn::fail_folder_step("remove", EACCES);
  EXPECT_EQ(testing_nn::error_of([&] { model.save(dir); }),
            dir.string() + ": cannot replace the files in it: Permission denied; the folder is left as it was");
  nn::fail_folder_step("", 0);
}

// A save replaces only the files its folder's manifest lists: a user's own
// file is never deleted, even when its name looks like a weight file's.
TEST(WeightSet, ASaveReplacesOnlyTheFilesTheFoldersManifestLists) {
  TempDir tmp;
  const fs::path dir = tmp / "weights";
  nn::Sequential model = nn::make_mnist_model(1);
  fill_weights(model, 1.0f);
  model.save(dir);
  nn::write_file_atomic(dir / "my.kernel.npy", std::string("mine"));
  fill_weights(model, 2.0f);
  EXPECT_THAT(testing_nn::error_of([&] { model.save(dir); }),
              HasSubstr(dir.string() + ": holds my.kernel.npy, which its manifest.txt does not list"));
  EXPECT_EQ(nn::read_file(dir / "my.kernel.npy").size(), 4u) << "the user's file";
  nn::Sequential fresh = nn::make_mnist_model(2);
  ASSERT_EQ(testing_nn::error_of([&] { fresh.load(dir); }), "");
  EXPECT_EQ(the_value_of(fresh), 1.0f) << "the old set, untouched";

  // Without a manifest, only the files this save writes (an older version's
  // set) may be replaced; a folder with anything else is not a set of weights.
  const fs::path other = tmp / "other";
  fs::create_directories(other);
  nn::save_npy(other / "conv2d.kernel.npy", model.named_parameters()[0].parameter->value);
  nn::write_file_atomic(other / "mine.bias.npy", std::string("mine"));
  EXPECT_THAT(testing_nn::error_of([&] { model.save(other); }),
              HasSubstr(other.string() + ": holds mine.bias.npy, which is not a weight file of this model"));
  EXPECT_TRUE(fs::exists(other / "conv2d.kernel.npy"));
  EXPECT_TRUE(fs::exists(other / "mine.bias.npy"));
  EXPECT_TRUE(temporaries_beside(dir).empty());
  EXPECT_TRUE(temporaries_beside(other).empty());
}

// Two trainers that save into the same new folder at once: both saves
// succeed, and the folder holds one of the two sets, whole.
TEST(WeightSet, TwoSavesIntoTheSameNewFolderAtOnceBothSucceed) {
  TempDir tmp;
  nn::Sequential model = nn::make_mnist_model(1);
  for (int run = 0; run < 15; ++run) {  // two processes
    const fs::path dir = tmp / fmt::format("p{}", run);
    int go[2], errors[2];
    ASSERT_EQ(::pipe(go), 0);
    ASSERT_EQ(::pipe(errors), 0);
    pid_t children[2];
    for (int k = 0; k < 2; ++k) {
      children[k] = ::fork();
      ASSERT_GE(children[k], 0);
      if (children[k] == 0) {
        ::close(go[1]);
        ::close(errors[0]);
        char byte;
        (void)!::read(go[0], &byte, 1);  // both start when the parent closes the pipe
        fill_weights(model, static_cast<float>(k + 1));
        const std::string error = testing_nn::error_of([&] { model.save(dir); });
        (void)!::write(errors[1], error.data(), error.size());
        ::_exit(error.empty() ? 0 : 1);
      }
    }
    ::close(go[0]);
    ::close(errors[1]);
    ::close(go[1]);
    std::string error;
    char buffer[512];
    for (ssize_t n; (n = ::read(errors[0], buffer, sizeof buffer)) > 0;) error.append(buffer, static_cast<std::size_t>(n));
    ::close(errors[0]);
    for (pid_t child : children) {
      int status = 0;
      ::waitpid(child, &status, 0);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "run " << run << ": " << error;
    }
    nn::Sequential fresh = nn::make_mnist_model(2);
    ASSERT_EQ(testing_nn::error_of([&] { fresh.load(dir); }), "") << "run " << run;
    const float v = the_value_of(fresh);
    EXPECT_TRUE(v == 1.0f || v == 2.0f) << "run " << run << ": " << v;
    EXPECT_EQ(fmt::format("{}", fmt::join(temporaries_beside(dir), " ")), "") << "run " << run;
  }
  for (int run = 0; run < 15; ++run) {  // two threads of one process
    const fs::path dir = tmp / fmt::format("t{}", run);
    nn::Sequential a = nn::make_mnist_model(1), b = nn::make_mnist_model(1);
    fill_weights(a, 1.0f);
    fill_weights(b, 2.0f);
    std::string error_a, error_b;
    std::thread other([&] { error_b = testing_nn::error_of([&] { b.save(dir); }); });
    error_a = testing_nn::error_of([&] { a.save(dir); });
    other.join();
    EXPECT_EQ(error_a, "") << "run " << run;
    EXPECT_EQ(error_b, "") << "run " << run;
    nn::Sequential fresh = nn::make_mnist_model(2);
    ASSERT_EQ(testing_nn::error_of([&] { fresh.load(dir); }), "") << "run " << run;
    const float v = the_value_of(fresh);
    EXPECT_TRUE(v == 1.0f || v == 2.0f) << "run " << run << ": " << v;
    EXPECT_EQ(fmt::format("{}", fmt::join(temporaries_beside(dir), " ")), "") << "run " << run;
  }
}

// A load while another process saves into the folder again and again gets
// the old set or the new one, whole: never an error, never a mix.
TEST(WeightSet, ALoadWhileAnotherProcessSavesGetsOneWholeSet) {
  TempDir tmp;
  const fs::path dir = tmp / "weights";
  nn::Sequential model = nn::make_mnist_model(1);
  fill_weights(model, 1.0f);
  model.save(dir);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // saves the sets 2, 1, 2, 1, ... until it is killed
    try {
      for (int k = 0;; ++k) {
        fill_weights(model, k % 2 == 0 ? 2.0f : 1.0f);
        model.save(dir);
      }
    } catch (...) {
    }
    ::_exit(2);
  }
  // The loads go on until they have seen the set change 20 times (each change
  // means a save finished between two loads), however slowly the machine
  // runs the two processes: a fixed number of loads saw only 10 changes when
  // ctest ran other tests beside this one. The deadline only stops a child
  // that never saves.
  int changes = 0, loads = 0;
  float last = 1.0f;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while ((changes < 20 || loads < 300) && std::chrono::steady_clock::now() < deadline) {
    nn::Sequential fresh = nn::make_mnist_model(2);
    const std::string error = testing_nn::error_of([&] { fresh.load(dir); });
    ++loads;
    EXPECT_EQ(error, "") << "load " << loads;
    if (!error.empty()) continue;
    const float v = the_value_of(fresh);
    EXPECT_TRUE(v == 1.0f || v == 2.0f) << "load " << loads << ": " << v << " (NaN: a mix of two sets)";
    changes += v != last;
    last = v;
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status)) << "the saving child stopped by itself";
  EXPECT_GE(changes, 20) << "in 60 s and " << loads << " loads, the saving child finished only " << changes << " saves between them";
}

}  // namespace

namespace {

TEST(WeightSet, TheManifestRecordsTheEpochAndItsFormatIsChecked) {
  TempDir tmp;
  nn::Sequential model = nn::make_mnist_model(1);
  model.save(tmp / "w", 7);
  nn::Sequential fresh = nn::make_mnist_model(2);
  EXPECT_EQ(fresh.load(tmp / "w"), 7);
  const auto manifest = nn::read_file(tmp / "w" / "manifest.txt");
  std::string text(manifest.begin(), manifest.end());
  EXPECT_THAT(text, HasSubstr("\nfile conv2d.kernel.npy 1280 crc32 "));
  text.replace(text.find("format 1"), 8, "format 2");
  nn::write_file_atomic(tmp / "w" / "manifest.txt", text);
  EXPECT_THAT(testing_nn::error_of([&] { fresh.load(tmp / "w"); }), HasSubstr("manifest.txt: format 2 is not the 1 this version reads"));
}

}  // namespace

namespace {

TEST(WeightSet, AFolderAnOlderVersionWroteIsReplacedWhole) {
  // Older versions wrote the .npy files straight into the folder, without a
  // manifest (and a killed write could leave a .npy.tmp).
  TempDir tmp;
  const fs::path dir = tmp / "weights";
  nn::Sequential model = nn::make_mnist_model(1);
  fs::create_directories(dir);
  for (auto& nt : model.named_parameters()) nn::save_npy(dir / (nt.name + ".npy"), nt.parameter->value);
  nn::write_file_atomic(dir / "dense.kernel.npy.tmp", std::string("half a file"));
  nn::Sequential fresh = nn::make_mnist_model(2);
  EXPECT_THAT(testing_nn::error_of([&] { fresh.load(dir); }), HasSubstr("no manifest.txt"));
  fill_weights(model, 3.0f);
  model.save(dir, 1);
  EXPECT_FALSE(fs::exists(dir / "dense.kernel.npy.tmp"));
  EXPECT_EQ(fresh.load(dir), 1);
  EXPECT_EQ(the_value_of(fresh), 3.0f);
}

// Fusion is a step of the execution plan, wherever a Conv2D(relu) is directly
// followed by a MaxPooling2D, not only at the model's input: here the second
// pair needs its input gradient, which the fused step computes too. Fused and
// unfused plans give the same loss and gradients.
TEST(Fused, EveryConvPoolPairOfTheModelIsFused) {
  Data d = subset(16, 10);
  auto build = [] {
    nn::Sequential model({28, 28, 1});
    model.add(nn::Conv2D({.filters = 16, .kernel = 3, .activation = nn::Activation::relu, .seed = 1}));  // 26x26x16
    model.add(nn::MaxPooling2D({.pool = 2}));                                                          // 13x13x16
    model.add(nn::Conv2D({.filters = 8, .kernel = 3, .input_channels = 16, .activation = nn::Activation::relu,
                          .seed = 2}));                                                               // 11x11x8
    model.add(nn::MaxPooling2D({.pool = 2}));                                                          // 5x5x8
    model.add(nn::Flatten());
    model.add(nn::Dense({.units = 10, .input_dim = 200, .seed = 3}));
    // Non-zero biases: no unit sits exactly at the ReLU's kink.
    std::uint64_t seed = 40;
    for (nn::Parameter* p : model.parameters())
      if (p->name == "bias") p->value = testing_nn::random_tensor(p->shape(), seed++, -0.1f, 0.1f);
    return model;
  };
  nn::Sequential fused = build(), plain = build();
  plain.set_fusion(false);
  EXPECT_EQ(fused.plan(), (std::vector<std::string>{"conv2d+max_pooling2d", "conv2d_1+max_pooling2d_1", "flatten",
                                                    "dense"}));
  EXPECT_EQ(plain.plan(), (std::vector<std::string>{"conv2d", "max_pooling2d", "conv2d_1", "max_pooling2d_1",
                                                    "flatten", "dense"}));
  const double loss_fused = fused.compute_gradients(d.x_train, d.y_train);
  const double loss_plain = plain.compute_gradients(d.x_train, d.y_train);
  EXPECT_DOUBLE_EQ(loss_fused, loss_plain);  // the same forward values, bit for bit
  const auto a = fused.named_parameters(), b = plain.named_parameters();
  ASSERT_EQ(a.size(), 6u);
  for (std::size_t i = 0; i < a.size(); ++i) {
    double largest = 0;
    for (float g : b[i].parameter->grad.span()) largest = std::max(largest, std::abs(double(g)));
    ASSERT_GT(largest, 0.0) << b[i].name;
    EXPECT_TRUE(testing_nn::all_close(a[i].parameter->grad, b[i].parameter->grad, 1e-5 * largest, 1e-4)) << a[i].name;
  }
}

// The plan fuses what layers declare (Layer::fusion_role), not their C++
// types: a layer of its own that wraps a Conv2D and declares its role is fused
// with the MaxPooling2D after it (the plan used to dynamic_cast to Conv2D, and
// left this pair apart), and computes what the layers one by one compute.
class WrappedConv final : public nn::Layer {
 public:
  explicit WrappedConv(const nn::Conv2DOptions& o) : conv(o) {}
  nn::Conv2D conv;
  std::string type() const override { return "WrappedConv"; }
  std::string base_name() const override { return "wrapped_conv"; }
  void build(const nn::Shape& x) override { conv.build(x); }  // the Conv2D makes its kernel for x's channels
  nn::Shape output_shape(const nn::Shape& x) const override { return conv.output_shape(x); }
  nn::ConstView forward(const nn::Tensor& x) override { return conv.forward(x); }
  nn::ConstView backward(const nn::Tensor& x, const nn::Tensor& y, const nn::Tensor& dy, bool need_dx) override {
    return conv.backward(x, y, dy, need_dx);
  }
  std::vector<nn::Parameter*> parameters() override { return conv.parameters(); }
  nn::FusionRole fusion_role() override { return conv.fusion_role(); }
};

TEST(Fused, ThePlanFusesWhatLayersDeclare) {
  Data d = subset(16, 10);
  auto build = [](nn::Activation activation) {
    nn::Sequential model({28, 28, 1});
    model.add(WrappedConv({.filters = 8, .kernel = 3, .activation = activation, .seed = 1}));
    model.add(nn::MaxPooling2D({.pool = 2}));
    model.add(nn::Flatten());
    model.add(nn::Dense({.units = 10, .seed = 3}));
    return model;
  };
  nn::Sequential fused = build(nn::Activation::relu), plain = build(nn::Activation::relu);
  plain.set_fusion(false);
  EXPECT_EQ(fused.plan(), (std::vector<std::string>{"wrapped_conv+max_pooling2d", "flatten", "dense"}));
  EXPECT_EQ(plain.plan(), (std::vector<std::string>{"wrapped_conv", "max_pooling2d", "flatten", "dense"}));
  // A linear convolution declares no role: nothing to fuse.
  EXPECT_EQ(build(nn::Activation::linear).plan(),
            (std::vector<std::string>{"wrapped_conv", "max_pooling2d", "flatten", "dense"}));
  EXPECT_DOUBLE_EQ(fused.compute_gradients(d.x_train, d.y_train), plain.compute_gradients(d.x_train, d.y_train));
  const auto a = fused.named_parameters(), b = plain.named_parameters();
  for (std::size_t i = 0; i < a.size(); ++i) {
    double largest = 0;
    for (float g : b[i].parameter->grad.span()) largest = std::max(largest, std::abs(double(g)));
    EXPECT_TRUE(testing_nn::all_close(a[i].parameter->grad, b[i].parameter->grad, 1e-5 * largest, 1e-4)) << a[i].name;
  }
}

// ---- A layer the library does not know --------------------------------------
//
// Defined here and nowhere else: y = s * x with one weight s. That it trains,
// saves and loads in a Sequential shows a new layer needs no change in lib/.
class Scale final : public nn::Layer {
 public:
  explicit Scale(float s = 1.0f, bool wrong_sign = false) : scale("scale", nn::Tensor({1}, s)), wrong_sign_(wrong_sign) {}
  nn::Parameter scale;  // (1,)
  std::string type() const override { return "Scale"; }
  std::string base_name() const override { return "scale"; }
  nn::Shape output_shape(const nn::Shape& x) const override { return x; }
  nn::ConstView forward(const nn::Tensor& x) override {
    nn::ensure_shape(y_, x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y_[i] = scale.value[0] * x[i];
    return y_;
  }
  nn::ConstView backward(const nn::Tensor& x, const nn::Tensor&, const nn::Tensor& dy, bool need_dx) override {
    double ds = 0;  // dL/ds = sum(x * dy)
    for (std::size_t i = 0; i < x.size(); ++i) ds += static_cast<double>(x[i]) * dy[i];
    scale.grad[0] = static_cast<float>(wrong_sign_ ? -ds : ds);
    if (!need_dx) return {};
    nn::ensure_shape(dx_, x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) dx_[i] = scale.value[0] * dy[i];  // dL/dx = s * dy
    return dx_;
  }
  std::vector<nn::Parameter*> parameters() override { return {&scale}; }

 private:
  bool wrong_sign_;
  nn::Tensor y_, dx_;
};

TEST(CustomLayer, TrainsSavesAndLoadsWithoutChangingTheLibrary) {
  Data d = subset(256, 64);
  auto build = [] {
    nn::Sequential model({28, 28, 1});
    model.add(nn::Flatten());
    model.add(nn::Dense({.units = 10, .input_dim = 784, .seed = 4}));
    model.add(Scale(0.5f));  // scales the logits
    return model;
  };
  nn::Sequential model = build();
  EXPECT_THAT(model.summary(), HasSubstr("scale (Scale)"));
  EXPECT_EQ(model.param_count(), 7850u + 1u);
  ASSERT_EQ(model.named_parameters().back().name, "scale.scale");

  // The gradient of s, through the model: compute_gradients against a central
  // difference of the model's loss.
  const nn::Tensor x = nn::slice_batch(d.x_train, 0, 32), y = nn::slice_batch(d.y_train, 0, 32);
  nn::Parameter& s = *model.named_parameters().back().parameter;
  model.compute_gradients(x, y);
  const double analytic = s.grad[0];
  const float keep = s.value[0];
  s.value[0] = keep + 1e-2f;
  const double up = model.evaluate(x, y).loss;
  s.value[0] = keep - 1e-2f;
  const double down = model.evaluate(x, y).loss;
  s.value[0] = keep;
  EXPECT_NEAR(analytic, (up - down) / 2e-2, 1e-3 * std::abs(analytic) + 1e-5);

  // The optimizer moves s along with the Dense weights, and the loss goes down.
  model.compile(nn::make_optimizer("sgd", 0.1f));
  const double before = model.evaluate(d.x_train, d.y_train).loss;
  model.fit(d.x_train, d.y_train, {.epochs = 2, .batch_size = 32, .seed = 1});
  EXPECT_NE(s.value[0], 0.5f) << "the optimizer never updated the custom layer's weight";
  EXPECT_LT(model.evaluate(d.x_train, d.y_train).loss, before);

  // Saved under the parameter's own name, and loaded back into a fresh model.
  TempDir dir;
  model.save(dir.path(), 2);
  EXPECT_TRUE(std::filesystem::exists(dir / "scale.scale.npy"));
  nn::Sequential loaded = build();
  EXPECT_EQ(loaded.load(dir.path()), 2);
  EXPECT_EQ(loaded.named_parameters().back().parameter->value[0], s.value[0]);
  EXPECT_TRUE(same_bits(loaded.predict(d.x_test), model.predict(d.x_test)));
}

// y = s * x, with non-trainable state as BatchNormalization keeps its moving
// mean: `moving_mean` (3,) follows the first three logits' batch means while
// training when `track` is on, and is never touched by the optimizer.
class Tracker final : public nn::Layer {
 public:
  explicit Tracker(bool track) : track_(track) {}
  nn::Parameter scale{"scale", nn::Tensor({1}, 0.5f)};
  nn::Parameter moving_mean{"moving_mean", nn::Tensor({3}, std::vector<float>{0.25f, -1.0f, 2.0f}),
                            /*is_trainable=*/false};
  std::string type() const override { return "Tracker"; }
  std::string base_name() const override { return "tracker"; }
  nn::Shape output_shape(const nn::Shape& x) const override { return x; }
  nn::ConstView forward(const nn::Tensor& x) override {
    nn::ensure_shape(y_, x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y_[i] = scale.value[0] * x[i];
    if (training && track_)
      for (std::size_t k = 0; k < 3; ++k) {
        double mean = 0;
        for (std::size_t n = 0; n < x.dim(0); ++n) mean += x[n * x.dim(1) + k];
        moving_mean.value[k] = 0.9f * moving_mean.value[k] + 0.1f * static_cast<float>(mean / x.dim(0));
      }
    return y_;
  }
  nn::ConstView backward(const nn::Tensor& x, const nn::Tensor&, const nn::Tensor& dy, bool need_dx) override {
    double ds = 0;
    for (std::size_t i = 0; i < x.size(); ++i) ds += static_cast<double>(x[i]) * dy[i];
    scale.grad[0] = static_cast<float>(ds);
    if (!need_dx) return {};
    nn::ensure_shape(dx_, x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) dx_[i] = scale.value[0] * dy[i];
    return dx_;
  }
  std::vector<nn::Parameter*> parameters() override { return {&scale, &moving_mean}; }

 private:
  bool track_;
  nn::Tensor y_, dx_;
};

TEST(CustomLayer, NonTrainableStateIsCountedSavedLoadedAndNotTrained) {
  Data d = subset(256, 64);
  for (const std::string optimizer : {"sgd", "adam", "rmsprop"})
    for (const bool track : {false, true}) {
      auto build = [&] {
        nn::Sequential model({28, 28, 1});
        model.add(nn::Flatten());
        model.add(nn::Dense({.units = 10, .seed = 4}));  // 784 inputs: from Flatten, at add
        model.add(Tracker(track));
        return model;
      };
      nn::Sequential model = build();
      EXPECT_EQ(model.param_count(), 7850u + 1u + 3u);
      EXPECT_EQ(model.trainable_param_count(), 7850u + 1u);
      EXPECT_THAT(model.summary(), HasSubstr("tracker (Tracker)            (None, 10)                4\n"));
      EXPECT_THAT(model.summary(), HasSubstr("Total params: 7,854\nTrainable params: 7,851\nNon-trainable params: 3\n"));

      Tracker& layer = static_cast<Tracker&>(*model.layers().back());
      const nn::Tensor initial = layer.moving_mean.value;
      model.compile(nn::make_optimizer(optimizer, 0.01f));
      model.fit(d.x_train, d.y_train, {.epochs = 1, .batch_size = 32, .seed = 1});
      EXPECT_NE(layer.scale.value[0], 0.5f) << optimizer << ": the trainable weight trained";
      EXPECT_EQ(same_bits(layer.moving_mean.value, initial), !track)
          << optimizer << ": only the layer itself changes its state";

      TempDir dir;
      model.save(dir.path(), 1);
      EXPECT_TRUE(std::filesystem::exists(dir / "tracker.moving_mean.npy"));  // Keras's name
      nn::Sequential loaded = build();
      loaded.load(dir.path());
      EXPECT_TRUE(same_bits(static_cast<Tracker&>(*loaded.layers().back()).moving_mean.value, layer.moving_mean.value));
    }
}

// y = gamma * x: a layer whose one weight is called neither kernel nor bias.
class Gain final : public nn::Layer {
 public:
  explicit Gain(float g) : gamma("gamma", nn::Tensor({1}, g)) {}
  nn::Parameter gamma;  // (1,)
  std::string type() const override { return "Gain"; }
  std::string base_name() const override { return "gain"; }
  nn::Shape output_shape(const nn::Shape& x) const override { return x; }
  nn::ConstView forward(const nn::Tensor& x) override {
    nn::ensure_shape(y_, x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y_[i] = gamma.value[0] * x[i];
    return y_;
  }
  nn::ConstView backward(const nn::Tensor& x, const nn::Tensor&, const nn::Tensor& dy, bool need_dx) override {
    double dg = 0;
    for (std::size_t i = 0; i < x.size(); ++i) dg += static_cast<double>(x[i]) * dy[i];
    gamma.grad[0] = static_cast<float>(dg);
    if (!need_dx) return {};
    nn::ensure_shape(dx_, x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) dx_[i] = gamma.value[0] * dy[i];
    return dx_;
  }
  std::vector<nn::Parameter*> parameters() override { return {&gamma}; }

 private:
  nn::Tensor y_, dx_;
};

// The manifest decides what a set holds, whatever its weights are called: a
// second save into the same folder replaces gain.gamma.npy like any other.
TEST(CustomLayer, AWeightNotCalledKernelOrBiasIsSavedAgainIntoTheSameFolder) {
  TempDir tmp;
  nn::Sequential model({4});
  model.add(Gain(0.5f));
  model.save(tmp / "w", 1);
  EXPECT_TRUE(std::filesystem::exists(tmp / "w" / "gain.gamma.npy"));
  model.named_parameters()[0].parameter->value[0] = 0.25f;
  EXPECT_EQ(testing_nn::error_of([&] { model.save(tmp / "w", 2); }), "");
  nn::Sequential loaded({4});
  loaded.add(Gain(1.0f));
  EXPECT_EQ(loaded.load(tmp / "w"), 2);
  EXPECT_EQ(loaded.named_parameters()[0].parameter->value[0], 0.25f);
}

// The generic check passes the custom layer, and fails it when its backward
// pass has a wrong sign: a gradient check that cannot fail checks nothing.
TEST(CustomLayer, TheGenericGradientCheckCatchesABrokenBackwardPass) {
  const nn::Tensor x = testing_nn::random_tensor({4, 6}, 21);
  Scale good(0.7f), broken(0.7f, /*wrong_sign=*/true);
  EXPECT_EQ(testing_nn::layer_gradient_problems(good, x, 22), "");
  EXPECT_THAT(testing_nn::layer_gradient_problems(broken, x, 22), HasSubstr("Scale dscale[0]: backward gives"));
}

}  // namespace

namespace {

// With --validation-split, fit never looks at the test set: an empty one used to
// fail only at the final evaluate, after all the training.
TEST(Ch10Executable, AnEmptyTestSetIsRefusedBeforeTraining) {
  testing_nn::TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {40, 28, 28}, {0, 28, 28});
  auto run = testing_nn::run_program("ch10-fit", {"--data", (dir / "data").string(), "--plots", (dir / "plots").string(), "--validation-split", "0.5", "--epochs", "1", "--no-save"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, ::testing::HasSubstr("data: the test set is empty: there is nothing to evaluate on")) << run.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "plots")) << "nothing is drawn";
}

}  // namespace

// ---- Chapter 10's two experiments: --loss / --compare-losses, --init-scale / --init-spread ----

namespace {

TEST(Loss, NamesAndTheDefault) {
  EXPECT_EQ(nn::loss_from_name("categorical_crossentropy"), nn::Loss::categorical_crossentropy);
  EXPECT_EQ(nn::loss_from_name("mean_squared_error"), nn::Loss::mean_squared_error);
  EXPECT_EQ(nn::loss_from_name("mse"), nn::Loss::mean_squared_error);  // Keras's alias
  EXPECT_EQ(nn::loss_name(nn::Loss::mean_squared_error), "mean_squared_error");
  EXPECT_EQ(testing_nn::error_of([] { nn::loss_from_name("hinge"); }),
            "unknown loss 'hinge': use categorical_crossentropy or mean_squared_error (mse)");
  nn::Sequential model = nn::make_mnist_model(1);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  EXPECT_EQ(model.loss(), nn::Loss::categorical_crossentropy);  // what the Keras program compiles with
}

// compile(..., mean_squared_error): train, evaluate and the gradients all use
// it. The gradient of dense_1's bias is checked against central differences of
// the model's loss (the output layer's bias: the loss is smooth in it), and
// against the library's backward pass summed over the batch.
TEST(Loss, TheModelTrainsOnTheCompiledMeanSquaredErrorAndItsGradientIsExact) {
  Data d = subset(8, 1);
  nn::Sequential model = nn::make_mnist_model(3);
  model.compile(nn::make_optimizer("sgd", 0.01f), nn::Loss::mean_squared_error);
  const double loss = model.compute_gradients(d.x_train, d.y_train);
  const nn::Tensor p = model.predict(d.x_train);
  EXPECT_NEAR(loss, nn::mean_squared_error(p, d.y_train), 1e-7);
  EXPECT_NEAR(model.evaluate(d.x_train, d.y_train).loss, loss, 1e-7);
  EXPECT_NEAR(loss, 0.09, 0.01) << "near-uniform p at initialization: (0.9^2 + 9 * 0.1^2) / 10 = 0.09";

  auto& out = dynamic_cast<nn::Dense&>(*model.layers()[4]);
  const nn::Tensor analytic = out.bias.grad;  // (10,)
  const nn::Tensor dz = nn::softmax_mean_squared_error_backward(p, d.y_train);  // (8, 10)
  for (std::size_t k = 0; k < 10; ++k) {
    double sum = 0;
    for (std::size_t i = 0; i < 8; ++i) sum += dz[i * 10 + k];
    EXPECT_NEAR(analytic[k], sum, 1e-6 * std::abs(sum) + 1e-9) << "bias " << k;
  }
  std::vector<double> bias = nn::as_double(out.bias.value);
  const std::vector<double> numeric = nn::central_differences(
      bias,
      [&] {
        for (std::size_t k = 0; k < 10; ++k) out.bias.value[k] = static_cast<float>(bias[k]);
        return model.evaluate(d.x_train, d.y_train).loss;
      },
      1e-2);
  double largest = 0;
  for (std::size_t k = 0; k < 10; ++k) largest = std::max(largest, std::abs(numeric[k]));
  ASSERT_GT(largest, 1e-4);
  for (std::size_t k = 0; k < 10; ++k) EXPECT_NEAR(analytic[k], numeric[k], 1e-3 * largest) << "bias " << k;

  // A cross-entropy model from the same weights gets another gradient: (p - y) / N.
  nn::Sequential ce = nn::make_mnist_model(3);
  ce.compile(nn::make_optimizer("sgd", 0.01f));
  ce.compute_gradients(d.x_train, d.y_train);
  EXPECT_GT(std::abs(dynamic_cast<nn::Dense&>(*ce.layers()[4]).bias.grad[0] - analytic[0]), 1e-3);
}

TEST(Init, AScaledGlorotUniformIsTheSameDrawsTimesTheScale) {
  nn::Tensor keras({9, 32}), same({9, 32}), half({9, 32}), tenfold({9, 32});
  nn::glorot_uniform(keras, 9, 288, 5);
  nn::glorot_uniform(same, 9, 288, 5, 1.0f);
  nn::glorot_uniform(half, 9, 288, 5, 0.5f);
  nn::glorot_uniform(tenfold, 9, 288, 5, 10.0f);
  EXPECT_TRUE(same_bits(keras, same)) << "scale 1 is Keras's glorot_uniform, bit for bit";
  for (std::size_t i = 0; i < keras.size(); ++i) {
    EXPECT_EQ(half[i], 0.5f * keras[i]) << i;  // a power of two: exact
    EXPECT_NEAR(tenfold[i], 10.0f * keras[i], 1e-6f) << i;
  }
  for (const float bad : {0.0f, -1.0f, std::nanf(""), INFINITY})
    EXPECT_THAT(testing_nn::error_of([&] { nn::glorot_uniform(keras, 9, 288, 5, bad); }),
                HasSubstr("glorot_uniform: the scale must be a finite number > 0")) << bad;
  nn::Sequential a = nn::make_mnist_model(4), b = nn::make_mnist_model(4, 1.0f);
  for (std::size_t i = 0; i < a.parameters().size(); ++i)
    EXPECT_TRUE(same_bits(a.parameters()[i]->value, b.parameters()[i]->value));
}

// Glorot's variance argument on the course's model and a batch of 32 real
// images: Var(w) = 2 / (fan_in + fan_out) keeps every layer's output std
// within a factor of 2.5 of the others once past the first convolution; a
// scale s on every kernel multiplies the std after L weighted layers by s^L
// (the biases are 0, and ReLU and max pooling commute with a positive
// factor); going back, each kernel passed multiplies the gradient by s too.
TEST(Init, GlorotKeepsTheSpreadInABandAndAScaleCompoundsLayerByLayer) {
  Data d = subset(32, 1);
  const auto spread = [&](float scale) {
    nn::Sequential model = nn::make_mnist_model(1, scale);
    model.set_fusion(false);
    return model.spread(d.x_train, d.y_train);
  };
  const std::vector<nn::StepSpread> glorot = spread(1.0f), small = spread(0.1f), large = spread(10.0f);
  ASSERT_EQ(glorot.size(), 6u);
  const std::vector<std::string> names = {"input", "conv2d", "max_pooling2d", "flatten", "dense", "dense_1"};
  double lo = INFINITY, hi = 0;
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(glorot[i].name, names[i]);
    if (i == 0) continue;
    lo = std::min(lo, glorot[i].activation_std);
    hi = std::max(hi, glorot[i].activation_std);
  }
  EXPECT_GT(lo, 0.01);
  EXPECT_LT(hi / lo, 2.5) << "Glorot: the spread stays within a band from layer to layer";
  EXPECT_TRUE(std::isnan(glorot[0].gradient_std));  // nothing flows back into the image
  nn::Sequential model = nn::make_mnist_model(1);
  EXPECT_EQ(testing_nn::error_of([&] { model.spread(nn::Tensor({0, 28, 28, 1}), nn::Tensor({0, 10})); }),
            "spread: no images (x has shape (0, 28, 28, 1))");

  // Forward: after conv2d (and the pooling and flatten) 1 weighted layer, after dense 2, after dense_1 3.
  const int layers_below[] = {0, 1, 1, 1, 2, 3};
  for (std::size_t i = 0; i < 6; ++i) {
    EXPECT_NEAR(small[i].activation_std / glorot[i].activation_std, std::pow(0.1, layers_below[i]),
                1e-3 * std::pow(0.1, layers_below[i])) << names[i];
    EXPECT_NEAR(large[i].activation_std / glorot[i].activation_std, std::pow(10.0, layers_below[i]),
                1e-3 * std::pow(10.0, layers_below[i])) << names[i];
  }
  // Backward with the small scale (softmax still near uniform, so d loss / d logits barely moves):
  // each kernel passed on the way down multiplies the gradient by 0.1.
  const int layers_above[] = {0, 2, 2, 2, 1, 0};
  for (std::size_t i = 1; i < 6; ++i)
    EXPECT_NEAR(small[i].gradient_std / glorot[i].gradient_std, std::pow(0.1, layers_above[i]),
                0.1 * std::pow(0.1, layers_above[i])) << names[i];
}

// ---- the executable's options ----

std::string text_of(const std::filesystem::path& file) {
  const std::vector<std::uint8_t> bytes = nn::read_file(file);
  return {bytes.begin(), bytes.end()};
}

testing_nn::ProgramRun ch10(const testing_nn::TempDir& dir, std::vector<std::string> args) {
  if (!std::filesystem::exists(dir / "data")) testing_nn::write_mnist_folder(dir / "data", {40, 28, 28}, {10, 28, 28});
  args.insert(args.end(), {"--data", (dir / "data").string(), "--plots", (dir / "plots").string(), "--seed", "1"});
  return testing_nn::run_program("ch10-fit", args);
}

TEST(Ch10Executable, BadLossAndInitOptionsAreRefusedWithOneClearMessage) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--loss", "hinge"}, "ch10-fit: error: --loss: unknown loss 'hinge': use categorical_crossentropy or mean_squared_error (mse)"},
      {{"--init-scale", "0"}, "--init-scale"},
      {{"--init-scale", "-2"}, "--init-scale"},
      {{"--init-scale", "abc"}, "--init-scale"},
      {{"--init-spread", "0.1,x"}, "ch10-fit: error: --init-spread: 'x' is not a scale > 0 (give a list like 0.1,1,10)"},
      {{"--init-spread", "0"}, "--init-spread: '0' is not a scale > 0"},
      {{"--compare-losses", "--loss", "mse"}, "--compare-losses trains with both losses: leave out --loss"},
      {{"--compare-losses", "--init-spread", "1"}, "each run their own experiment: give one"},
      {{"--compare-losses", "--validation-split", "0.1"}, "--compare-losses measures on the first 2,000 test images: leave out --validation-split"},
      {{"--lr-sweep", "0.1", "--compare-losses"}, "each run their own experiment: give one"},
  };
  for (const auto& [args, message] : cases) {
    testing_nn::TempDir dir;
    const auto run = ch10(dir, args);
    EXPECT_EQ(run.exit_code, 1) << args[0] << "\n" << run.output;
    EXPECT_THAT(run.output, HasSubstr(message)) << run.output;
    EXPECT_FALSE(std::filesystem::exists(dir / "plots")) << "nothing is drawn";
  }
}

TEST(Ch10Executable, LossMseTrainsOnTheMeanSquaredError) {
  testing_nn::TempDir dir;
  for (const std::string loss : {"categorical_crossentropy", "mse"}) {
    const auto run = ch10(dir, {"--loss", loss, "--epochs", "1", "--no-save"});
    ASSERT_EQ(run.exit_code, 0) << run.output;
    const std::string csv = text_of(dir / "plots" / "10-history.csv");
    const double epoch_loss = std::stod(csv.substr(csv.find("\n1,") + 3));
    // At initialization: cross-entropy about ln 10 = 2.3 (all-zero images give equal logits), the squared error 0.09.
    if (loss == "mse") EXPECT_NEAR(epoch_loss, 0.09, 0.01) << csv;
    else EXPECT_NEAR(epoch_loss, std::log(10.0), 0.1) << csv;
  }
}

TEST(Ch10Executable, InitScaleScalesTheSavedInitialWeights) {
  testing_nn::TempDir dir;
  ASSERT_EQ(ch10(dir, {"--max-steps", "0", "--save", (dir / "keras").string()}).exit_code, 0);
  const auto run = ch10(dir, {"--max-steps", "0", "--init-scale", "0.5", "--save", (dir / "half").string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  for (const std::string name : {"conv2d.kernel", "dense.kernel", "dense_1.kernel"}) {
    const nn::Tensor keras = nn::load_npy(dir / "keras" / (name + ".npy"));
    const nn::Tensor half = nn::load_npy(dir / "half" / (name + ".npy"));
    ASSERT_EQ(keras.shape(), half.shape());
    for (std::size_t i = 0; i < keras.size(); ++i) ASSERT_EQ(half[i], 0.5f * keras[i]) << name << " " << i;
  }
}

TEST(Ch10Executable, TheTwoExperimentsWriteTheirFiguresAndTableAndSaveNoWeights) {
  testing_nn::TempDir dir;
  auto run = ch10(dir, {"--compare-losses", "--max-steps", "2", "--batch-size", "8", "--save", (dir / "w").string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("mean_squared_error: test accuracy (first 10 images)"));
  const std::string csv = text_of(dir / "plots" / "10-loss-compare.csv");
  EXPECT_THAT(csv, HasSubstr("categorical_crossentropy,2,"));
  EXPECT_THAT(csv, HasSubstr("mean_squared_error,2,"));
  run = ch10(dir, {"--init-spread", "10,0.1,1", "--batch-size", "8"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const std::string spread = text_of(dir / "plots" / "10-init-spread.csv");
  EXPECT_THAT(spread, HasSubstr("0.1,conv2d,"));
  EXPECT_LT(spread.find("0.1,dense_1"), spread.find("10,input")) << "sorted by scale";
  if (nn::plot::gnuplot_available()) {
    EXPECT_TRUE(std::filesystem::exists(dir / "plots" / "10-loss-compare.png"));
    EXPECT_TRUE(std::filesystem::exists(dir / "plots" / "10-init-spread.png"));
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "w")) << "an experiment's many models are not \"the\" weights";
}

}  // namespace
