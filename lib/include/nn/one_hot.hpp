#pragma once
// to_categorical(y): a label becomes a vector with a single 1.
//   5 -> [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]
// Its inverse is argmax: the index of the largest entry of each row.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "nn/tensor.hpp"

namespace nn {

// labels (N,) -> (N, num_classes). A label outside [0, num_classes) throws
// nn::Error naming its index and value.
Tensor one_hot(std::span<const std::uint8_t> labels, std::size_t num_classes = 10);
Tensor one_hot(std::span<const int> labels, std::size_t num_classes = 10);

// The index of the largest entry of each row of an (N, K) tensor; the first
// one on a tie, as NumPy's argmax.
std::vector<std::size_t> argmax(const Tensor& rows);

}  // namespace nn
