#include "nn/activations.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"

namespace nn {

// [snippet relu]
Tensor relu(const Tensor& x) {
  Tensor y = x;
  relu_inplace(y);
  return y;
}

void relu_inplace(Tensor& x) {
  float* v = x.data();
  for (std::size_t i = 0, n = x.size(); i < n; ++i) v[i] = v[i] > 0.0f ? v[i] : 0.0f;
}

Tensor relu_backward(const Tensor& y, const Tensor& dy) {
  Tensor dx(dy.shape());
  relu_backward(y, dy, dx);
  return dx;
}

void relu_backward(const Tensor& y, const Tensor& dy, Tensor& dx) {
  if (y.shape() != dy.shape())
    throw Error(fmt::format("relu_backward: y is {} but dy is {}", y.shape().str(), dy.shape().str()));
  if (dx.shape() != dy.shape())
    throw Error(fmt::format("relu_backward: dx is {} but dy is {}", dx.shape().str(), dy.shape().str()));
  const float* out = y.data();
  const float* g = dy.data();
  float* d = dx.data();
  for (std::size_t i = 0, n = dx.size(); i < n; ++i) d[i] = out[i] > 0.0f ? g[i] : 0.0f;
}
// [end snippet relu]

const Tensor& activation_backward(Activation activation, const Tensor& y, const Tensor& dy, Tensor& buffer) {
  if (activation == Activation::linear) return dy;
  ensure_shape(buffer, dy.shape());
  relu_backward(y, dy, buffer);
  return buffer;
}

}  // namespace nn
