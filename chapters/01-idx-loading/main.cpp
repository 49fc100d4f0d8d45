// Chapter 01: (x_train, y_train), (x_test, y_test) = mnist.load_data()
//
// Loads the four MNIST IDX files, prints their shapes as Keras does, draws the
// first digit in the terminal and writes two plots.
#include <fmt/format.h>

#include <array>
#include <iostream>

#include "nn/cli.hpp"
#include "nn/error.hpp"
#include "nn/mnist.hpp"
#include "nn/plot.hpp"
#include "nn/shape.hpp"
#include "nn/terminal.hpp"

namespace {

// A 5x5 grid of the first 25 training digits, each titled with its label.
void plot_digit_grid(const nn::Mnist& m, const std::filesystem::path& file) {
  const std::size_t h = m.x_train.shape[1], w = m.x_train.shape[2];
  nn::plot::Png png(file, 900, 900);
  auto& gp = png.gp();
  gp << "set multiplot layout 5,5 title 'The first 25 training digits (label above each)'\n"
     << "unset key; unset colorbox; unset tics; unset border\n"
     << "set palette gray; set cbrange [0:255]; set size ratio -1\n";
  for (std::size_t i = 0; i < 25 && i < m.x_train.shape[0]; ++i) {
    gp << fmt::format("set title '{}'\n", m.y_train.data[i]);
    nn::plot::image(gp, &m.x_train.data[i * h * w], h, w);
  }
  gp << "unset multiplot\n";
  png.finish();
}

std::array<std::size_t, 10> count_labels(const nn::IdxArray& y) {
  std::array<std::size_t, 10> counts{};
  for (std::uint8_t label : y.data) ++counts[label];
  return counts;
}

// The share of each label in both sets, side by side.
void plot_label_histogram(const std::array<std::size_t, 10>& train,
                          const std::array<std::size_t, 10>& test, const std::filesystem::path& file) {
  std::size_t n_train = 0, n_test = 0;
  for (int d = 0; d < 10; ++d) n_train += train[d], n_test += test[d];
  nn::plot::Png png(file, 800, 500);
  auto& gp = png.gp();
  gp << "set title 'How often each label occurs'\n"
     << "set xlabel 'label'; set ylabel 'share of the set (%)'\n"
     << "set style data histograms; set style histogram clustered gap 1\n"
     << "set style fill solid 0.8 border -1; set yrange [0:*]; set grid ytics\n"
     << fmt::format("plot '-' using 2:xtic(1) title 'train ({} images)', "
                    "'-' using 2:xtic(1) title 'test ({} images)'\n", n_train, n_test);
  for (int d = 0; d < 10; ++d) gp << fmt::format("{} {:.4f}\n", d, 100.0 * train[d] / n_train);
  gp << "e\n";
  for (int d = 0; d < 10; ++d) gp << fmt::format("{} {:.4f}\n", d, 100.0 * test[d] / n_test);
  gp << "e\n";
  png.finish();
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch01-idx-loading",
                      "Chapter 01: loads MNIST from its IDX files, as mnist.load_data() does.");
  nn::cli::Common common;
  cli.add_common(common, /*with_seed=*/false);
  std::int64_t index = 0;
  cli.option("--index", "I", "which training digit to draw in the terminal", &index, nn::cli::kIndexRange);

  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    fmt::print("Loading the dataset from {}\n\n", common.data.string());
    // [snippet ch01-load]
    nn::Mnist m = nn::load_mnist(common.data, nn::any_image_size);  // the later chapters ask for 28x28
    fmt::print("x_train: {} uint8\n", nn::format_shape(m.x_train.shape));
    fmt::print("y_train: {} uint8\n", nn::format_shape(m.y_train.shape));
    fmt::print("x_test:  {} uint8\n", nn::format_shape(m.x_test.shape));
    fmt::print("y_test:  {} uint8\n", nn::format_shape(m.y_test.shape));
    // [end snippet ch01-load]
    nn::cli::require_images(common.data, m.x_test.shape[0], 1, "test set",
                            "there are no test labels to count beside the training labels");

    fmt::print("\nThe first ten training labels: ");
    for (std::size_t i = 0; i < 10 && i < m.y_train.data.size(); ++i) fmt::print("{} ", m.y_train.data[i]);
    fmt::print("\n");

    const std::size_t h = m.x_train.shape[1], w = m.x_train.shape[2];  // both > 0: load_mnist checks
    const std::size_t i = nn::cli::checked_index("--index", index, m.x_train.shape[0], "the training set");
    fmt::print("\nx_train[{}], labelled {}:\n", i, m.y_train.data[i]);
    std::cout << nn::shade_image(&m.x_train.data[i * h * w], h, w);

    auto train = count_labels(m.y_train), test = count_labels(m.y_test);
    fmt::print("\nlabel   train    test\n");
    for (int d = 0; d < 10; ++d) fmt::print("{:>5} {:>7} {:>7}\n", d, train[d], test[d]);

    plot_digit_grid(m, common.plots / "01-first-25-digits.png");
    plot_label_histogram(train, test, common.plots / "01-label-histogram.png");
    fmt::print("\nWrote {} and {}\n", (common.plots / "01-first-25-digits.png").string(),
               (common.plots / "01-label-histogram.png").string());
    return 0;
  });
}
