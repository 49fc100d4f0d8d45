// Chapter 04: Conv2D(32, (3, 3), activation="relu")
//
// Slides hand-made filters (edges, blur) over a real digit, then a randomly
// initialised Conv2D layer of 32 filters; plots the input, the filters and
// the feature maps; times the naive convolution against a fast one. With
// --load DIR, the same for the trained layer of chapter 10's saved model.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "nn/cli.hpp"
#include "nn/conv2d.hpp"
#include "nn/error.hpp"
#include "nn/io.hpp"
#include "nn/layers/conv2d.hpp"
#include "nn/mnist.hpp"
#include "nn/normalize.hpp"
#include "nn/parallel.hpp"
#include "nn/plot.hpp"

namespace {

// Filter f of a (KH, KW, 1, F) kernel as a (KH, KW) array.
std::vector<float> filter(const nn::Tensor& kernel, std::size_t f) {
  const std::size_t kh = kernel.dim(0), kw = kernel.dim(1), filters = kernel.dim(3);
  std::vector<float> out(kh * kw);
  for (std::size_t i = 0; i < kh * kw; ++i) out[i] = kernel[i * filters + f];
  return out;
}

void image(std::ostream& gp, const std::string& title, const std::vector<float>& values, std::size_t rows,
           std::size_t cols, const std::string& palette) {
  gp << "set title " << nn::plot::quote(title) << "\n" << palette << "\n";
  nn::plot::image(gp, values.data(), rows, cols);
}

// Grey for images, blue-white-red (centred on 0) for kernels and signed maps.
std::string gray() { return "set palette gray; set autoscale cb"; }
std::string signed_palette(const std::vector<float>& v) {
  float m = 1e-6f;
  for (float e : v) m = std::max(m, std::abs(e));
  return fmt::format("set palette defined (-1 '#2166ac', 0 'white', 1 '#b2182b'); set cbrange [{}:{}]", -m, m);
}

// The digit, the three hand-made filters and what each finds.
void plot_hand_filters(const nn::Tensor& x, const nn::Tensor& kernel, const nn::Tensor& y,
                       const std::vector<std::string>& names, const std::filesystem::path& file) {
  nn::plot::Png png(file, 1200, 620);
  auto& gp = png.gp();
  gp << "set multiplot layout 2,4 title 'Hand-made 3x3 filters on a 28x28 digit: the outputs are 26x26 "
        "(each panel on its own colour scale)'\n"
     << "unset key; unset tics; unset border; set size ratio -1; set cbtics scale 0.5 font ',8'\n";
  image(gp, "input (28x28)", nn::plot::channel_image(x, 0, 0), 28, 28, gray());
  for (std::size_t f = 0; f < names.size(); ++f) {
    auto k = filter(kernel, f);
    image(gp, names[f] + " filter", k, 3, 3, signed_palette(k));
  }
  gp << "set multiplot next\n";
  for (std::size_t f = 0; f < names.size(); ++f) {
    auto map = nn::plot::channel_image(y, 0, f);
    image(gp, names[f] + " output (26x26)", map, y.dim(1), y.dim(2), signed_palette(map));
  }
  gp << "unset multiplot\n";
  png.finish();
}

// The 32 3x3 kernels of the layer, each on its own colour scale.
void plot_kernels(const nn::Tensor& kernel, const std::string& title, const std::filesystem::path& file) {
  nn::plot::Png png(file, 1000, 560);
  auto& gp = png.gp();
  gp << "set multiplot layout 4,8 title " << nn::plot::quote(title) << "\n"
     << "unset key; unset tics; unset border; unset colorbox; set size ratio -1\n";
  for (std::size_t f = 0; f < kernel.dim(3); ++f) {
    auto k = filter(kernel, f);
    image(gp, std::to_string(f), k, kernel.dim(0), kernel.dim(1), signed_palette(k));
  }
  gp << "unset multiplot\n";
  png.finish();
}

// The 32 feature maps of the layer on the digit, after ReLU, each scaled
// from 0 (black) to its own largest value (white).
void plot_feature_maps(const nn::Tensor& y, const std::string& title, const std::filesystem::path& file) {
  nn::plot::Png png(file, 1200, 700);
  auto& gp = png.gp();
  gp << "set multiplot layout 4,8 title " << nn::plot::quote(title) << "\n"
     << "unset key; unset tics; unset border; unset colorbox; set size ratio -1\n";
  for (std::size_t c = 0; c < y.dim(3); ++c)
    image(gp, std::to_string(c), nn::plot::channel_image(y, 0, c), y.dim(1), y.dim(2), "set palette gray; set cbrange [0:*]");
  gp << "unset multiplot\n";
  png.finish();
}

// How much of the layer's output the ReLU zeroes, and the feature maps that
// are 0 everywhere: for those, the largest value before the ReLU, and the
// kernel and bias that explain it.
void report_zeros(nn::ConstView y, const nn::Conv2D& conv) {
  const auto zeros = std::count(y.span().begin(), y.span().end(), 0.0f);
  fmt::print("  {:.1f}% of the outputs are 0 after the ReLU\n", 100.0 * zeros / y.size());
  const std::size_t positions = y.dim(1) * y.dim(2), channels = y.dim(3);
  for (std::size_t c = 0; c < channels; ++c) {
    bool dead = true;
    for (std::size_t p = 0; p < positions && dead; ++p) dead = y[p * channels + c] == 0.0f;
    if (!dead) continue;
    auto k = filter(conv.kernel.value, c);
    float positive = 0;
    for (float w : k) positive += std::max(w, 0.0f);
    fmt::print("  feature map {} is 0 everywhere: kernel", c);
    for (float w : k) fmt::print(" {:+.3f}", w);
    fmt::print(" (positive weights add up to {:.3f}), bias {:+.3f}\n", positive, conv.bias.value[c]);
  }
}

// The best of `repeats` wall-clock times of f, in milliseconds.
template <class F>
double best_ms(int repeats, F f) {
  double best = 1e300;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch04-convolution",
                      "Chapter 04: Conv2D(32, (3, 3), activation=\"relu\"), naive and fast, on real digits.");
  nn::cli::Common common;
  cli.add_common(common);
  std::int64_t index = 0;
  int batch = 32;
  std::string variant_name = "direct3x3";
  cli.option("--index", "I", "which test digit to convolve", &index, nn::cli::kIndexRange);
  cli.option("--batch", "N", "images in the naive-vs-fast timing", &batch, {1, 10000});
  cli.option("--variant", "NAME", "the fast variant to time: " + nn::conv2d_variant_names(), &variant_name);
  std::filesystem::path load;
  cli.option("--load", "DIR",
             "also draw the trained layer from the weights chapter 10 saved in DIR (it saves them in " +
                 nn::cli::default_weights_dir().string() + ")",
             &load);

  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    const nn::Conv2DVariant fast = nn::conv2d_variant(variant_name);
    const std::uint64_t seed = common.seed_or_random();
    const nn::Mnist m = nn::load_mnist(common.data);
    const std::size_t n_test = m.x_test.shape[0];
    nn::cli::checked_index("--index", index, n_test, "the test set");
    if (batch < 1 || static_cast<std::size_t>(batch) > n_test)
      throw nn::Error(fmt::format("--batch {} is outside 1..{}", batch, n_test));
    const nn::Tensor x_test = nn::images_to_tensor(m.x_test);  // (10000, 28, 28, 1) in [0, 1]
    const std::size_t pixels = 28 * 28;
    const nn::Tensor x(nn::Shape{1, 28, 28, 1}, x_test.span().subspan(index * pixels, pixels));
    fmt::print("x_test[{}], labelled {}: x {}\n\n", index, m.y_test.data[index], x.shape().str());

