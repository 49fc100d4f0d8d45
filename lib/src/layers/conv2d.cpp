#include "nn/layers/conv2d.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/init.hpp"

namespace nn {

namespace {

Tensor glorot_kernel(const Conv2DOptions& o) {
  if (o.filters == 0 || o.kernel.h == 0 || o.kernel.w == 0 || o.input_channels == 0)
    throw Error(fmt::format("Conv2D: filters ({}), kernel ({}x{}) and input_channels ({}) must all be positive",
                            o.filters, o.kernel.h, o.kernel.w, o.input_channels));
  Tensor k({o.kernel.h, o.kernel.w, o.input_channels, o.filters});
  const std::size_t taps = o.kernel.h * o.kernel.w;
  glorot_uniform(k, taps * o.input_channels, taps * o.filters, o.seed, o.init_scale);
  return k;
}

}  // namespace

Conv2D::Conv2D(const Conv2DOptions& options)
    : kernel("kernel", glorot_kernel(options)), bias("bias", Tensor({options.filters})), options_(options) {}

Shape Conv2D::output_shape(const Shape& x) const { return conv2d_dims(x, kernel.value.shape()).y_shape(); }

FusionRole Conv2D::fusion_role() {
  if (options_.activation != Activation::relu) return {};
  return {.kind = FusionRole::Kind::conv_relu, .kernel = &kernel, .bias = &bias, .variant = options_.variant};
}

ConstView Conv2D::forward(const Tensor& x) {
  ensure_shape(y_, output_shape(x.shape()));
  conv2d_forward(x, kernel.value, bias.value, y_, options_.variant, options_.activation);
  return y_;
}

ConstView Conv2D::backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx) {
  // Through the activation first, then the convolution.
  const Tensor& dz = activation_backward(options_.activation, y, dy, relu_grad_);
  conv2d_backward(x, kernel.value, dz, options_.variant, kernel.grad, bias.grad, need_dx ? &dx_ : nullptr);
  return need_dx ? ConstView(dx_) : ConstView();
}

}  // namespace nn
