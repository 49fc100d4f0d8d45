#pragma once
// MaxPooling2D((2, 2)): the largest value of each pool x pool window, per
// channel, with stride = pool (the windows do not overlap).
//
//   x: (N, H, W, C)  ->  y: (N, H / pool, W / pool, C)     (26 -> 13)
//
// An odd size floors, as Keras's padding="valid" does: a 27-wide input gives
// 13 columns and its last column is never read.
//
// The backward pass routes each output gradient to the input that was the
// maximum of its window; every other input of the window gets 0. Tie rule:
// when several inputs share the maximum, the FIRST of them in row-major window
// order (top-left, top-right, bottom-left, bottom-right for 2x2) gets the whole
// gradient, as TensorFlow and PyTorch do.
//
// Variants, in the order the chapter meets them:
//   naive       loops straight from the definition, channel in the middle;
//   vectorized  channels innermost: each window row is a contiguous run of C
//               floats, so the max (and, backward, the "first maximum" mask)
//               is computed for 16 channels per instruction.
#include <cstddef>
#include <span>
#include <string_view>

#include "nn/tensor.hpp"

namespace nn {

enum class MaxPoolVariant { naive, vectorized };

std::span<const MaxPoolVariant> max_pool_variants();
std::string_view max_pool_variant_name(MaxPoolVariant v);
MaxPoolVariant max_pool_variant(std::string_view name);  // throws nn::Error listing the names

// The output shape for x and pool; throws nn::Error when the pool is 0 or
// larger than the input.
Shape max_pool2d_output_shape(const Shape& x, std::size_t pool);

// The naive reference on plain arrays of float or double (the gradient checks
// run it in double): x has the shape `x_shape` (N, H, W, C), y the output
// shape, dx (overwritten) the shape of x. Throws nn::Error as
// max_pool2d_output_shape does.
template <class T>
void max_pool2d_forward_naive(const Shape& x_shape, std::size_t pool, const T* x, T* y);
template <class T>
void max_pool2d_backward_naive(const Shape& x_shape, std::size_t pool, const T* x, const T* dy, T* dx);
extern template void max_pool2d_forward_naive<float>(const Shape&, std::size_t, const float*, float*);
extern template void max_pool2d_forward_naive<double>(const Shape&, std::size_t, const double*, double*);
extern template void max_pool2d_backward_naive<float>(const Shape&, std::size_t, const float*, const float*,
                                                      float*);
extern template void max_pool2d_backward_naive<double>(const Shape&, std::size_t, const double*, const double*,
                                                       double*);

Tensor max_pool2d_forward(const Tensor& x, std::size_t pool, MaxPoolVariant variant = MaxPoolVariant::vectorized);
void max_pool2d_forward(const Tensor& x, std::size_t pool, Tensor& y, MaxPoolVariant variant);

// dx (the shape of x) from x and dy (the shape of y).
Tensor max_pool2d_backward(const Tensor& x, const Tensor& dy, std::size_t pool,
                           MaxPoolVariant variant = MaxPoolVariant::vectorized);
void max_pool2d_backward(const Tensor& x, const Tensor& dy, std::size_t pool, Tensor& dx, MaxPoolVariant variant);

}  // namespace nn
