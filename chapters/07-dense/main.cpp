// Chapter 07: Dense(100, activation="relu") and Dense(10)
//
// Builds both Dense layers of the model, prints their shapes and parameter
// counts, runs a real batch through the random network, times the naive
// matrix multiply against chapter 04's GEMM, and plots the weights of a few
// units as 13x13 mosaics of their 32 channels; with --load DIR, the same
// units of the trained layer chapter 10 saved.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "nn/cli.hpp"
#include "nn/conv2d.hpp"
#include "nn/dense.hpp"
#include "nn/error.hpp"
#include "nn/layers/flatten.hpp"
#include "nn/layers/dense.hpp"
#include "nn/layers/max_pooling2d.hpp"
#include "nn/layers/conv2d.hpp"
#include "nn/mnist.hpp"
#include "nn/normalize.hpp"
#include "nn/plot.hpp"
#include "nn/pooling.hpp"

namespace {

// The weights of `units` units of a Dense(in = 13*13*32): unit u's column of
// the kernel, read back as (13, 13, 32), drawn as 32 tiles of 13x13 (channel
// c at row c / 8, column c % 8).
void plot_units(const nn::Tensor& kernel, std::size_t units, const std::string& title,
                const std::filesystem::path& file) {
  float limit = 0;  // one colour scale for all units, symmetric about 0
  for (float v : kernel.span()) limit = std::max(limit, std::abs(v));
  // Up to 4 units: one mosaic per row, 330 pixels each. More: 4 mosaics per
  // row and 190 pixels per row, so that all 100 units fit in 1200x4810
  // pixels (cairo refuses an image much past 32,000 pixels).
  const std::size_t grid_cols = units <= 4 ? 1 : 4, grid_rows = (units + grid_cols - 1) / grid_cols;
  const int height = grid_cols == 1 ? 330 * static_cast<int>(units) : 60 + 190 * static_cast<int>(grid_rows);
  nn::plot::Png png(file, 1200, height);
  auto& gp = png.gp();
  gp << fmt::format("set multiplot layout {},{} title {}\n", grid_rows, grid_cols, nn::plot::quote(title))
     << "unset key; unset tics; set size ratio -1; set cbtics scale 0.5 font ',8'\n"
     << fmt::format("set palette defined (-1 '#2166ac', 0 'white', 1 '#b2182b'); set cbrange [{}:{}]\n", -limit, limit);
  const std::size_t side = 13, channels = 32, cols = 8, rows = channels / cols;
  // Each tile numbered by its channel in its top-left corner, so that a
  // stroke can be traced to the convolution filter (chapter 04) that feeds
  // it; the same labels serve every mosaic. Four to a row the tiles are too
  // small for text.
  gp << "set style textbox opaque fc rgb 'white' noborder margins 0.5,0.2\n";
  if (grid_cols == 1)
    for (std::size_t c = 0; c < channels; ++c)
      gp << fmt::format("set label {} '{}' at {},{} left front boxed font ',8' tc rgb 'black'\n", c + 1, c,
                        static_cast<double>((c % cols) * (side + 1)) - 0.3,
                        static_cast<double>((c / cols) * (side + 1)) + 0.9);
  for (std::size_t u = 0; u < units; ++u) {
    // The mosaic: 4 rows x 8 columns of 13x13 tiles, a one-pixel gap between tiles.
    const std::size_t mh = rows * (side + 1) - 1, mw = cols * (side + 1) - 1;
    std::vector<float> mosaic(mh * mw, NAN);
    for (std::size_t c = 0; c < channels; ++c)
      for (std::size_t i = 0; i < side; ++i)
        for (std::size_t j = 0; j < side; ++j)
          mosaic[((c / cols) * (side + 1) + i) * mw + (c % cols) * (side + 1) + j] =
              kernel(((i * side + j) * channels + c), u);  // kernel: (5408, 100), row (i, j, c)
    gp << fmt::format("set title 'unit {}'\n", u);
    nn::plot::image(gp, mosaic.data(), mh, mw);
  }
  gp << "unset multiplot\n";
  png.finish();
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch07-dense", "Chapter 07: Dense(100, activation=\"relu\") and Dense(10) as matrix products.");
  nn::cli::Common common;
  cli.add_common(common);
  int units = 3;
  cli.option("--units", "N", "how many Dense(100) units to plot", &units, {1, 100});
  std::filesystem::path load;
  cli.option("--load", "DIR",
             "also draw the trained units from the weights chapter 10 saved in DIR (it saves them in " +
                 nn::cli::default_weights_dir().string() + ")",
             &load);
  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    const std::uint64_t seed = common.seed_or_random();
    nn::Mnist m = nn::load_mnist(common.data);
    nn::cli::require_images(common.data, m.x_train.shape[0], 32, "training set",
                            "this chapter runs its layers on the first batch of 32 training images");
    nn::Tensor x = nn::slice_batch(nn::images_to_tensor(m.x_train), 0, 32);

    nn::Conv2D conv({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = seed});
    nn::MaxPooling2D pool;
    nn::Flatten flatten;
    // [snippet ch07-main]
    nn::Dense hidden({.units = 100, .input_dim = 5408, .activation = nn::Activation::relu, .seed = seed + 1});
    nn::Dense output({.units = 10, .input_dim = 100, .seed = seed + 2});
    nn::ConstView features = flatten.forward(pool.forward(conv.forward(x)));  // (32, 5408), a view
    nn::ConstView h = hidden.forward(features);                             // (32, 100)
    nn::ConstView logits = output.forward(h);                               // (32, 10)
    // [end snippet ch07-main]
    fmt::print("seed {}\n", seed);
    fmt::print("dense:   kernel {} + bias {} = {} params\n", hidden.kernel.shape().str(), hidden.bias.shape().str(),
               hidden.param_count());
    fmt::print("dense_1: kernel {} + bias {} = {} params\n\n", output.kernel.shape().str(), output.bias.shape().str(),
               output.param_count());
    fmt::print("features {} -> Dense(100, relu) -> {} -> Dense(10) -> {}\n", features.shape().str(), h.shape().str(),
               logits.shape().str());
    std::size_t active = 0;
    for (float v : h.span()) active += v > 0;
    fmt::print("hidden units active (> 0) at initialisation: {:.1f}%\n", 100.0 * active / h.size());
    fmt::print("logits of image 0 (label {}):", m.y_train.data[0]);
    for (std::size_t k = 0; k < 10; ++k) fmt::print(" {:.3f}", logits(0, k));
    fmt::print("\n\n");

    // The big product, naive against fast, on this batch.
    nn::Tensor y({32, 100});
    for (auto v : nn::dense_variants()) {
      const int repeats = v == nn::DenseVariant::naive ? 3 : 50;
      auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < repeats; ++r) nn::dense_forward(features, hidden.kernel.value, hidden.bias.value, y, v);
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / repeats;
      fmt::print("(32 x 5408) . (5408 x 100), {:<5}: {:7.3f} ms, {:6.2f} GFLOP/s\n", nn::dense_variant_name(v), ms,
                 2.0 * 32 * 5408 * 100 / (ms * 1e6));
    }

