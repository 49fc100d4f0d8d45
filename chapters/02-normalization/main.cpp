// Chapter 02: x_train.reshape((60000, 28, 28, 1)); x_train / 255.0
//
// Turns the bytes of chapter 01 into the float tensor the network reads:
// shapes before and after, pixel statistics, a histogram and the mean image
// of each digit.
#include <fmt/format.h>

#include <chrono>

#include "nn/cli.hpp"
#include "nn/mnist.hpp"
#include "nn/normalize.hpp"
#include "nn/plot.hpp"
#include "nn/shape.hpp"

namespace {

void print_stats(const char* what, const nn::PixelStats& s) {
  fmt::print("{:<26} min {:<8.4g} max {:<8.4g} mean {:<8.4f} std {:.4f}\n", what, s.min, s.max, s.mean,
             s.stddev);
}

// The pixel histogram: dividing by 255 changes every value but not the
// shape, so one histogram with two axes shows both, the bytes (0..255,
// below) and the floats (0..1, above). Log scale, because most pixels are 0.
void plot_histograms(const nn::Tensor& x, const std::filesystem::path& file) {
  auto counts = nn::histogram(x.span(), 64, 0.0f, 1.0f);
  nn::plot::Png png(file, 1000, 420);
  auto& gp = png.gp();
  gp << "set title 'Pixel values of the 60,000 training images, before and after x / 255 (64 bins)'\n"
     << "set logscale y; set ylabel 'pixels (log scale)'; set style fill solid 0.8; unset key\n"
     << "set grid ytics\n"
     << "set xrange [0:255]; set xtics nomirror; set xlabel 'before: uint8 pixel value (0..255)'\n"
     << "set x2range [0:1]; set x2tics 0.1; set x2label 'after: float32 pixel value (0..1)'\n"
     << "plot '-' using 1:2 with boxes\n";
  for (std::size_t b = 0; b < counts.size(); ++b) gp << fmt::format("{} {}\n", (b + 0.5) / counts.size() * 255.0, counts[b]);
  gp << "e\n";
  png.finish();
}

void plot_class_means(const nn::Tensor& means, const std::filesystem::path& file) {
  const std::size_t h = means.dim(1), w = means.dim(2);
  nn::plot::Png png(file, 1000, 450);
  auto& gp = png.gp();
  gp << "set multiplot layout 2,5 title 'The mean training image of each digit'\n"
     << "unset key; unset colorbox; unset tics; unset border; set palette gray\n"
     << "set cbrange [0:1]; set size ratio -1\n";
  for (std::size_t c = 0; c < means.dim(0); ++c) {
    gp << fmt::format("set title '{}'\n", c);
    nn::plot::image(gp, means.data() + c * h * w, h, w);
  }
  gp << "unset multiplot\n";
  png.finish();
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch02-normalization",
                      "Chapter 02: reshapes MNIST to (N, 28, 28, 1) and scales its pixels to [0, 1].");
  nn::cli::Common common;
  cli.add_common(common, /*with_seed=*/false);
  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    nn::Mnist m = nn::load_mnist(common.data);
    nn::cli::require_images(common.data, m.x_train.shape[0], 1, "training set",
                            "there are no training pixels to count or average");

    // [snippet ch02-main]
    // x_train.reshape((60000, 28, 28, 1)); x_train / 255.0
    nn::Tensor x_train = nn::images_to_tensor(m.x_train);
    nn::Tensor x_test = nn::images_to_tensor(m.x_test);
    fmt::print("x_train: {} uint8  ->  {} float32\n", nn::format_shape(m.x_train.shape), x_train.shape().str());
    fmt::print("x_test:  {} uint8  ->  {} float32\n\n", nn::format_shape(m.x_test.shape), x_test.shape().str());
    // [end snippet ch02-main]

    print_stats("x_train before (uint8):", nn::pixel_stats(m.x_train.data));
    print_stats("x_train after (float32):", nn::pixel_stats(x_train.span()));
    print_stats("x_test before (uint8):", nn::pixel_stats(m.x_test.data));
    print_stats("x_test after (float32):", nn::pixel_stats(x_test.span()));

    // A quick look at the two variants; bench/02_normalization_bench.cpp measures them properly.
    auto time_ms = [&](auto&& fn) {
      auto t0 = std::chrono::steady_clock::now();
      fn(m.x_train.data, x_train.span());
      return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    };
    double naive = time_ms(nn::normalize_naive), vectorized = time_ms(nn::normalize_vectorized),
           streaming = time_ms(nn::normalize_streaming);
    fmt::print("\nnormalize 60,000 images once: naive {:.1f} ms, vectorized {:.1f} ms, streaming {:.1f} ms\n",
               naive, vectorized, streaming);

    plot_histograms(x_train, common.plots / "02-pixel-histogram.png");
    plot_class_means(nn::mean_image_per_class(x_train, m.y_train.data), common.plots / "02-class-means.png");
    fmt::print("\nWrote {} and {}\n", (common.plots / "02-pixel-histogram.png").string(),
               (common.plots / "02-class-means.png").string());
    return 0;
  });
}
