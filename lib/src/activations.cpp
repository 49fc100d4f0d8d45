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
  for (float& v : x.span()) v = v > 0.0f ? v : 0.0f;
}

Tensor relu_backward(const Tensor& y, const Tensor& dy) {
  if (y.shape() != dy.shape())
    throw Error(fmt::format("relu_backward: y is {} but dy is {}", y.shape().str(), dy.shape().str()));
  Tensor dx(dy.shape());
  for (std::size_t i = 0; i < dx.size(); ++i) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
  return dx;
}
// [end snippet relu]

}  // namespace nn
