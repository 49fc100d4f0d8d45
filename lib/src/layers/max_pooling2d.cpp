#include "nn/layers/max_pooling2d.hpp"

namespace nn {

ConstView MaxPooling2D::forward(const Tensor& x) {
  ensure_shape(y_, output_shape(x.shape()));
  max_pool2d_forward(x, options_.pool, y_, options_.variant);
  return y_;
}

ConstView MaxPooling2D::backward(const Tensor& x, const Tensor& /*y*/, const Tensor& dy, bool need_dx) {
  if (!need_dx) return {};  // no weights: the input gradient is all there is
  ensure_shape(dx_, x.shape());
  max_pool2d_backward(x, dy, options_.pool, dx_, options_.variant);
  return dx_;
}

}  // namespace nn
