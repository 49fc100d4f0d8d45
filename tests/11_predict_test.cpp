// Chapter 11: predicting one image, PGM files, the confusion matrix.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <numeric>

#include "nn/error.hpp"
#include "nn/io.hpp"
#include "nn/metrics.hpp"
#include "nn/mnist.hpp"
#include "nn/npy.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/pgm.hpp"
#include "nn/shape.hpp"
#include "nn/softmax.hpp"
#include "nn/terminal.hpp"
#include "testing.hpp"

namespace {

using ::testing::HasSubstr;
using Bytes = std::vector<std::uint8_t>;

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

std::string error_of(const Bytes& bytes) {
  try {
    nn::decode_pgm(bytes, "d.pgm");
  } catch (const nn::Error& e) {
    return e.what();
  }
  return "";
}

// A network trained for one epoch on 6,000 images with a fixed seed: fixed
// weights, made the same way on every machine with the same thread count.
nn::Sequential& trained() {
  static nn::Sequential model = [] {
    const auto& m = testing_nn::real_mnist();
    nn::Sequential net = nn::make_mnist_model(4);
    net.compile(nn::make_optimizer("sgd", 0.01f, 0.9f));
    net.fit(nn::slice_batch(nn::images_to_tensor(m.x_train), 0, 6000), nn::one_hot(std::span(m.y_train.data).first(6000)),
            {.epochs = 1, .seed = 4});
    return net;
  }();
  return model;
}

TEST(Predict, AKnownImageGivesItsClass) {
  const auto& m = testing_nn::real_mnist();
  // x_test[0] is a clear 7, x_test[1] a 2, x_test[2] a 1.
  nn::Tensor p = trained().predict(nn::slice_batch(nn::images_to_tensor(m.x_test), 0, 3));
  EXPECT_EQ(nn::argmax(p), (std::vector<std::size_t>{7, 2, 1}));
  for (std::size_t i = 0; i < 3; ++i) {
    double sum = 0;
    for (std::size_t k = 0; k < 10; ++k) sum += p(i, k);
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

TEST(Predict, ConfusionMatrixOfTheTestSet) {
  const auto& m = testing_nn::real_mnist();
  nn::Tensor p = trained().predict(nn::images_to_tensor(m.x_test));
  auto predicted = nn::argmax(p);
  auto counts = nn::confusion_matrix(predicted, m.y_test.data);
  std::size_t total = 0, diagonal = 0;
  for (std::size_t t = 0; t < 10; ++t) {
    std::size_t row = std::accumulate(counts[t].begin(), counts[t].end(), std::size_t{0});
    total += row;
    diagonal += counts[t][t];
  }
  EXPECT_EQ(total, 10000u);
  // The diagonal is the accuracy.
  EXPECT_DOUBLE_EQ(static_cast<double>(diagonal) / 10000.0, nn::accuracy(p, nn::one_hot(m.y_test.data)));
  EXPECT_GT(diagonal, 8500u);  // one epoch on a tenth of the data: about 90%
  auto mistakes = nn::most_confident_mistakes(p, m.y_test.data, 25);
  ASSERT_EQ(mistakes.size(), 25u);
  for (std::size_t i = 0; i < mistakes.size(); ++i) {
    EXPECT_NE(mistakes[i].predicted, mistakes[i].label);
    if (i > 0) {
      EXPECT_LE(mistakes[i].confidence, mistakes[i - 1].confidence);
    }
  }
}

TEST(Metrics, ConfusionMatrixByHand) {
  std::vector<std::size_t> predicted{0, 1, 1, 2};
  std::vector<std::uint8_t> labels{0, 1, 2, 2};
  auto c = nn::confusion_matrix(predicted, labels, 3);
  EXPECT_EQ(c, (std::vector<std::vector<std::size_t>>{{1, 0, 0}, {0, 1, 0}, {0, 1, 1}}));
  EXPECT_THROW(nn::confusion_matrix(predicted, std::vector<std::uint8_t>{0, 1, 2, 3}, 3), nn::Error);
}

TEST(Pgm, PlainAndBinary) {
  auto a = nn::decode_pgm(text("P2\n# a comment\n3 2\n9\n0 1 2\n3 4 9\n"), "a.pgm");
  EXPECT_EQ(a.width, 3u);
  EXPECT_EQ(a.height, 2u);
  EXPECT_EQ(a.maxval, 9u);
  EXPECT_EQ(a.pixels, (std::vector<std::uint16_t>{0, 1, 2, 3, 4, 9}));
  Bytes p5 = text("P5 2 2 255\n");
  p5.insert(p5.end(), {0, 128, 255, 7});
  auto b = nn::decode_pgm(p5, "b.pgm");
  EXPECT_EQ(b.pixels, (std::vector<std::uint16_t>{0, 128, 255, 7}));
  Bytes p5_16 = text("P5 1 1 1000\n");
  p5_16.insert(p5_16.end(), {0x03, 0xE8});  // 1000, big-endian
  EXPECT_EQ(nn::decode_pgm(p5_16, "c.pgm").pixels[0], 1000u);
}

TEST(Pgm, BadFiles) {
  EXPECT_THAT(error_of(text("P6 1 1 255\nabc")), HasSubstr("d.pgm: not a PGM image"));
  EXPECT_THAT(error_of(text("")), HasSubstr("not a PGM image"));
  EXPECT_THAT(error_of(text("P2 3")), HasSubstr("file ends before the height"));
  EXPECT_THAT(error_of(text("P2 3 x")), HasSubstr("expected the height here, found 'x'"));
  EXPECT_THAT(error_of(text("P2 0 3 255\n")), HasSubstr("empty image (0x3)"));
  EXPECT_THAT(error_of(text("P2 1 1 70000\n1")), HasSubstr("maximum value 70000 is outside 1..65535"));
  EXPECT_THAT(error_of(text("P2 2 1 9\n3   ")), HasSubstr("file ends before the next pixel value"));
  EXPECT_THAT(error_of(text("P2 1 1 9\n10")), HasSubstr("pixel 0 has value 10, above the maximum 9"));
  EXPECT_THAT(error_of(text("P5 2 2 255\n\x01\x02")), HasSubstr("truncated: 4 pixels need 4 bytes, found 2"));
  EXPECT_THAT(error_of(text("P2 99999999 1 255\n")), HasSubstr("absurdly large"));
}

TEST(Pgm, ASizeAboveTheCallersLimitIsRefusedFromTheHeader) {
  // The header alone, no pixels: had the reader gone on to the pixels, it
  // would have said "truncated" instead.
  auto refused = [](const std::string& file, std::size_t max_side) {
    return testing_nn::error_of([&] { nn::decode_pgm(text(file), "big.pgm", max_side); });
  };
  EXPECT_EQ(refused("P5 10000 10000 255\n", 28), "big.pgm: the image is 10000x10000, larger than 28x28 (resize it first)");
  EXPECT_EQ(refused("P2 28 29 255\n", 28), "big.pgm: the image is 28x29, larger than 28x28 (resize it first)");
  EXPECT_THAT(refused("P5 28 28 255\n", 28), HasSubstr("truncated"));  // 28x28 passes the check
  // Without a limit from the caller: 4096x4096 at most.
  EXPECT_EQ(refused("P5 4097 1 255\n", nn::kPgmMaxSide),
            "big.pgm: the image is 4097x1, larger than 4096x4096 (resize it first)");
  EXPECT_EQ(nn::decode_pgm(text("P5 4096 1 255\n" + std::string(4096, '\x07')), "wide.pgm").pixels.size(), 4096u);
}

TEST(Pgm, OnlyTwentyEightByTwentyEight) {
  nn::GrayImage img{27, 28, 255, std::vector<std::uint16_t>(27 * 28)};
  try {
    nn::to_mnist_digit(img, "small.pgm");
    FAIL() << "no error";
  } catch (const nn::Error& e) {
    EXPECT_THAT(e.what(), HasSubstr("small.pgm: the image is 27x28; the network reads 28x28 digits"));
  }
}

TEST(Pgm, BlackOnWhiteIsInvertedAndScaled) {
  // A dark stroke on a white page, maxval 15.
  nn::GrayImage page{28, 28, 15, std::vector<std::uint16_t>(784, 15)};
  for (std::size_t r = 5; r < 23; ++r) page.pixels[r * 28 + 14] = 0;
  bool inverted = false;
  auto digit = nn::to_mnist_digit(page, "page.pgm", &inverted);
  EXPECT_TRUE(inverted);
  EXPECT_EQ(digit[0], 0);          // the white page becomes the black background
  EXPECT_EQ(digit[5 * 28 + 14], 255);  // the dark stroke becomes white ink
  // The same digit already white on black is kept as it is.
  nn::GrayImage mnist{28, 28, 255, std::vector<std::uint16_t>(digit.begin(), digit.end())};
  auto same = nn::to_mnist_digit(mnist, "mnist.pgm", &inverted);
  EXPECT_FALSE(inverted);
  EXPECT_EQ(same, digit);
}

// The centre of mass of a 28x28 image, in pixels (pixel x covering [x, x + 1)).
std::pair<double, double> centre_of_mass(const Bytes& image) {
  double mass = 0, mx = 0, my = 0;
  for (std::size_t y = 0; y < 28; ++y)
    for (std::size_t x = 0; x < 28; ++x) {
      const double v = image[y * 28 + x];
      mass += v, mx += v * (static_cast<double>(x) + 0.5), my += v * (static_cast<double>(y) + 0.5);
    }
  return {mx / mass, my / mass};
}

// The rows and columns of a 28x28 image that hold ink: {first row, last row, first column, last column}.
std::array<std::size_t, 4> ink_box(const Bytes& image) {
  std::array<std::size_t, 4> box{28, 0, 28, 0};
  for (std::size_t y = 0; y < 28; ++y)
    for (std::size_t x = 0; x < 28; ++x)
      if (image[y * 28 + x] > 0)
        box = {std::min(box[0], y), std::max(box[1], y), std::min(box[2], x), std::max(box[3], x)};
  return box;
}

// A (height, width) drawing, black but for columns [x0, x1) of rows [y0, y1), which hold `ink`.
Bytes drawing_of_block(std::size_t width, std::size_t height, std::size_t x0, std::size_t x1, std::size_t y0,
                       std::size_t y1, std::uint8_t ink) {
  Bytes drawing(width * height, 0);
  for (std::size_t y = y0; y < y1; ++y)
    for (std::size_t x = x0; x < x1; ++x) drawing[y * width + x] = ink;
  return drawing;
}

TEST(PrepareLikeMnist, NoInkGivesNothingAndTheSizeIsChecked) {
  EXPECT_TRUE(nn::prepare_like_mnist(Bytes(280 * 280, 0), 280, 280).empty());
  EXPECT_THROW(nn::prepare_like_mnist(Bytes(10, 1), 3, 3), nn::Error);
  EXPECT_THROW(nn::prepare_like_mnist(Bytes(0), 0, 0), nn::Error);
}

TEST(PrepareLikeMnist, TheLongerSideBecomesTwentyPixelsAndTheCentreOfMassTheCentre) {
  // A solid 50-wide, 100-tall block, off-centre in a 300x200 drawing: 10x20,
  // every pixel full, its centre of mass (5, 10) moved to (14, 14).
  const Bytes digit = nn::prepare_like_mnist(drawing_of_block(300, 200, 7, 57, 90, 190, 255), 300, 200);
  ASSERT_EQ(digit.size(), 784u);
  const auto box = ink_box(digit);
  EXPECT_EQ(box, (std::array<std::size_t, 4>{4, 23, 9, 18}));  // rows 4..23, columns 9..18
  for (std::size_t y = 4; y <= 23; ++y)
    for (std::size_t x = 9; x <= 18; ++x) EXPECT_EQ(digit[y * 28 + x], 255) << y << "," << x;
  const auto [cx, cy] = centre_of_mass(digit);
  EXPECT_NEAR(cx, 14.0, 1e-9);
  EXPECT_NEAR(cy, 14.0, 1e-9);
}

TEST(PrepareLikeMnist, ScalingAveragesAreasSoEdgesAreAntiAliasedAndInkIsKept) {
  // A 4-wide, 30-tall bar: scaled by 20/30, it is 2.67 pixels wide: two full
  // columns and one covered for 2/3, whose value is 2/3 of the ink.
  const Bytes digit = nn::prepare_like_mnist(drawing_of_block(40, 40, 10, 14, 5, 35, 240), 40, 40);
  const auto box = ink_box(digit);
  ASSERT_EQ(box[3] - box[2], 2u);  // three columns
  for (std::size_t y = box[0]; y <= box[1]; ++y) {
    EXPECT_EQ(digit[y * 28 + box[2]], 240);
    EXPECT_EQ(digit[y * 28 + box[2] + 1], 240);
    EXPECT_EQ(digit[y * 28 + box[3]], 160);  // 240 * 2/3
  }
  // Area averaging keeps the ink: the sum scales by (20/30)^2, up to rounding.
  const double sum = std::accumulate(digit.begin(), digit.end(), 0.0);
  EXPECT_NEAR(sum, 240.0 * 4 * 30 * (20.0 / 30) * (20.0 / 30), 0.5 * 784);
  // The centre of mass is the centre, to the whole pixel the shift is rounded to.
  const auto [cx, cy] = centre_of_mass(digit);
  EXPECT_LE(std::abs(cx - 14.0), 0.5);
  EXPECT_LE(std::abs(cy - 14.0), 0.5);
}

TEST(PrepareLikeMnist, AnMnistDigitComesBackAsItselfWhenDrawnTenTimesLarger) {
  // x_test-like: a digit already prepared, drawn 10x larger pixel by pixel
  // (as the playground shows a test image), is prepared back to itself when
  // its box is 20 pixels high and its centre of mass is centred.
  const std::size_t width = 280;
  Bytes small(784, 0);
  for (std::size_t y = 4; y < 24; ++y) small[y * 28 + 13] = small[y * 28 + 14] = 255;  // a "1"
  Bytes large(width * width, 0);
  for (std::size_t y = 0; y < width; ++y)
    for (std::size_t x = 0; x < width; ++x) large[y * width + x] = small[(y / 10) * 28 + x / 10];
  EXPECT_EQ(nn::prepare_like_mnist(large, width, width), small);
}

TEST(Pgm, SizeIsCheckedAgainstTheFileBeforeAllocating) {
  // A 23-byte header claiming 10^12 pixels: the reader must see that the file
  // cannot hold them before it allocates (2 TB here; 20 GB for 100000 x 100000).
  // By default the size alone refuses them; with a limit of 10^6 a side (the
  // most the header reader takes), the file's length must.
  EXPECT_THAT(error_of(text("P5\n1000000 1000000\n255\n")), HasSubstr("larger than 4096x4096"));
  auto error_up_to_a_million = [](const Bytes& bytes) {
    return testing_nn::error_of([&] { nn::decode_pgm(bytes, "d.pgm", 1'000'000); });
  };
  EXPECT_THAT(error_up_to_a_million(text("P5\n1000000 1000000\n255\n")),
              HasSubstr("d.pgm: truncated: 1000000000000 pixels need 1000000000000 bytes, found 0"));
  EXPECT_THAT(error_up_to_a_million(text("P5 1000000 1000000 65535\n\x01\x02")),
              HasSubstr("truncated: 1000000000000 pixels need 2000000000000 bytes, found 2"));
  // As text, each value needs a separator and a digit: 2 bytes at least.
  EXPECT_THAT(error_up_to_a_million(text("P2\n1000000 1000000\n255\n0 0")),
              HasSubstr("d.pgm: truncated: 1000000000000 pixels as text need at least 2000000000000 bytes, found 4"));
  EXPECT_THAT(error_of(text("P5\n4096 4096\n255\n")),
              HasSubstr("d.pgm: truncated: 16777216 pixels need 16777216 bytes, found 0"));
  // Bytes after the pixels: the size in the header and the file disagree.
  EXPECT_THAT(error_of(text("P5 1 1 255\n\x01\x02")), HasSubstr("d.pgm: 1 byte after the 1 pixels of a 1x1 image"));
}

TEST(Pgm, PlainValuesAboveMaxvalAreRefusedNotWrapped) {
  // 65537 does not fit in 16 bits: stored as it was, it wrapped to 1 (below 9).
  EXPECT_THAT(error_of(text("P2 1 1 9\n65537")), HasSubstr("d.pgm: pixel 0 has value 65537, above the maximum 9"));
  EXPECT_THAT(error_of(text("P2 2 1 65535\n0 65536")), HasSubstr("pixel 1 has value 65536, above the maximum 65535"));
  EXPECT_THAT(error_of(text("P2 1 1 0\n0")), HasSubstr("maximum value 0 is outside 1..65535"));
  EXPECT_THAT(error_of(text("P2 3 0 255\n")), HasSubstr("empty image (3x0)"));
  EXPECT_EQ(nn::decode_pgm(text("P2 2 1 65535\n65535 7\n"), "ok.pgm").pixels, (std::vector<std::uint16_t>{65535, 7}));
}

}  // namespace

// ---- The executable on malformed inputs -------------------------------------

namespace {

using testing_nn::TempDir;

// A folder of weights ch11-predict accepts: an untrained model's, every value `value` unless NaN.
std::filesystem::path saved_weights(const TempDir& dir, float value = NAN) {
  nn::Sequential model = nn::make_mnist_model(1);
  if (!std::isnan(value))
    for (auto& nt : model.named_parameters()) nt.parameter->value.fill(value);
  model.save(dir / "weights");
  return dir / "weights";
}

testing_nn::ProgramRun predict(const TempDir& dir, std::vector<std::string> args) {
  for (const std::string& a : std::vector<std::string>{"--data", (dir / "data").string(), "--load",
                                                       (dir / "weights").string(), "--plots", (dir / "plots").string(),
                                                       "--seed", "1"})
    args.push_back(a);
  return testing_nn::run_program("ch11-predict", args);
}

TEST(Ch11Executable, TestImagesThatAreNot28x28AreRefused) {
  for (auto shape : {std::vector<std::size_t>{200, 1, 1}, {200, 14, 14}, {200, 0, 0}}) {
    TempDir dir;
    testing_nn::write_mnist_folder(dir / "data", {10, 28, 28}, shape);
    saved_weights(dir);
    for (std::vector<std::string> index : {std::vector<std::string>{}, {"--index", "3"}}) {
      auto run = predict(dir, index);
      EXPECT_EQ(run.exit_code, 1) << run.output;
      EXPECT_THAT(run.output, HasSubstr(fmt::format("error: {}: images have shape {}",
                                                    (dir / "data" / "t10k-images-idx3-ubyte").string(),
                                                    nn::format_shape(shape))));
    }
  }
}

TEST(Ch11Executable, AnImageLargerThan28x28IsRefusedBeforeItIsDecoded) {
  TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {10, 28, 28}, {12, 28, 28});
  saved_weights(dir);
  nn::write_file_atomic(dir / "big.pgm", std::string_view("P5\n10000 10000\n255\n"));  // 10^8 pixels claimed
  auto run = predict(dir, {"--image", (dir / "big.pgm").string()});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("big.pgm: the image is 10000x10000, larger than 28x28 (resize it first)"));
}

TEST(Ch11Executable, AnEmptyTestSetIsAClearError) {
  TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {10, 28, 28}, {0, 28, 28});
  saved_weights(dir);
  for (std::vector<std::string> index : {std::vector<std::string>{}, {"--index", "0"}}) {
    auto run = predict(dir, index);
    EXPECT_EQ(run.exit_code, 1) << run.output;
    EXPECT_THAT(run.output, HasSubstr("the test set is empty"));
    EXPECT_THAT(run.output, ::testing::Not(HasSubstr("18446744073709551615")));
  }
}

