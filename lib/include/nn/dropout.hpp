#pragma once
// Dropout's arithmetic (chapter 12): the kernels under the Dropout layer
// (nn/layers/dropout.hpp) and the gradient tape's dropout (nn/tape.hpp).
//
// Element i is kept when uniform01(key, i) < keep = 1 - rate, and a kept
// element is divided by keep ("inverted dropout", as Keras 3 does); a dropped
// one becomes 0. The mask depends only on (key, i): the same for any number
// of threads.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "nn/tensor.hpp"

namespace nn {

// y = x / keep where kept, else 0, into y (x's shape); keep_mask[i] = 1 where
// element i was kept, 0 where it was dropped (resized to x.size()).
void dropout_forward(const Tensor& x, double rate, std::uint64_t key, Tensor& y, std::vector<std::uint8_t>& keep_mask);
// dx = dy / keep where the mask kept, else 0, into dx (dy's shape).
void dropout_backward(const Tensor& dy, double rate, std::span<const std::uint8_t> keep_mask, Tensor& dx);

}  // namespace nn