    // [snippet ch04-hand-filters]
    // Three hand-made filters as one (3, 3, 1, 3) kernel: filter f is kernel[:, :, 0, f].
    const float filters[3][3][3] = {
        {{-1, 0, 1}, {-1, 0, 1}, {-1, 0, 1}},                     // vertical edge: right minus left
        {{-1, -1, -1}, {0, 0, 0}, {1, 1, 1}},                     // horizontal edge: below minus above
        {{1 / 9.f, 1 / 9.f, 1 / 9.f}, {1 / 9.f, 1 / 9.f, 1 / 9.f}, {1 / 9.f, 1 / 9.f, 1 / 9.f}},  // blur
    };
    nn::Tensor kernel({3, 3, 1, 3});
    for (std::size_t f = 0; f < 3; ++f)
      for (std::size_t i = 0; i < 3; ++i)
        for (std::size_t j = 0; j < 3; ++j) kernel(i, j, 0, f) = filters[f][i][j];
    const nn::Tensor y_hand = nn::conv2d_forward(x, kernel, nn::Tensor({3}), nn::Conv2DVariant::naive);
    fmt::print("hand-made filters: x {} * kernel {} -> y {}\n", x.shape().str(), kernel.shape().str(),
               y_hand.shape().str());
    // [end snippet ch04-hand-filters]
    const std::vector<std::string> names = {"vertical edge", "horizontal edge", "blur"};
    for (std::size_t f = 0; f < 3; ++f) {
      auto map = nn::plot::channel_image(y_hand, 0, f);
      auto [lo, hi] = std::minmax_element(map.begin(), map.end());
      fmt::print("  {:<16} output from {:6.3f} to {:6.3f}\n", names[f], *lo, *hi);
    }

