#pragma once
// x_train.reshape((60000, 28, 28, 1)); x_train / 255.0
//
// Pixels arrive as bytes 0..255; the network wants floats 0..1 in an NHWC
// tensor. Two named variants of the conversion, in the order the chapter
// meets them:
//   1. normalize_naive      one pixel at a time, the plain scalar loop;
//   2. normalize_vectorized 16 pixels per step with SIMD vectors;
//   3. normalize_streaming  the same with non-temporal ("streaming") stores
//      that write the output straight to memory instead of first reading
//      each cache line of it (AVX-512; elsewhere it falls back to 2).
// All divide by 255 (not multiply by 1/255), so they agree bit for bit with
// each other and with NumPy's x / 255.0 rounded to float32.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "nn/idx.hpp"
#include "nn/tensor.hpp"

namespace nn {

void normalize_naive(std::span<const std::uint8_t> in, std::span<float> out);
void normalize_vectorized(std::span<const std::uint8_t> in, std::span<float> out);
void normalize_streaming(std::span<const std::uint8_t> in, std::span<float> out);

// MNIST images (N, H, W) as uint8 -> an (N, H, W, 1) float tensor in [0, 1]:
// the reshape and the division of the Keras program in one call.
Tensor images_to_tensor(const IdxArray& images);

struct PixelStats {
  double min = 0, max = 0, mean = 0, stddev = 0;  // stddev: population (NumPy's default)
};
PixelStats pixel_stats(std::span<const std::uint8_t> pixels);
PixelStats pixel_stats(std::span<const float> pixels);

// Counts of values in `bins` equal-width bins over [lo, hi]; hi falls in the last bin.
std::vector<std::size_t> histogram(std::span<const float> values, std::size_t bins, float lo, float hi);

// The mean image of each class: x (N, H, W, C), labels (N,) in 0..num_classes-1
// -> (num_classes, H, W, C). A class with no image gets zeros.
Tensor mean_image_per_class(const Tensor& x, std::span<const std::uint8_t> labels,
                            std::size_t num_classes = 10);

}  // namespace nn