TEST(Ch11Executable, ANegativeIndexIsRefused) {
  TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {10, 28, 28}, {10, 28, 28});
  saved_weights(dir);
  auto run = predict(dir, {"--index", "-2"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  // The range the data gives, not the widest one an IDX file could hold.
  EXPECT_THAT(run.output, HasSubstr("error: --index -2 is outside 0..9"));
  run = predict(dir, {"--index", "10"});
  EXPECT_THAT(run.output, HasSubstr("error: --index 10 is outside 0..9"));
  run = predict(dir, {"--index", "9"});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("x_test[9]"));
}

TEST(Ch11Executable, WeightsThatOverflowGiveAClearError) {
  // Finite weights so large that the logits overflow: the probabilities are NaN.
  TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {10, 28, 28}, {10, 28, 28});
  saved_weights(dir, 1e30f);
  auto run = predict(dir, {"--index", "0"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr(fmt::format("error: {}: these weights give the probabilities", (dir / "weights").string())));
  EXPECT_THAT(run.output, ::testing::Not(HasSubstr("internal error")));
}

// A weights folder that cannot even be looked at (here a symlink that points
// at itself) is one sentence naming it and the cause, not "internal error".
TEST(Ch11Executable, AWeightsFolderThatCannotBeLookedAtIsAClearError) {
  TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {10, 28, 28}, {10, 28, 28});
  std::filesystem::create_symlink("weights", dir / "weights");
  auto run = predict(dir, {"--index", "0"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr(fmt::format("error: {}", (dir / "weights").string())));
  EXPECT_THAT(run.output, HasSubstr("Too many levels of symbolic links"));
  EXPECT_THAT(run.output, ::testing::Not(HasSubstr("internal error")));
}

