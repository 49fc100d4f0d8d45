// Chapter 13: how Keras finds gradients by itself, a gradient tape
//
//   with tf.GradientTape() as tape:
//       y_pred = model(x, training=True)
//       loss = loss_fn(y, y_pred)
//   grads = tape.gradient(loss, model.trainable_variables)
//   optimizer.apply_gradients(zip(grads, model.trainable_variables))
//
// Four parts: a two-operation graph whose gradients you can check by hand;
// the seed model's gradients on one batch, found by the tape and compared
// with the layers' hand-written backward passes; an epoch of fit with each,
// compared weight by weight; and a residual block, which no stack of the
// hand-written layers can express, checked by central differences and
// trained through the tape.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <iostream>
#include <optional>
#include <unistd.h>

#include "nn/cli.hpp"
#include "nn/error.hpp"
#include "nn/gradcheck.hpp"
#include "nn/init.hpp"
#include "nn/io.hpp"
#include "nn/layers.hpp"
#include "nn/mnist.hpp"
#include "nn/model.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/optimizer.hpp"
#include "nn/parallel.hpp"
#include "nn/plot.hpp"
#include "nn/tape.hpp"

namespace {

bool same_bits(const nn::Tensor& a, const nn::Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

double largest_difference(const nn::Tensor& a, const nn::Tensor& b) {
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(a[i]) - b[i]));
  return worst;
}

std::string megabytes(std::size_t bytes) {
  const double b = static_cast<double>(bytes);
  return b < 1e5 ? fmt::format("{:.1f} kB", b / 1e3) : fmt::format("{:.2f} MB", b / 1e6);
}

void two_operations() {
  fmt::print("1. Two operations by hand: f = sum(a * b + a)\n\n");
  // [snippet ch13-by-hand]
  nn::Tape tape;
  const nn::Tensor a_value({3}, std::vector<float>{1.0f, -2.0f, 0.5f});
  const nn::Tensor b_value({3}, std::vector<float>{4.0f, 3.0f, -1.0f});
  const nn::Var a = tape.variable(a_value), b = tape.variable(b_value);
  const nn::Var f = nn::sum(nn::add(nn::multiply(a, b), a));
  tape.backward(f);  // df/da = b + 1, df/db = a
  // [end snippet ch13-by-hand]
  fmt::print("{}", tape.listing());
  fmt::print("f = {}\ndf/da = [{}]   (b + 1)\ndf/db = [{}]   (a)\n\n", f.item(), fmt::join(a.grad().span(), ", "),
             fmt::join(b.grad().span(), ", "));
}

// Bytes per tape entry, stacked: the value, what the operation kept, the gradient.
void plot_memory(const nn::Tape& tape, const std::filesystem::path& file) {
  nn::plot::Png png(file, 1000, 560);
  auto& gp = png.gp();
  gp << "set title 'What the tape holds for one step of the seed model (batch 32), per entry' noenhanced\n"
     << "set ylabel 'kB'; set style data histograms; set style histogram rowstacked; set style fill solid 0.8\n"
     << "set boxwidth 0.7; set key top right; set xtics rotate by -40 noenhanced; set grid ytics\n"
     << "set bmargin 9; set rmargin 14\n"
     << "plot '-' using 2:xtic(1) title 'value', '-' using 2 title 'kept for backward', "
        "'-' using 2 title 'gradient'\n";
  const std::vector<nn::Tape::EntryInfo> entries = tape.entries();
  for (int part = 0; part < 3; ++part) {
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const auto& e = entries[i];
      const std::size_t bytes = part == 0 ? e.value_bytes : part == 1 ? e.kept_bytes : e.grad_bytes;
      // "parameter dense.kernel" -> "dense.kernel". A layer's name could be a
      // learner's: only letters, digits, '.' and '_' reach gnuplot's data.
      std::string label = e.op.starts_with("parameter ") ? e.op.substr(10) : e.op;
      for (char& c : label)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_') c = '?';
      gp << fmt::format("\"v{} {}\" {}\n", i, label, static_cast<double>(bytes) / 1e3);
    }
    gp << "e\n";
  }
  png.finish();
}

