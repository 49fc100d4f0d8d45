// Chapter 09: SGD(learning_rate=0.01), and backpropagation through the stack
//
// First the update rules on a toy 2-D bowl, plotted as paths over its
// contours; then one real SGD step on one batch of 32, with the loss before
// and after. With --gradcheck, instead: the whole model's backward pass
// against central differences, in double (--break LAYER plants a bug). With
// --adam-bias N: the first N steps of Adam on the real network, with and
// without its bias correction, and the size of each step, plotted.
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <random>

#include "nn/cli.hpp"
#include "nn/error.hpp"
#include "nn/model_gradcheck.hpp"
#include "nn/mnist.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"
#include "nn/plot.hpp"

namespace {

// A long, narrow bowl: f(u, v) = u^2 / 20 + v^2, steep across (v) and
// shallow along (u). Its gradient is (u / 10, 2 v).
struct Path {
  std::string label;
  std::vector<std::pair<float, float>> points;
};

Path descend(nn::Optimizer& opt, int steps) {
  nn::Parameter p("uv", nn::Tensor({2}, std::vector<float>{-9.0f, 2.5f}));  // the point (u, v) and its gradient
  nn::Tensor& w = p.value;
  Path path{opt.describe(), {{w[0], w[1]}}};
  nn::Parameter* params[] = {&p};
  for (int i = 0; i < steps; ++i) {
    p.grad[0] = w[0] / 10.0f;  // df/du
    p.grad[1] = 2.0f * w[1];   // df/dv
    opt.step(params);
    path.points.push_back({w[0], w[1]});
  }
  return path;
}

void plot_paths(const std::vector<Path>& paths, int steps, const std::filesystem::path& file) {
  nn::plot::Png png(file, 1100, 520);
  auto& gp = png.gp();
  gp << fmt::format("set title 'Four optimizers on f(u, v) = u^2/20 + v^2: {} steps from (-9, 2.5) to the minimum at (0, 0)'\n", steps)
     << "set xrange [-10:2]; set yrange [-3:3]; set xlabel 'u'; set ylabel 'v'; set key below\n"
     << "set isosamples 120,120; set contour base; unset surface; set cntrparam levels discrete 0.05,0.2,0.5,1,2,3,4,6,8\n"
     << "set table $contours\nsplot x**2/20 + y**2\nunset table\nunset contour\n"
     << "plot $contours with lines lc rgb '#bbbbbb' notitle";
  // Colours that stay readable on white (gnuplot's fourth default is a pale yellow).
  const char* colours[] = {"#009e73", "#56b4e9", "#e69f00", "#7b3294"};
  for (std::size_t i = 0; i < paths.size(); ++i)
    gp << fmt::format(", '-' with linespoints pt 7 ps 0.5 lw 2 lc rgb '{}' title ", colours[i % 4])
       << nn::plot::quote(paths[i].label) << " noenhanced";
  gp << "\n";
  for (const Path& p : paths) {
    for (auto [u, v] : p.points) gp << fmt::format("{} {}\n", u, v);
    gp << "e\n";
  }
  png.finish();
}

// The whole model's gradients against central differences, in double, on a
// few images (nn::seeded_gradient_check); 0 when every tensor agrees, 1 when
// one does not (or when the batch sits too close to a kink for the check to
// say anything).
int gradcheck(std::uint64_t seed, const std::string& broken) {
  const double h = 1e-6;
  nn::SeededGradientCheck s = nn::seeded_gradient_check(seed, broken, h);
  const nn::ModelGradientCheck& check = s.check;
  const nn::KinkMargins& m = check.margins;
  fmt::print("Gradient check, seed {}: the model in double on {} images of random pixels, biases from [-0.1, 0.1)\n",
             seed, s.x.dim(0));
  if (!broken.empty()) fmt::print("planted bug: {}'s kernel and bias gradients have the wrong sign\n", broken);
  fmt::print("loss {:.6f}; central differences with h = {:g}\n", check.loss, h);
  fmt::print("closest kinks, on draw {} of the images (a step of h must not reach one):\n", s.draws);
  fmt::print("  smallest |conv pre-activation|  {:.3g} (> 2h)\n", m.conv);
  fmt::print("  smallest pooling-window gap     {:.3g} (> 2h)\n", m.pool_gap);
  fmt::print("  smallest |dense pre-activation| {:.3g} (> {:.3g}h: a step moves one by up to {:.3g}h)\n", m.hidden,
             2 * m.hidden_reach, m.hidden_reach);
  if (!m.clear(h)) {
    fmt::print("a unit sits within reach of a kink after {} draws: the differences say nothing there\n", s.draws);
    return 1;
  }
  // Each entry's error over max(|analytic|, |numeric|, 1% of the tensor's
  // largest gradient): see nn::kGradientFloor.
  const double tolerance = nn::kGradientTolerance;
  fmt::print("\n  {:<15} {:>16}  {:>12}  {:>12}  {:>12}\n", "weight tensor", "entries checked", "largest |g|",
             "max |error|", "max rel. err");
  const auto weights = s.model.named_parameters();
  for (std::size_t i = 0; i < check.tensors.size(); ++i) {
    const nn::TensorGradientCheck& t = check.tensors[i];
    const double error = t.max_relative_error();
    fmt::print("  {:<15} {:>6} of {:>6}  {:>12.3e}  {:>12.3e}  {:>12.3e}{}\n", t.name, t.checked(),
               weights[i].parameter->value.size(), t.largest(), t.max_abs_error(), error,
               error <= tolerance ? "" : "  <- WRONG");
  }
  const std::vector<std::string> bad = nn::wrong_tensors(check, tolerance);
  if (bad.empty()) {
    fmt::print("\nall six tensors within {:g}: the backward pass gives the slope of the loss\n", tolerance);
    return 0;
  }
  fmt::print("\n{} of six tensors off by more than {:g}: look at {}'s backward pass\n", bad.size(), tolerance, bad[0]);
  return 1;
}

// The first `steps` steps of Adam (Keras's defaults, with or without the bias
// correction) on the real network, from seed's initial weights, on the
// training batches of 32 in order: the root mean square of each step's change
// over all 542,230 weights.
std::vector<double> adam_step_sizes(const nn::Tensor& images, const nn::Tensor& labels, std::uint64_t seed, int steps,
                                    bool corrected) {
  nn::Sequential model = nn::make_mnist_model(seed);
  model.compile(std::make_unique<nn::Adam>(nn::AdamOptions{.bias_correction = corrected}));
  std::vector<double> rms;
  std::vector<nn::Tensor> before;
  for (int t = 0; t < steps; ++t) {
    before.clear();
    for (const nn::Parameter* p : model.parameters()) before.push_back(p->value);
    const std::size_t lo = static_cast<std::size_t>(t) * 32;
    model.train_on_batch(nn::slice_batch(images, lo, 32), nn::slice_batch(labels, lo, 32));
    double sum = 0;
    std::size_t count = 0;
    const auto params = model.parameters();
    for (std::size_t k = 0; k < params.size(); ++k)
      for (std::size_t i = 0; i < params[k]->size(); ++i) {
        const double d = static_cast<double>(params[k]->value[i]) - before[k][i];
        sum += d * d;
        ++count;
      }
    rms.push_back(std::sqrt(sum / static_cast<double>(count)));
  }
  return rms;
}

// For a gradient that stays the same, uncorrected Adam's step is the
// corrected one times (1 - b1^t) / sqrt(1 - b2^t): m and s both start at 0,
// but s (whose root is taken) is biased far more.
double uncorrected_ratio(int t) { return (1 - std::pow(0.9, t)) / std::sqrt(1 - std::pow(0.999, t)); }

void plot_adam_steps(const std::vector<double>& with, const std::vector<double>& without,
                     const std::filesystem::path& file) {
  nn::plot::Png png(file, 1000, 520);
  auto& gp = png.gp();
  gp << fmt::format("set title 'Adam (lr 0.001) on the real network: the size of its first {} steps'\n", with.size())
     << "set xlabel 'step t'; set ylabel 'RMS of the step over all 542,230 weights'; set key top right\n"
     << "set logscale y; set format y '%.0e'; set grid\n"
     << "plot '-' with linespoints pt 7 ps 0.6 lw 2 lc rgb '#009e73' title 'with the bias correction (Keras)', "
     << "'-' with linespoints pt 7 ps 0.6 lw 2 lc rgb '#e69f00' title 'without it', "
     << "'-' with lines dt 2 lw 1.5 lc rgb '#7b3294' title "
     << nn::plot::quote("with it x (1 - b1^t) / sqrt(1 - b2^t): what a steady gradient predicts without it")
     << " noenhanced\n";
  for (std::size_t t = 0; t < with.size(); ++t) gp << fmt::format("{} {}\n", t + 1, with[t]);
  gp << "e\n";
  for (std::size_t t = 0; t < without.size(); ++t) gp << fmt::format("{} {}\n", t + 1, without[t]);
  gp << "e\n";
  for (std::size_t t = 0; t < with.size(); ++t)
    gp << fmt::format("{} {}\n", t + 1, with[t] * uncorrected_ratio(static_cast<int>(t) + 1));
  gp << "e\n";
  png.finish();
}

int adam_bias_experiment(const nn::cli::Common& common, std::uint64_t seed, int steps) {
  nn::Mnist m = nn::load_mnist(common.data);
  const std::size_t needed = static_cast<std::size_t>(steps) * 32;
  nn::cli::require_images(common.data, m.x_train.shape[0], needed, "training set",
                          fmt::format("--adam-bias {} takes {} batches of 32 training images", steps, steps));
  const nn::Tensor images = nn::slice_batch(nn::images_to_tensor(m.x_train), 0, needed);  // (32 N, 28, 28, 1)
  const nn::Tensor labels = nn::one_hot(std::span(m.y_train.data).first(needed));
  const std::vector<double> with = adam_step_sizes(images, labels, seed, steps, true);
  const std::vector<double> without = adam_step_sizes(images, labels, seed, steps, false);
  fmt::print("seed {}: Adam(learning_rate=0.001), the first {} steps on batches of 32, with and without the bias "
             "correction;\nthe RMS of each step over all weights, and the ratio a steady gradient predicts, "
             "(1 - 0.9^t) / sqrt(1 - 0.999^t):\n\n",
             seed, steps);
  fmt::print("  {:>4}  {:>12}  {:>12}  {:>7}  {:>9}\n", "t", "with", "without", "ratio", "predicted");
  for (int t = 1; t <= steps; ++t)
    if (t <= 5 || t % 5 == 0 || t == steps)
      fmt::print("  {:>4}  {:>12.4e}  {:>12.4e}  {:>7.3f}  {:>9.3f}\n", t, with[t - 1], without[t - 1],
                 without[t - 1] / with[t - 1], uncorrected_ratio(t));
  const auto file = common.plots / "09-adam-bias-correction.png";
  plot_adam_steps(with, without, file);
  fmt::print("\nWrote {}\n", file.string());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch09-sgd", "Chapter 09: gradient descent, SGD and friends, and one real training step.");
  nn::cli::Common common;
  cli.add_common(common);
  int steps = 30;
  cli.option("--steps", "N", "optimizer steps on the toy bowl", &steps, {1, 10000});
  bool check = false;
  std::string broken;
  cli.flag("--gradcheck", "check the whole model's gradients against central differences, in double, and stop", &check);
  cli.option("--break", "LAYER", "with --gradcheck: flip the sign of a layer's gradients (conv2d, dense or dense_1)",
             &broken);
  int adam_bias = 0;
  cli.option("--adam-bias", "N",
             "instead: the first N steps of Adam on the real network with and without its bias correction, "
             "their sizes plotted (09-adam-bias-correction.png), and stop",
             &adam_bias, {1, 1000});
  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    if (steps < 1 || steps > 10000) throw nn::Error(fmt::format("--steps {} is outside 1..10000", steps));
    const std::uint64_t seed = common.seed_or_random();
    if (!broken.empty() && !check) throw nn::Error("--break needs --gradcheck");
    if (!broken.empty() && broken != "conv2d" && broken != "dense" && broken != "dense_1")
      throw nn::Error(fmt::format("--break {}: no such layer (conv2d, dense or dense_1)", broken));
    if (check) return gradcheck(seed, broken);
    if (adam_bias > 0) return adam_bias_experiment(common, seed, adam_bias);

    // The four rules on the bowl. Learning rates are chosen for the bowl, not Keras's defaults.
    nn::SGD sgd({.learning_rate = 0.9f});
    nn::SGD momentum({.learning_rate = 0.1f, .momentum = 0.9f});
    nn::RMSprop rmsprop({.learning_rate = 0.3f});
    nn::Adam adam({.learning_rate = 0.5f});
    std::vector<Path> paths;
    for (nn::Optimizer* opt : std::initializer_list<nn::Optimizer*>{&sgd, &momentum, &rmsprop, &adam})
      paths.push_back(descend(*opt, steps));
    fmt::print("On the bowl f(u, v) = u^2/20 + v^2, from (-9, 2.5), after {} steps:\n", steps);
    for (const Path& p : paths) {
      auto [u, v] = p.points.back();
      fmt::print("  {:<66} at ({:7.4f}, {:7.4f}), f = {:.6f}\n", p.label, u, v, u * u / 20.0 + v * v);
    }

    // One real step: the Keras model, one batch of 32, SGD(learning_rate=0.01).
    nn::Mnist m = nn::load_mnist(common.data);
    nn::cli::require_images(common.data, m.x_train.shape[0], 32, "training set",
                            "this chapter runs its layers on the first batch of 32 training images");
    nn::Tensor x = nn::slice_batch(nn::images_to_tensor(m.x_train), 0, 32);
    nn::Tensor y = nn::one_hot(std::span(m.y_train.data).first(32));
    // [snippet ch09-step]
    nn::Sequential model = nn::make_mnist_model(seed);
    model.compile(nn::make_optimizer("sgd", 0.01f));
    const double before = model.train_on_batch(x, y);  // forward, backward, w -= lr * g
    const double after = model.compute_gradients(x, y);  // the loss again, with the new weights
    // [end snippet ch09-step]
    fmt::print("\nseed {}\none SGD step (learning_rate=0.01) on the first batch of 32:\n", seed);
    fmt::print("  loss before {:.6f}\n  loss after  {:.6f}  ({:+.6f})\n", before, after, after - before);

    const auto file = common.plots / "09-optimizer-paths.png";
    plot_paths(paths, steps, file);
    fmt::print("\nWrote {}\n", file.string());
    return 0;
  });
}