// --probabilities writes what model.predict gives for the test set, the
// file a comparison with Keras reads (tools/keras-reference), and prints the
// test loss and accuracy that model.evaluate gives.
TEST(Ch11Executable, WritesTheTestSetsProbabilities) {
  TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {10, 28, 28}, {12, 28, 28});
  saved_weights(dir);
  auto run = predict(dir, {"--index", "0", "--probabilities", (dir / "p.npy").string()});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nn::Tensor p = nn::load_npy(dir / "p.npy");
  ASSERT_EQ(p.shape(), (nn::Shape{12, 10}));
  nn::Sequential model = nn::make_mnist_model(0);
  model.load(dir / "weights");
  const nn::Mnist m = nn::load_mnist(dir / "data");
  const nn::Tensor x = nn::images_to_tensor(m.x_test);
  EXPECT_TRUE(testing_nn::all_close(p, model.predict(x), 0, 0));
  const nn::Evaluation e = model.evaluate(x, nn::one_hot(m.y_test.data));
  EXPECT_THAT(run.output, HasSubstr(fmt::format("test set: loss {:.6f} accuracy {:.6f}", e.loss, e.accuracy)));
}

// --time-inference times model.predict on one image and model.evaluate over
// the test set, and prints what they computed: the predicted digit, and the
// loss and accuracy model.evaluate gives at that batch size.
TEST(Ch11Executable, TimeInferencePrintsTheTimesAndWhatWasComputed) {
  TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {10, 28, 28}, {12, 28, 28});
  saved_weights(dir);
  auto run = predict(dir, {"--time-inference", "--index", "3", "--batch-size", "5", "--warm-calls", "7", "--threads", "1"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  nn::Sequential model = nn::make_mnist_model(0);
  model.load(dir / "weights");
  const nn::Mnist m = nn::load_mnist(dir / "data");
  const nn::Tensor x = nn::images_to_tensor(m.x_test);
  const nn::Evaluation e = model.evaluate(x, nn::one_hot(m.y_test.data), 5);
  const std::size_t digit = nn::argmax(model.predict(nn::slice_batch(x, 3, 1)))[0];
  EXPECT_THAT(run.output, HasSubstr("time-inference: 1 threads, predict x_test[3], evaluate 12 images at batch 5"));
  EXPECT_THAT(run.output, HasSubstr("predict 1 image, cold (the first call): "));
  EXPECT_THAT(run.output, HasSubstr("predict 1 image, warm (median of 7 more calls): "));
  EXPECT_THAT(run.output, HasSubstr(fmt::format("predicted {}, labelled 3", digit)));
  EXPECT_THAT(run.output, HasSubstr("evaluate 12 images, batch 5: "));
  EXPECT_THAT(run.output, HasSubstr(fmt::format("Test loss: {:.4f} - test accuracy: {:.4f}", e.loss, e.accuracy)));
  EXPECT_THAT(run.output, ::testing::Not(HasSubstr("Wrote")));  // draws nothing
  EXPECT_FALSE(std::filesystem::exists(dir / "plots" / "11-digit.png"));
  // Keras's evaluate batch, 32, when none is given.
  run = predict(dir, {"--time-inference", "--warm-calls", "1"});
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("predict x_test[0], evaluate 12 images at batch 32"));
}