    // [snippet ch04-layer]
    nn::Conv2D conv({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = seed});
    const nn::ConstView y = conv.forward(x);
    fmt::print("\nConv2D(32, (3, 3), activation=\"relu\"), seed {}:\n", seed);
    fmt::print("  x {} -> y {}\n", x.shape().str(), y.shape().str());
    fmt::print("  kernel {} + bias {} = {} parameters\n", conv.kernel.shape().str(), conv.bias.shape().str(),
               conv.param_count());
    // [end snippet ch04-layer]
    report_zeros(y, conv);

    nn::create_folders(common.plots);
    plot_hand_filters(x, kernel, y_hand, names, common.plots / "04-hand-filters.png");
    plot_kernels(conv.kernel.value,
                 "The 32 kernels of a Conv2D layer after glorot\\_uniform (blue < 0 < red, each on its own scale)",
                 common.plots / "04-random-kernels.png");
    plot_feature_maps(y,
                      "32 feature maps (26x26, after ReLU) of a random Conv2D(32, (3, 3)), "
                      "each from 0 (black) to its own maximum (white)",
                      common.plots / "04-feature-maps.png");
    fmt::print("\nWrote 04-hand-filters.png, 04-random-kernels.png and 04-feature-maps.png to {}\n",
               common.plots.string());

    if (!load.empty()) {
      // [snippet ch04-load]
      nn::Sequential model = nn::cli::load_trained_model(load);      // chapter 10's weights
      auto& trained = dynamic_cast<nn::Conv2D&>(*model.layers()[0]);  // its first layer, conv2d
      const nn::ConstView y_trained = trained.forward(x);             // (1, 26, 26, 32)
      // [end snippet ch04-load]
      fmt::print("\nThe trained Conv2D, from {}:\n", load.string());
      report_zeros(y_trained, trained);
      plot_kernels(trained.kernel.value,
                   "The 32 kernels of the trained Conv2D layer (blue < 0 < red, each on its own scale)",
                   common.plots / "04-trained-kernels.png");
      plot_feature_maps(y_trained,
                        "32 feature maps (26x26, after ReLU) of the trained Conv2D(32, (3, 3)), "
                        "each from 0 (black) to its own maximum (white)",
                        common.plots / "04-trained-feature-maps.png");
      fmt::print("Wrote 04-trained-kernels.png and 04-trained-feature-maps.png to {}\n", common.plots.string());
    }

    // Naive against fast on `batch` test images, the best of 5 runs each.
    const std::size_t n = static_cast<std::size_t>(batch);
    const nn::Tensor xb(nn::Shape{n, 28, 28, 1}, x_test.span().subspan(0, n * pixels));
    nn::Tensor y_naive(conv.output_shape(xb.shape())), y_fast(y_naive.shape());
    auto run = [&](nn::Conv2DVariant v, nn::Tensor& out) {
      return best_ms(5, [&] { nn::conv2d_forward(xb, conv.kernel.value, conv.bias.value, out, v, nn::Activation::relu); });
    };
    const double t_naive = run(nn::Conv2DVariant::naive, y_naive), t_fast = run(fast, y_fast);
    float diff = 0;
    for (std::size_t i = 0; i < y_fast.size(); ++i) diff = std::max(diff, std::abs(y_fast[i] - y_naive[i]));
    const double gflop = nn::conv2d_dims(xb.shape(), conv.kernel.shape()).forward_flops() / 1e9;
    fmt::print("\nForward pass on {} images ({} threads), best of 5:\n", n, nn::thread_count());
    fmt::print("  naive     {:8.3f} ms  {:6.1f} GFLOP/s\n", t_naive, gflop / t_naive * 1e3);
    fmt::print("  {:<9} {:8.3f} ms  {:6.1f} GFLOP/s\n", variant_name, t_fast, gflop / t_fast * 1e3);
    fmt::print("  speed-up {:.1f}x, largest difference {:.2g}\n", t_naive / t_fast, diff);
    return 0;
  });
}
