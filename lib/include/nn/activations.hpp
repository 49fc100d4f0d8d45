#pragma once
// Activations, each its own small layer as in Keras (activation="relu" on a
// Conv2D or Dense is the layer followed by this function). Chapter 04 also
// fuses ReLU into the convolution, where it costs nothing.
#include <cstddef>

#include "nn/tensor.hpp"

namespace nn {

enum class Activation { linear, relu };

// y = max(x, 0), elementwise.
Tensor relu(const Tensor& x);
void relu_inplace(Tensor& x);

// dx = dy where the ReLU was active, 0 elsewhere. `y` may be the ReLU's input
// or its output: both are > 0 at exactly the same places. At 0 the gradient
// is taken as 0, as TensorFlow does.
Tensor relu_backward(const Tensor& y, const Tensor& dy);
void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx);  // into a preallocated dx

// The same two on plain arrays of n floats or doubles (the gradient checks run
// them in double); the Tensor functions above call them. y may alias x.
template <class T>
void relu_forward_naive(const T* x, T* y, std::size_t n);
template <class T>
void relu_backward_naive(const T* y, const T* dy, T* dx, std::size_t n);
extern template void relu_forward_naive<float>(const float*, float*, std::size_t);
extern template void relu_forward_naive<double>(const double*, double*, std::size_t);
extern template void relu_backward_naive<float>(const float*, const float*, float*, std::size_t);
extern template void relu_backward_naive<double>(const double*, const double*, double*, std::size_t);

// The gradient at a layer's pre-activation from the gradient dy at its
// output y: dy itself for linear, the ReLU's backward pass (written into
// `buffer`, resized as needed) for relu. Returns dy or buffer.
const Tensor& activation_backward(Activation activation, const Tensor& y, const Tensor& dy, Tensor& buffer);

}  // namespace nn