TEST(Ch11Executable, TimeInferenceOptionsAreChecked) {
  TempDir dir;
  testing_nn::write_mnist_folder(dir / "data", {10, 28, 28}, {12, 28, 28});
  saved_weights(dir);
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--warm-calls", "5"}, "error: --warm-calls applies only with --time-inference"},
      {{"--batch-size", "5"}, "error: --batch-size applies only with --time-inference"},
      {{"--time-inference", "--batch-size", "0"}, "error: --batch-size 0 is outside 1..60000"},
      {{"--time-inference", "--warm-calls", "-1"}, "error: --warm-calls -1 is outside 1..1000000"},
      // Refused as it is parsed: one vector of 10^12 times would be 8 TB.
      {{"--time-inference", "--warm-calls", "1000000000000"}, "error: --warm-calls 1000000000000 is outside 1..1000000"},
      {{"--time-inference", "--warm-calls", "1e12"}, "error: --warm-calls 1e12 is not an integer"},
      {{"--time-inference", "--image", "x.pgm"}, "error: --time-inference times the test set's images: it takes no --image"},
      {{"--time-inference", "--probabilities", "p.npy"}, "it takes no --probabilities"},
      {{"--time-inference", "--index", "12"}, "error: --index 12 is outside 0..11"},
      {{"--threads", "-1"}, "error: --threads -1 is outside 0..256"},
      {{"--threads", "99999999999999999999"}, "error: --threads 99999999999999999999 is outside 0..256"},
  };
  for (const auto& [args, message] : cases) {
    auto run = predict(dir, args);
    EXPECT_EQ(run.exit_code, 1) << run.output;
    EXPECT_THAT(run.output, HasSubstr(message));
  }
  auto help = testing_nn::run_program("ch11-predict", {"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* option : {"--time-inference", "--batch-size N", "--warm-calls N", "--threads N"})
    EXPECT_THAT(help.output, HasSubstr(option));
}

TEST(Terminal, AProbabilityBarIsClampedToItsWidth) {
  EXPECT_EQ(nn::probability_bar(0.5f, 40), std::string(20, '#'));
  EXPECT_EQ(nn::probability_bar(1.0f, 40), std::string(40, '#'));
  EXPECT_EQ(nn::probability_bar(0.0f, 40), "");
  EXPECT_EQ(nn::probability_bar(7.0f, 40), std::string(40, '#'));
  EXPECT_EQ(nn::probability_bar(-3.0f, 40), "");
  EXPECT_EQ(nn::probability_bar(NAN, 40), "?");
  EXPECT_EQ(nn::probability_bar(INFINITY, 40), std::string(40, '#'));
}

}  // namespace
