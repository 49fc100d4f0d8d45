// Chapter 03: y_train = to_categorical(y_train)
//
// Labels become one-hot rows; argmax turns them back.
#include <fmt/format.h>

#include <vector>

#include "nn/cli.hpp"
#include "nn/mnist.hpp"
#include "nn/one_hot.hpp"
#include "nn/plot.hpp"
#include "nn/shape.hpp"

namespace {

std::string row_text(const nn::Tensor& y, std::size_t n) {
  std::string s = "[";
  for (std::size_t k = 0; k < y.dim(1); ++k) s += fmt::format("{}{}", k ? ", " : "", y(n, k));
  return s + "]";
}

// The first `rows` one-hot rows as an image: one row per label, a white cell at its class.
void plot_one_hot(const nn::Tensor& y, std::span<const std::uint8_t> labels, std::size_t rows,
                  const std::filesystem::path& file) {
  nn::plot::Png png(file, 520, 900);
  auto& gp = png.gp();
  gp << fmt::format("set title 'to_categorical: the first {} training labels' noenhanced\n", rows)
     << "unset key; unset colorbox; set palette gray; set cbrange [0:1]\n"
     << "set xlabel 'class'; set ylabel 'label'; set xtics 0,1,9 out nomirror\n"
     << fmt::format("set xrange [-0.5:9.5]; set yrange [{}:-0.5]\n", rows - 0.5) << "set ytics (";
  for (std::size_t n = 0; n < rows; ++n)
    gp << fmt::format("{}'{}' {}", n ? ", " : "", labels[n], n);
  gp << ") font ',7'\nplot '-' matrix with image\n";
  nn::plot::send_matrix(gp, y.data(), rows, y.dim(1));
  png.finish();
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch03-one-hot-encoding",
                      "Chapter 03: turns MNIST labels into one-hot vectors, as to_categorical does.");
  nn::cli::Common common;
  cli.add_common(common, /*with_seed=*/false);
  int rows = 5;
  cli.option("--rows", "N", "how many one-hot rows of y_train to print", &rows, {0, 1000});
  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    nn::Mnist m = nn::load_mnist(common.data);
    nn::cli::require_images(common.data, m.x_train.shape[0], 1, "training set",
                            "there are no training labels to one-hot encode and draw");

    const std::vector<int> five{5};
    fmt::print("to_categorical(5) = {}\n\n", row_text(nn::one_hot(five), 0));

    // [snippet ch03-main]
    nn::Tensor y_train = nn::one_hot(m.y_train.data);  // (60000,) -> (60000, 10)
    nn::Tensor y_test = nn::one_hot(m.y_test.data);    // (10000,) -> (10000, 10)
    fmt::print("y_train: {} -> {}\n", nn::format_shape(m.y_train.shape), y_train.shape().str());
    fmt::print("y_test:  {} -> {}\n\n", nn::format_shape(m.y_test.shape), y_test.shape().str());
    // [end snippet ch03-main]

    const std::size_t shown = std::min<std::size_t>(static_cast<std::size_t>(rows), y_train.dim(0));
    for (std::size_t n = 0; n < shown; ++n)
      fmt::print("y_train[{}] = {}   label {}\n", n, row_text(y_train, n), m.y_train.data[n]);

    auto back = nn::argmax(y_train);
    std::size_t same = 0;
    for (std::size_t n = 0; n < back.size(); ++n) same += back[n] == m.y_train.data[n];
    fmt::print("\nargmax(y_train) equals the labels for {} of {} images\n", same, back.size());

    const std::size_t plotted = std::min<std::size_t>(50, y_train.dim(0));
    plot_one_hot(y_train, m.y_train.data, plotted, common.plots / "03-one-hot-matrix.png");
    fmt::print("Wrote {}\n", (common.plots / "03-one-hot-matrix.png").string());
    return 0;
  });
}