// The seed model's gradients on one batch: the tape against the layers.
void seed_model_gradients(std::uint64_t seed, const nn::Tensor& x, const nn::Tensor& y,
                          const std::filesystem::path& plots) {
  fmt::print("2. The seed model on one batch of {} training images (seed {})\n\n", x.dim(0), seed);
  nn::Sequential model = nn::make_mnist_model(seed);
  model.compile(nn::make_optimizer("sgd", 0.01f));
  std::vector<nn::Tensor> fused, unfused;
  model.compute_gradients(x, y);  // the layers' backward passes, the convolution fused with its pooling
  for (nn::Parameter* p : model.parameters()) fused.push_back(p->grad);
  model.set_fusion(false);
  model.compute_gradients(x, y);  // each layer on its own
  for (nn::Parameter* p : model.parameters()) unfused.push_back(p->grad);

  // [snippet ch13-seed-model]
  nn::Tape tape;
  const nn::Var logits = model.record(tape.input(x), /*training=*/true);  // every layer's record()
  const nn::Var loss = nn::softmax_crossentropy(logits, y);
  tape.backward(loss);  // every parameter's grad
  // [end snippet ch13-seed-model]
  fmt::print("The recorded graph ({} entries):\n{}", tape.size(), tape.listing());
  std::size_t values = 0, kept = 0, grads = 0;
  for (const auto& e : tape.entries()) values += e.value_bytes, kept += e.kept_bytes, grads += e.grad_bytes;
  fmt::print("loss {:.6f}; the tape holds {} after backward: values {}, kept for backward {}, gradients {}\n\n",
             loss.item(), megabytes(tape.bytes()), megabytes(values), megabytes(kept), megabytes(grads));
  fmt::print("{:<16} {:>28} {:>40}\n", "parameter", "against the layers, unfused", "against the fused convolution");
  const auto named = model.named_parameters();
  for (std::size_t i = 0; i < named.size(); ++i) {
    const nn::Tensor& g = named[i].parameter->grad;
    const double d = largest_difference(g, fused[i]);
    fmt::print("{:<16} {:>28} {:>40}\n", named[i].name,
               same_bits(g, unfused[i]) ? "the same bits" : fmt::format("differ by {:.3g}", largest_difference(g, unfused[i])),
               d == 0 ? std::string("the same bits") : fmt::format("largest difference {:.3g}", d));
  }
  nn::create_folders(plots);
  plot_memory(tape, plots / "13-tape-memory.png");
  fmt::print("\n");
}

// fit with the layers' backward passes, then with the tape's train step.
void fit_both_ways(std::uint64_t seed, const nn::Tensor& x_train, const nn::Tensor& y_train, const nn::Tensor& x_test,
                   const nn::Tensor& y_test, int epochs, std::int64_t max_steps) {
  fmt::print("3. fit, twice: the layers' backward passes (fusion off), then a train step with the tape\n\n");
  nn::Sequential by_hand = nn::make_mnist_model(seed), by_tape = nn::make_mnist_model(seed);
  by_hand.set_fusion(false);
  by_hand.compile(nn::make_optimizer("sgd", 0.01f));
  by_tape.compile(nn::make_optimizer("sgd", 0.01f));
  const bool live = isatty(STDOUT_FILENO) == 1;
  nn::FitOptions options{.epochs = epochs, .seed = seed, .max_steps = max_steps, .progress = &std::cout, .live = live};
  fmt::print("the layers:\n");
  const nn::History h1 = by_hand.fit(x_train, y_train, options);
  // [snippet ch13-train-step]
  options.train_step = [&](const nn::Tensor& x, const nn::Tensor& y, std::size_t* correct) {
    return nn::tape_train_step(by_tape, x, y, correct);  // Keras's train_step with a GradientTape
  };
  // [end snippet ch13-train-step]
  fmt::print("the tape:\n");
  const nn::History h2 = by_tape.fit(x_train, y_train, options);
  const nn::Evaluation e1 = by_hand.evaluate(x_test, y_test), e2 = by_tape.evaluate(x_test, y_test);
  std::size_t same = 0;
  const auto w1 = by_hand.named_parameters(), w2 = by_tape.named_parameters();
  for (std::size_t i = 0; i < w1.size(); ++i) same += same_bits(w1[i].parameter->value, w2[i].parameter->value);
  double s1 = 0, s2 = 0;
  for (const auto& e : h1.epochs) s1 += e.seconds;
  for (const auto& e : h2.epochs) s2 += e.seconds;
  fmt::print("test accuracy: the layers {:.4f}, the tape {:.4f}; weights with the same bits: {} of {} tensors\n",
             e1.accuracy, e2.accuracy, same, w1.size());
  if (h1.steps > 0)
    fmt::print("time per step: the layers {:.3f} ms, the tape {:.3f} ms ({:.2f} times)\n\n",
               1e3 * s1 / static_cast<double>(h1.steps), 1e3 * s2 / static_cast<double>(h2.steps), s2 / s1);
  if (same != w1.size()) throw nn::Error("the tape's weights differ from the layers': see the table above");
}