    const auto file = common.plots / "07-dense-units.png";
    plot_units(hidden.kernel.value, static_cast<std::size_t>(units),
               "Dense(100) at initialisation: the 5408 weights of a unit as 32 channels of 13x13", file);
    fmt::print("\nWrote {}\n", file.string());

    if (!load.empty()) {
      // [snippet ch07-load]
      nn::Sequential model = nn::cli::load_trained_model(load);  // chapter 10's weights
      auto& trained = dynamic_cast<nn::Dense&>(*model.layers()[3]);  // conv2d, pooling, flatten, dense
      // [end snippet ch07-load]
      const auto trained_file = common.plots / "07-trained-dense-units.png";
      plot_units(trained.kernel.value, static_cast<std::size_t>(units),
                 "Dense(100) after training: the 5408 weights of a unit as 32 channels of 13x13", trained_file);
      fmt::print("Wrote {}\n", trained_file.string());
      // make_mnist_model(seed) starts its Dense(100) from the same weights as
      // `hidden` above: with chapter 10's --seed, the difference is what
      // training changed.
      nn::Tensor change = trained.kernel.value;  // (5408, 100)
      for (std::size_t i = 0; i < change.size(); ++i) change[i] -= hidden.kernel.value[i];
      const auto change_file = common.plots / "07-dense-units-change.png";
      plot_units(change, static_cast<std::size_t>(units),
                 fmt::format("What training changed: trained minus initial weights (if chapter 10 ran with --seed {})",
                             seed),
                 change_file);
      float largest = 0;
      for (float v : change.span()) largest = std::max(largest, std::abs(v));
      fmt::print("Wrote {} (the largest change of a weight: {:.3f})\n", change_file.string(), largest);
    }
    return 0;
  });
}
