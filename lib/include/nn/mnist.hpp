#pragma once
// mnist.load_data(): the four IDX files of MNIST (or of Fashion-MNIST, which
// has the same names and format) as uint8 arrays.
#include <cstddef>
#include <filesystem>
#include <optional>

#include "nn/idx.hpp"

namespace nn {

struct Mnist {
  IdxArray x_train;  // (60000, 28, 28) pixels 0..255
  IdxArray y_train;  // (60000,)        labels 0..9
  IdxArray x_test;   // (10000, 28, 28)
  IdxArray y_test;   // (10000,)
};

// The file `dir/base`, or `dir/base.gz` when only the compressed one exists.
// Throws nn::Error naming both when neither does.
std::filesystem::path find_idx_file(const std::filesystem::path& dir, const std::string& base);

// The size of one image. 28x28 is what every chapter from 02 on assumes:
// the network's input is (28, 28, 1).
struct ImageSize {
  std::size_t height = 28, width = 28;
};
inline constexpr std::optional<ImageSize> mnist_image_size = ImageSize{};
inline constexpr std::optional<ImageSize> any_image_size = std::nullopt;

// Checks that images are (N, H, W) with H and W above 0 (and equal to `size`
// when given), labels are (N,) with the same N, and every label is in
// 0..num_classes-1. Errors name the files `x_name` and `y_name`.
void check_images_and_labels(const IdxArray& x, const IdxArray& y, const std::string& x_name,
                             const std::string& y_name, int num_classes = 10,
                             std::optional<ImageSize> size = any_image_size);

// Loads train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte
// and t10k-labels-idx1-ubyte (raw or .gz) from `dir`, checked as above: the
// images must be 28x28 unless `size` says otherwise (any_image_size: any).
Mnist load_mnist(const std::filesystem::path& dir, std::optional<ImageSize> size = mnist_image_size);

}  // namespace nn