void residual_model(std::uint64_t seed, const nn::Tensor& x_train, const nn::Tensor& y_train, const nn::Tensor& x_test,
                    const nn::Tensor& y_test, int epochs, std::int64_t max_steps) {
  fmt::print("4. A residual block: relu(x + W2 relu(W1 x + b1) + b2)\n\n");
  // The block's gradients by central differences, on 8 images' features.
  nn::TapeLayer probe = nn::make_residual_block(64, seed);
  const std::vector<double> values = nn::random_doubles(8 * 64, seed);
  nn::Tensor x_probe({8, 64});
  for (std::size_t i = 0; i < x_probe.size(); ++i) x_probe[i] = static_cast<float>(values[i]);
  constexpr double h = 1e-3;  // steps of 0.001: few of them cross a ReLU's kink
  const std::vector<nn::LayerGradientCheck> checks = nn::check_layer_gradients(probe, x_probe, seed, h);
  for (const auto& c : checks)
    fmt::print("  {:<10} {:>4} entries checked, {} at a kink, worst error {:.2e} of the largest gradient\n", c.tensor,
               c.checked, c.at_kink, c.relative_error());
  const std::string problems = nn::layer_gradient_problems(probe, x_probe, seed, 1e-3, h);
  if (!problems.empty()) throw nn::Error("the residual block's gradients fail the check:\n" + problems);
  fmt::print("  the tape's gradients agree with the central differences\n\n");

  nn::Sequential model({28, 28, 1});
  model.add(nn::Flatten());
  model.add(nn::Dense({.units = 64, .activation = nn::Activation::relu, .seed = seed}));
  model.add(nn::make_residual_block(64, seed + 10));
  model.add(nn::Dense({.units = 10, .seed = seed + 20}));
  model.compile(nn::make_optimizer("sgd", 0.01f));
  std::cout << model.summary();
  model.fit(x_train, y_train,
            {.epochs = epochs, .seed = seed, .max_steps = max_steps, .progress = &std::cout,
             .live = isatty(STDOUT_FILENO) == 1});
  const nn::Evaluation e = model.evaluate(x_test, y_test);
  fmt::print("Test loss: {:.4f} - test accuracy: {:.4f}\n", e.loss, e.accuracy);
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch13-gradient-tape",
                      "Chapter 13: the gradients of the seed model and of a residual block, found by a gradient tape.");
  nn::cli::Common common;
  cli.add_common(common);
  int epochs = 1, threads = 0;
  std::optional<std::int64_t> max_steps;
  cli.option("--epochs", "N", "epochs of each fit (parts 3 and 4)", &epochs, {1, 1000});
  cli.option("--max-steps", "N", "stop each fit after N batches", &max_steps, "no limit", {0, 1'000'000'000});
  cli.option("--threads", "N", "worker threads (0: one per core)", &threads, {0, 256});
  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    if (threads > 0) nn::set_thread_count(static_cast<std::size_t>(threads));
    const std::uint64_t seed = common.seed_or_random();
    fmt::print("{}, seed {}\n\n", nn::kernels_line(), seed);
    nn::Mnist m = nn::load_mnist(common.data);
    nn::cli::require_images(common.data, m.x_train.shape[0], 32, "training set", "a batch of 32 is needed");
    nn::cli::require_images(common.data, m.x_test.shape[0], 1, "test set", "there is nothing to evaluate on");
    const nn::Tensor x_train = nn::images_to_tensor(m.x_train), x_test = nn::images_to_tensor(m.x_test);
    const nn::Tensor y_train = nn::one_hot(m.y_train.data), y_test = nn::one_hot(m.y_test.data);

    two_operations();
    seed_model_gradients(seed, nn::slice_batch(x_train, 0, 32), nn::slice_batch(y_train, 0, 32), common.plots);
    fit_both_ways(seed, x_train, y_train, x_test, y_test, epochs, max_steps.value_or(-1));
    residual_model(seed, x_train, y_train, x_test, y_test, epochs, max_steps.value_or(-1));
    fmt::print("\nWrote {}\n", (common.plots / "13-tape-memory.png").string());
    return 0;
  });
}
