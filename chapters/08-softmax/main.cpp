// Chapter 08: Dense(10, activation="softmax") and loss="categorical_crossentropy"
//
// Turns the random network's logits into probabilities, computes the loss
// and accuracy of a real batch, shows that extreme logits stay finite, and
// plots the softmax of one vector at several temperatures.
#include <fmt/format.h>

#include <cmath>

#include "nn/cli.hpp"
#include "nn/layers/conv2d.hpp"
#include "nn/layers/dense.hpp"
#include "nn/layers/flatten.hpp"
#include "nn/layers/max_pooling2d.hpp"
#include "nn/mnist.hpp"
#include "nn/normalize.hpp"
#include "nn/one_hot.hpp"
#include "nn/plot.hpp"
#include "nn/softmax.hpp"

namespace {

std::string row(const nn::Tensor& t, std::size_t i) {
  std::string s;
  for (std::size_t k = 0; k < t.dim(1); ++k) s += fmt::format("{}{:.4f}", k ? " " : "", t(i, k));
  return s;
}

void plot_temperatures(const std::filesystem::path& file) {
  const std::vector<float> z{2.0f, 1.0f, 0.1f, -1.0f, 3.0f, 0.5f, -0.5f, 1.5f, 0.0f, -2.0f};
  const std::vector<double> temperatures{0.25, 1.0, 2.0, 10.0};
  nn::plot::Png png(file, 900, 480);
  auto& gp = png.gp();
  gp << "set title 'softmax(z / T) of one vector of logits at four temperatures'\n"
     << "set xlabel 'class'; set ylabel 'probability'; set yrange [0:1]; set xtics 0,1,9; set grid ytics\n"
     << "set style data histograms; set style histogram clustered gap 1; set style fill solid 0.85 border -1\n"
     << "set key top left\nplot ";
  for (std::size_t t = 0; t < temperatures.size(); ++t)
    gp << (t ? ", " : "") << fmt::format("'-' using 2:xtic(1) title 'T = {}'", temperatures[t]);
  gp << "\n";
  for (double temperature : temperatures) {
    nn::Tensor scaled({1, z.size()});
    for (std::size_t k = 0; k < z.size(); ++k) scaled[k] = static_cast<float>(z[k] / temperature);
    nn::Tensor p = nn::softmax(scaled);
    for (std::size_t k = 0; k < z.size(); ++k) gp << fmt::format("{} {:.6f}\n", k, p[k]);
    gp << "e\n";
  }
  png.finish();
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch08-softmax", "Chapter 08: softmax, categorical cross-entropy and accuracy.");
  nn::cli::Common common;
  cli.add_common(common);
  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    const std::uint64_t seed = common.seed_or_random();
    nn::Mnist m = nn::load_mnist(common.data);
    nn::cli::require_images(common.data, m.x_train.shape[0], 32, "training set",
                            "this chapter runs its layers on the first batch of 32 training images");
    nn::Tensor x = nn::slice_batch(nn::images_to_tensor(m.x_train), 0, 32);
    nn::Tensor y = nn::one_hot(std::span(m.y_train.data).first(32));

    nn::Conv2D conv({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = seed});
    nn::MaxPooling2D pool;
    nn::Flatten flatten;
    nn::Dense hidden({.units = 100, .input_dim = 5408, .activation = nn::Activation::relu, .seed = seed + 1});
    nn::Dense output({.units = 10, .input_dim = 100, .seed = seed + 2});
    nn::ConstView logits = output.forward(hidden.forward(flatten.forward(pool.forward(conv.forward(x)))));

    // [snippet ch08-main]
    nn::Tensor p = nn::softmax(logits);                       // (32, 10), each row sums to 1
    double loss = nn::softmax_crossentropy(logits, y);        // the batch mean of -sum(y log p), from the logits
    double acc = nn::accuracy(p, y);                          // argmax(p) == argmax(y)
    nn::Tensor dz = nn::softmax_crossentropy_backward(p, y);  // (p - y) / 32, for chapter 09
    // [end snippet ch08-main]
    fmt::print("seed {}\n", seed);
    fmt::print("logits[0]  = {}\nsoftmax[0] = {}\nlabel {}, predicted {}\n\n", row(logits, 0), row(p, 0),
               m.y_train.data[0], nn::argmax(p)[0]);
    fmt::print("random network on the first batch of 32: loss {:.4f}, accuracy {:.4f}\n", loss, acc);
    fmt::print("a blind guess would give loss ln(10) = {:.4f} and accuracy 0.1\n", std::log(10.0));
    fmt::print("gradient d loss / d logits[0] = {}\n\n", row(dz, 0));

    nn::Tensor extreme({3, 4}, std::vector<float>{1000, -1000, 0, 0, 5, 5, 5, 5, 1e30f, -1e30f, -1e30f, 0});
    nn::Tensor pe = nn::softmax(extreme);
    fmt::print("extreme logits, no NaN, no inf:\n");
    for (std::size_t i = 0; i < 3; ++i) fmt::print("  softmax({}) = {}\n", i == 0 ? "1000, -1000, 0, 0" : i == 1 ? "5, 5, 5, 5" : "1e30, -1e30, -1e30, 0", row(pe, i));
    nn::Tensor wrong = nn::one_hot(std::vector<int>{1}, 4);
    fmt::print("  loss of (1000, -1000, 0, 0) against class 1, from the logits: {:.4f}\n",
               nn::softmax_crossentropy(nn::slice_batch(extreme, 0, 1), wrong));
    fmt::print("  the same from the clipped probabilities: {:.4f} = -log(1e-7)\n",
               nn::categorical_crossentropy(nn::slice_batch(pe, 0, 1), wrong));

    const auto file = common.plots / "08-softmax-temperature.png";
    plot_temperatures(file);
    fmt::print("\nWrote {}\n", file.string());
    return 0;
  });
}
