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
// element i was kept, 0 where it was dropped (resized to x.size()). Element i
// takes number first + i of the key's mask: a slice of a larger batch (one
// process's rows in data-parallel training) passes its first element's
// index in that batch, and gets that batch's mask for its rows.
void dropout_forward(const Tensor& x, double rate, std::uint64_t key, Tensor& y, std::vector<std::uint8_t>& keep_mask,
                     std::uint64_t first = 0);
// dx = dy / keep where the mask kept, else 0, into dx (dy's shape).
void dropout_backward(const Tensor& dy, double rate, std::span<const std::uint8_t> keep_mask, Tensor& dx);

}  // namespace nn
