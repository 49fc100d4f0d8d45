#pragma once
#include <cstddef>
#include <span>
#include <string>

namespace nn {

// A shape written the way Keras and NumPy print it: (60000, 28, 28) and, for
// rank 1, (60000,) with the trailing comma of a one-element Python tuple.
std::string format_shape(std::span<const std::size_t> dims);

// The number of elements of a shape; throws nn::Error when the product does
// not fit in std::size_t.
std::size_t shape_size(std::span<const std::size_t> dims);

}  // namespace nn
