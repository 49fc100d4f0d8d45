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

template <class T>
void relu_forward_naive(const T* x, T* y, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);  // vectorized
}

void relu_inplace(Tensor& x) { relu_forward_naive(x.data(), x.data(), x.size()); }

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
  relu_backward_naive(y.data(), dy.data(), dx.data(), dx.size());
}

template <class T>
void relu_backward_naive(const T* y, const T* dy, T* dx, std::size_t n) {
  // dy[i] is read whatever the sign: `y[i] > 0 ? dy[i] : 0` reads it only
  // where y[i] > 0, which only CPUs with masked loads (AVX2, AVX-512) can
  // vectorize; SSE and ARM's NEON would run this loop one float at a time.
  for (std::size_t i = 0; i < n; ++i) {  // vectorized
    const T g = dy[i];
    dx[i] = y[i] > T(0) ? g : T(0);
  }
}
// [end snippet relu]

template void relu_forward_naive<float>(const float*, float*, std::size_t);
template void relu_forward_naive<double>(const double*, double*, std::size_t);
template void relu_backward_naive<float>(const float*, const float*, float*, std::size_t);
template void relu_backward_naive<double>(const double*, const double*, double*, std::size_t);

const Tensor& activation_backward(Activation activation, const Tensor& y, const Tensor& dy, Tensor& buffer) {
  if (activation == Activation::linear) return dy;
  ensure_shape(buffer, dy.shape());
  relu_backward(y, dy, buffer);
  return buffer;
}

}  // namespace nn
