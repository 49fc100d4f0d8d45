// Chapter 05: MaxPooling2D((2, 2))
//
// Runs a real digit through a randomly initialised Conv2D(32, 3x3, relu),
// pools its 26x26 feature maps to 13x13, plots a few maps before and after,
// and times the naive pooling against the vectorized one.
#include <fmt/format.h>

#include <chrono>

#include "nn/cli.hpp"
#include "nn/conv2d.hpp"
#include "nn/error.hpp"
#include "nn/layers/max_pooling2d.hpp"
#include "nn/layers/conv2d.hpp"
#include "nn/mnist.hpp"
#include "nn/normalize.hpp"
#include "nn/plot.hpp"
#include "nn/pooling.hpp"

namespace {

void plot_before_after(const nn::Tensor& maps, const nn::Tensor& pooled, std::size_t channels,
                       const std::filesystem::path& file) {
  nn::plot::Png png(file, 240 * static_cast<int>(channels), 500);
  auto& gp = png.gp();
  gp << fmt::format("set multiplot layout 2,{} title 'Feature maps of a random Conv2D: 26x26 before, 13x13 after MaxPooling2D((2, 2))'\n", channels)
     << "unset key; unset colorbox; unset tics; set size ratio -1; set palette gray\n";
  for (const nn::Tensor* t : {&maps, &pooled})
    for (std::size_t c = 0; c < channels; ++c) {
      const std::size_t h = t->dim(1), w = t->dim(2);
      auto image = nn::plot::channel_image(*t, 0, c);
      gp << fmt::format("set title 'channel {}, {}x{}'\n", c, h, w);
      nn::plot::image(gp, image.data(), h, w);
    }
  gp << "unset multiplot\n";
  png.finish();
}

double time_ms(auto&& fn, int repeats) {
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < repeats; ++i) fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / repeats;
}

}  // namespace

int main(int argc, char** argv) {
  nn::cli::Parser cli("ch05-pooling", "Chapter 05: MaxPooling2D((2, 2)) on the feature maps of a Conv2D layer.");
  nn::cli::Common common;
  cli.add_common(common);
  std::int64_t index = 0;
  cli.option("--index", "I", "which training digit to pool", &index, nn::cli::kIndexRange);
  return nn::cli::run(cli.program(), [&] {
    if (!cli.parse(argc, argv)) return 0;
    const std::uint64_t seed = common.seed_or_random();
    nn::Mnist m = nn::load_mnist(common.data);
    nn::Tensor x_all = nn::images_to_tensor(m.x_train);
    nn::cli::checked_index("--index", index, x_all.dim(0), "the training set");
    nn::Tensor x = nn::slice_batch(x_all, static_cast<std::size_t>(index), 1);  // (1, 28, 28, 1)

    // [snippet ch05-main]
    nn::Conv2D conv({.filters = 32, .kernel = 3, .activation = nn::Activation::relu, .seed = seed});
    nn::MaxPooling2D pool({.pool = 2});
    nn::ConstView maps = conv.forward(x);       // (1, 26, 26, 32)
    nn::ConstView pooled = pool.forward(maps);   // (1, 13, 13, 32)
    // [end snippet ch05-main]
    fmt::print("seed {}\ninput {} -> Conv2D -> {} -> MaxPooling2D((2, 2)) -> {}\n", seed, x.shape().str(),
               maps.shape().str(), pooled.shape().str());
    fmt::print("values kept: {} of {} (one in four)\n\n", pooled.size(), maps.size());

    // Timing at the training batch size, on a batch of 32 copies of the maps.
    nn::Tensor batch({32, maps.dim(1), maps.dim(2), maps.dim(3)});
    for (std::size_t b = 0; b < 32; ++b) std::copy(maps.data(), maps.data() + maps.size(), batch.data() + b * maps.size());
    nn::Tensor y(pool.output_shape(batch.shape())), dx(batch.shape());
    for (auto v : nn::max_pool_variants()) {
      double fwd = time_ms([&] { nn::max_pool2d_forward(batch, 2, y, v); }, 50);
      double bwd = time_ms([&] { nn::max_pool2d_backward(batch, y, 2, dx, v); }, 50);
      fmt::print("{:<11} batch 32: forward {:.3f} ms, backward {:.3f} ms\n", nn::max_pool_variant_name(v), fwd, bwd);
    }

    plot_before_after(maps, pooled, 4, common.plots / "05-pooling.png");
    fmt::print("\nWrote {}\n", (common.plots / "05-pooling.png").string());
    return 0;
  });
}
