// Chapter 11: predict one random test image
//
//   image = random test image; show it; reshape to (1, 28, 28, 1); / 255
//   prediction = model.predict(image); digit = argmax(prediction)
//
// Loads the weights chapter 10 saved, predicts one image (a random test
// image, --index I, or your own 28x28 PGM with --image), then evaluates the
// whole test set: its confusion matrix and the 25 most confident mistakes.
//
// --time-inference times inference instead (bench/compare/compare.sh sets it
// beside PyTorch): model.predict on one image, cold and warm, and
// model.evaluate over the whole test set.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <optional>
#include <random>

#include "nn/onnx_export.hpp"
#include "nn/cli.hpp"
#include "nn/error.hpp"
#include "nn/metrics.hpp"
#include "nn/mnist.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/parallel.hpp"
#include "nn/pgm.hpp"
#include "nn/softmax.hpp"
#include "nn/plot.hpp"
#include "nn/terminal.hpp"

namespace {

void plot_digit(const std::vector<std::uint8_t>& pixels, const std::string& title, const std::filesystem::path& file) {
  nn::plot::Png png(file, 420, 460);
  auto& gp = png.gp();
  gp << "set title " << nn::plot::quote(title) << " noenhanced\n"
     << "unset key; unset colorbox; unset tics; set size ratio -1; set palette gray; set cbrange [0:255]\n";
  nn::plot::image(gp, pixels.data(), 28, 28);
  png.finish();
}

void plot_confusion(const std::vector<std::vector<std::size_t>>& counts, double accuracy,
                    const std::filesystem::path& file) {
  nn::plot::Png png(file, 760, 680);
  auto& gp = png.gp();
  gp << fmt::format("set title 'Confusion matrix on the 10,000 test images (accuracy {:.2f}%)'\n", 100 * accuracy)
     << "set xlabel 'predicted'; set ylabel 'true label'; set xtics 0,1,9; set ytics 0,1,9\n"
     << "set xrange [-0.5:9.5]; set yrange [9.5:-0.5]; set size ratio -1; unset key\n"
     << "set logscale cb; set cbrange [1:*]; set cblabel 'images (log scale)'\n"
     << "set palette defined (0 'white', 1 '#9ecae1', 2 '#08519c')\n"
     << "plot '-' matrix with image, '-' using 1:2:3 with labels font ',9', "
        "'-' using 1:2:3 with labels font ',9' textcolor rgb 'white'\n";
  for (const auto& row : counts) {
    for (std::size_t v : row) gp << std::max<std::size_t>(v, 1) << ' ';  // log scale: 0 drawn as 1 (white)
    gp << '\n';
  }
  gp << "e\n";
  for (bool dark : {false, true}) {  // black numbers on light cells, white on dark ones
    for (std::size_t t = 0; t < counts.size(); ++t)
      for (std::size_t p = 0; p < counts.size(); ++p)
        if (counts[t][p] > 0 && (counts[t][p] >= 100) == dark) gp << fmt::format("{} {} {}\n", p, t, counts[t][p]);
    gp << "e\n";
  }
  png.finish();
}

void plot_mistakes(const std::vector<nn::Mistake>& mistakes, const nn::IdxArray& x_test,
                   const std::filesystem::path& file) {
  nn::plot::Png png(file, 900, 980);
  auto& gp = png.gp();
  gp << "set multiplot layout 5,5 title 'The 25 most confident mistakes on the test set: true -> predicted (confidence)'\n"
     << "unset key; unset colorbox; unset tics; unset border; set size ratio -1; set palette gray; set cbrange [0:255]\n";
  for (const nn::Mistake& m : mistakes) {
    gp << fmt::format("set title '#{}: {} -> {} ({:.1f}%)'\n", m.index, m.label, m.predicted, 100 * m.confidence);
    nn::plot::image(gp, &x_test.data[m.index * 784], 28, 28);
  }
  gp << "unset multiplot\n";
  png.finish();
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// --time-inference: one image through model.predict, the first call (cold:
// the model has run nothing yet, so it includes every first-touch allocation)
// and then `warm_calls` more, of which the median; then model.evaluate over
// the whole test set, `evaluate_runs` times, the fastest. The input tensors
// are made before the clock starts: only the model's work is timed.
void time_inference(nn::Sequential& model, const nn::Mnist& m, std::size_t image, std::size_t batch_size,
                    std::size_t warm_calls) {
  constexpr int evaluate_runs = 3;
  const nn::IdxArray one{{1, 28, 28}, {m.x_test.data.begin() + static_cast<long>(image * 784),
                                       m.x_test.data.begin() + static_cast<long>((image + 1) * 784)}};
  const nn::Tensor x_one = nn::images_to_tensor(one);               // (1, 28, 28, 1)
  const nn::Tensor x_test = nn::images_to_tensor(m.x_test);         // (10000, 28, 28, 1)
  const nn::Tensor y_test = nn::one_hot(m.y_test.data);             // (10000, 10)
  fmt::print("time-inference: {} threads, predict x_test[{}], evaluate {} images at batch {}\n", nn::thread_count(),
             image, x_test.dim(0), batch_size);

  auto start = std::chrono::steady_clock::now();
  nn::Tensor p = model.predict(x_one);  // (1, 10)
  const double cold = seconds_since(start);
  const std::size_t digit = nn::argmax(p)[0];
  std::vector<double> warm(warm_calls);
  for (double& t : warm) {
    start = std::chrono::steady_clock::now();
    p = model.predict(x_one);
    t = seconds_since(start);
  }
  std::nth_element(warm.begin(), warm.begin() + static_cast<long>(warm.size() / 2), warm.end());
  fmt::print("predict 1 image, cold (the first call): {:.1f} us\n", 1e6 * cold);
  fmt::print("predict 1 image, warm (median of {} more calls): {:.1f} us\n", warm_calls,
             1e6 * warm[warm.size() / 2]);
  fmt::print("predicted {}, labelled {}\n", digit, m.y_test.data[image]);

  double fastest = 0;
  nn::Evaluation e;
  for (int run = 0; run < evaluate_runs; ++run) {
    start = std::chrono::steady_clock::now();
    e = model.evaluate(x_test, y_test, batch_size);
    const double s = seconds_since(start);
    if (run == 0 || s < fastest) fastest = s;
  }
  fmt::print("evaluate {} images, batch {}: {:.4f} s, {:.0f} images/s (the fastest of {} runs)\n", x_test.dim(0),
             batch_size, fastest, static_cast<double>(x_test.dim(0)) / fastest, evaluate_runs);
  fmt::print("Test loss: {:.4f} - test accuracy: {:.4f}\n", e.loss, e.accuracy);
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch11-predict", "Chapter 11: predicts one test image (or your own digit) with chapter 10's weights.");
  nn::cli::Common common;
  cli.add_common(common);
  std::filesystem::path load = nn::cli::default_weights_dir(), image, probabilities;
  std::optional<std::int64_t> index, batch_size, warm_calls;
  bool timing = false;
  int threads = 0;
  cli.option("--load", "DIR", "the weights chapter 10 saved", &load);
  std::filesystem::path onnx;
  cli.option("--export-onnx", "FILE",
             "write the loaded model as an ONNX file and stop (ONNX Runtime runs it: tools/onnx-runtime)", &onnx);
  cli.option("--index", "I", "predict test image I", &index, "a random one", nn::cli::kIndexRange);
  cli.option("--image", "FILE", "predict your own 28x28 digit, a PGM file (P2 or P5)", &image);
  cli.option("--probabilities", "FILE",
             "also write the test set's (N, 10) probabilities to FILE as .npy, and print its loss (to compare with "
             "Keras: tools/keras-reference)",
             &probabilities);
  cli.option("--threads", "N", "worker threads (0: one per core)", &threads, {0, 256});
  cli.flag("--time-inference",
           "time model.predict on one test image (--index, else x_test[0]), cold and warm, and model.evaluate over "
           "the test set; print the times, the loss and the accuracy, and draw nothing",
           &timing);
  // Keras 3's Trainer.evaluate: "If unspecified, `batch_size` will default to 32" (keras/src/trainers/trainer.py).
  cli.option("--batch-size", "N", "images per batch of --time-inference's evaluate", &batch_size,
             "32, Keras's evaluate default", {1, 60000});
  cli.option("--warm-calls", "N", "--time-inference's warm predict calls, of which the median", &warm_calls, "1000",
             {1, 1'000'000});
  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    if (!timing && (batch_size || warm_calls))
      throw nn::Error(fmt::format("{} applies only with --time-inference", batch_size ? "--batch-size" : "--warm-calls"));
    if (timing && (!image.empty() || !probabilities.empty()))
      throw nn::Error(fmt::format("--time-inference times the test set's images: it takes no {}",
                                  image.empty() ? "--probabilities" : "--image"));
    if (threads > 0) nn::set_thread_count(static_cast<std::size_t>(threads));
    nn::Mnist m = nn::load_mnist(common.data);
    if (m.x_test.shape[0] == 0)  // nothing to pick from, nothing to evaluate
      throw nn::Error(fmt::format("{}: the test set is empty: there is no image to predict or evaluate",
                                  common.data.string()));
    nn::Sequential model = nn::cli::load_trained_model(load);
    if (!onnx.empty()) {
      // [snippet ch11-export]
      nn::export_onnx(model, onnx);  // Keras 3: model.export("mnist.onnx", format="onnx")
      // [end snippet ch11-export]
      fmt::print("{} -> {}: input (N, 28, 28, 1), probabilities (N, 10), ONNX opset {}\n", load.string(),
                 onnx.string(), nn::kOnnxOpset);
      return 0;
    }
    if (timing) {
      const std::size_t i = index ? nn::cli::checked_index("--index", *index, m.x_test.shape[0], "the test set") : 0;
      time_inference(model, m, i, static_cast<std::size_t>(batch_size.value_or(32)),
                     static_cast<std::size_t>(warm_calls.value_or(1000)));
      return 0;
    }

    std::vector<std::uint8_t> pixels;  // the 28x28 digit, 0..255, white on black
    int label = -1;
    std::string what;
    if (!image.empty()) {
      bool inverted = false;
      pixels = nn::to_mnist_digit(nn::read_pgm(image, 28), image.string(), &inverted);
      what = fmt::format("{} ({})", image.filename().string(), inverted ? "black on white: inverted" : "white on black");
    } else {
      const std::uint64_t seed = common.seed_or_random();
      const std::size_t n = m.x_test.shape[0];  // of 28x28 images: load_mnist checks
      // [snippet pick]
      std::mt19937_64 rng(seed);
      const std::size_t i = index ? nn::cli::checked_index("--index", *index, n, "the test set")
                                  : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);  // a random test image
      // [end snippet pick]
      pixels.assign(m.x_test.data.begin() + static_cast<long>(i * 784), m.x_test.data.begin() + static_cast<long>((i + 1) * 784));
      label = m.y_test.data[i];
      what = index ? fmt::format("x_test[{}]", i) : fmt::format("x_test[{}], chosen with seed {}", i, seed);
    }
    fmt::print("{}:\n", what);
    std::cout << nn::shade_image(pixels.data(), 28, 28);

    // [snippet predict]
    nn::IdxArray one{{1, 28, 28}, pixels};
    nn::Tensor x = nn::images_to_tensor(one);     // reshape to (1, 28, 28, 1) and / 255
    nn::Tensor prediction = model.predict(x);      // (1, 10) probabilities
    const std::size_t digit = nn::argmax(prediction)[0];
    // [end snippet predict]
    for (float v : prediction.span())
      if (!std::isfinite(v))
        throw nn::Error(fmt::format("{}: these weights give the probabilities {} for this image: their products "
                                    "overflow float32 (NaN or infinity); they are not usable",
                                    load.string(), fmt::join(prediction.span(), " ")));
    fmt::print("\ninput {} -> prediction {}\n", x.shape().str(), prediction.shape().str());
    for (std::size_t k = 0; k < 10; ++k)
      fmt::print("  {}  {:6.2f}%  {}{}\n", k, 100 * prediction(0, k), nn::probability_bar(prediction(0, k), 40), k == digit ? "  <- argmax" : "");
    if (label >= 0)
      fmt::print("predicted {}, labelled {}: {}\n", digit, label, static_cast<int>(digit) == label ? "correct" : "WRONG");
    else
      fmt::print("predicted {}\n", digit);
    plot_digit(pixels, fmt::format("{}: predicted {} ({:.1f}%)", what, digit, 100 * prediction(0, digit)),
               common.plots / "11-digit.png");

    // The whole test set.
    nn::Tensor p = model.predict(nn::images_to_tensor(m.x_test));
    auto predicted = nn::argmax(p);
    auto counts = nn::confusion_matrix(predicted, m.y_test.data);
    const double accuracy = nn::accuracy(p, nn::one_hot(m.y_test.data));
    fmt::print("\nThe whole test set: accuracy {:.2f}% ({} wrong of {})\n", 100 * accuracy,
               static_cast<std::size_t>(std::lround((1 - accuracy) * static_cast<double>(predicted.size()))), predicted.size());
    fmt::print("confusion matrix (rows: true label, columns: predicted)\n     ");
    for (int c = 0; c < 10; ++c) fmt::print("{:>5}", c);
    fmt::print("\n");
    for (int t = 0; t < 10; ++t) {
      fmt::print("{:>5}", t);
      for (int c = 0; c < 10; ++c) fmt::print("{:>5}", counts[t][c]);
      fmt::print("\n");
    }
    if (!probabilities.empty()) {
      nn::cli::write_probabilities(probabilities, p,
                                   model.evaluate(nn::images_to_tensor(m.x_test), nn::one_hot(m.y_test.data)));
    }
    auto mistakes = nn::most_confident_mistakes(p, m.y_test.data, 25);
    plot_confusion(counts, accuracy, common.plots / "11-confusion-matrix.png");
    plot_mistakes(mistakes, m.x_test, common.plots / "11-confident-mistakes.png");
    fmt::print("\nWrote 11-digit.png, 11-confusion-matrix.png and 11-confident-mistakes.png to {}\n", common.plots.string());
    return 0;
  });
}
