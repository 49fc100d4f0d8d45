// Chapter 06: Flatten()
//
// (N, 13, 13, 32) -> (N, 5408) without copying: prints the shapes and the
// buffer addresses, shows where one element lands, and plots one image's
// 5408 features.
#include <fmt/format.h>

#include <chrono>

#include "nn/cli.hpp"
#include "nn/conv2d.hpp"
#include "nn/error.hpp"
#include "nn/layers/flatten.hpp"
#include "nn/layers/max_pooling2d.hpp"
#include "nn/layers/conv2d.hpp"
#include "nn/mnist.hpp"
#include "nn/normalize.hpp"
#include "nn/plot.hpp"
#include "nn/pooling.hpp"

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch06-flatten", "Chapter 06: Flatten() as a view: (N, 13, 13, 32) -> (N, 5408).");
  nn::cli::Common common;
  cli.add_common(common);
  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    const std::uint64_t seed = common.seed_or_random();
    nn::Mnist m = nn::load_mnist(common.data);
    nn::cli::require_images(common.data, m.x_train.shape[0], 32, "training set",
                            "this chapter runs its layers on the first batch of 32 training images");
    nn::Tensor x = nn::slice_batch(nn::images_to_tensor(m.x_train), 0, 32);  // the first batch of 32

    nn::Conv2D conv({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = seed});
    nn::MaxPooling2D pool;
    // [snippet ch06-main]
    nn::Flatten flatten;
    nn::ConstView pooled = pool.forward(conv.forward(x));  // (32, 13, 13, 32)
    nn::ConstView flat = flatten.forward(pooled);       // (32, 5408), a read-only view
    fmt::print("pooled: {} at address {}\n", pooled.shape().str(), fmt::ptr(pooled.data()));
    fmt::print("flat:   {} at address {}\n", flat.shape().str(), fmt::ptr(flat.data()));
    fmt::print("the same buffer: {}\n\n", flat.data() == pooled.data() ? "yes, nothing was copied" : "NO");
    // [end snippet ch06-main]
    fmt::print("seed {}\n", seed);

    // Where element (n, h, w, c) lands: column (h * 13 + w) * 32 + c.
    const std::size_t n = 3, h = 5, w = 7, c = 11;
    const std::size_t column = (h * pooled.dim(2) + w) * pooled.dim(3) + c;
    fmt::print("pooled({}, {}, {}, {}) = {:.6f}\nflat({}, {})     = {:.6f}   (column ({} * 13 + {}) * 32 + {})\n\n", n, h,
               w, c, pooled(n, h, w, c), n, column, flat(n, column), h, w, c);

    // Timing: the view against what a copy of the same floats would cost.
    const int repeats = 1000;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < repeats; ++i) {
      nn::ConstView v = flatten.forward(pooled);
      if (v.data() != pooled.data()) throw nn::Error("Flatten copied");
    }
    auto t1 = std::chrono::steady_clock::now();
    for (int i = 0; i < repeats; ++i) {
      nn::Tensor copy(pooled.tensor());  // a real copy of the elements
      if (copy.size() != pooled.size()) throw nn::Error("copy failed");
    }
    auto t2 = std::chrono::steady_clock::now();
    auto ns = [&](auto a, auto b) { return std::chrono::duration<double, std::nano>(b - a).count() / repeats; };
    fmt::print("Flatten (a view): {:.0f} ns; copying the {} floats instead: {:.0f} ns\n", ns(t0, t1), pooled.size(),
               ns(t1, t2));

    // One image's 5408 features, in the order Dense will read them.
    const auto file = common.plots / "06-flatten.png";
    nn::plot::Png png(file, 1100, 420);
    auto& gp = png.gp();
    gp << "set multiplot layout 2,1 title 'Flatten: image 0 as 5408 numbers (13 x 13 pixels x 32 channels)'\n"
       << "unset key; set xrange [0:5408]; set ylabel 'value'; set xtics 0,416; set grid xtics\n"
       << "set title 'all 5408 features: each block of 416 = 13 x 32 is one row of the 13x13 map'\n"
       << "plot '-' using 1:2 with impulses lc rgb '#2166ac'\n";
    for (std::size_t i = 0; i < flat.dim(1); ++i) gp << fmt::format("{} {:.5g}\n", i, flat(0, i));
    // Zoom on three pixels in the middle of the map: row 6, columns 5, 6 and 7.
    const std::size_t first = (6 * 13 + 5) * 32;
    gp << fmt::format("e\nset xrange [{}:{}]; set xtics {},32; set xlabel 'feature index'\n", first, first + 96, first)
       << "set title 'zoom: pixels (6,5), (6,6) and (6,7), each as its 32 channels in a row'\n"
       << "plot '-' using 1:2 with impulses lw 3 lc rgb '#b2182b'\n";
    for (std::size_t i = first; i < first + 96; ++i) gp << fmt::format("{} {:.5g}\n", i, flat(0, i));
    gp << "e\nunset multiplot\n";
    png.finish();
    fmt::print("\nWrote {}\n", file.string());
    return 0;
  });
}
