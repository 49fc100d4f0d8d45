#include "nn/layers/conv2d.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/init.hpp"

namespace nn {

namespace {

// The kernel (KH, KW, c_in, C_out) from the seed; empty for c_in = 0 (made at build).
Tensor glorot_kernel(std::size_t c_in, const Conv2DOptions& o) {
  if (o.filters == 0 || o.kernel.h == 0 || o.kernel.w == 0)
    throw Error(fmt::format("Conv2D: filters ({}) and kernel ({}x{}) must all be positive", o.filters, o.kernel.h,
                            o.kernel.w));
  if (c_in == 0) return Tensor();
  Tensor k({o.kernel.h, o.kernel.w, c_in, o.filters});
  const std::size_t taps = o.kernel.h * o.kernel.w;
  glorot_uniform(k, taps * c_in, taps * o.filters, o.seed, o.init_scale);
  return k;
}

}  // namespace

Conv2D::Conv2D(const Conv2DOptions& options)
    : kernel("kernel", glorot_kernel(options.input_channels, options)), bias("bias", Tensor({options.filters})),
      options_(options) {}

void Conv2D::build(const Shape& x) {
  if (!built() && x.rank() == 4 && x[3] > 0) kernel = Parameter("kernel", glorot_kernel(x[3], options_));
  output_shape(x);  // checks x against the kernel
}

Shape Conv2D::output_shape(const Shape& x) const {
  if (built()) return conv2d_dims(x, kernel.value.shape()).y_shape();
  // Not built yet: the kernel build(x) would make.
  const std::size_t c_in = x.rank() == 4 ? x[3] : 0;
  return conv2d_dims(x, Shape{options_.kernel.h, options_.kernel.w, c_in, options_.filters}).y_shape();
}

FusionRole Conv2D::fusion_role() {
  if (options_.activation != Activation::relu) return {};
  return {.kind = FusionRole::Kind::conv_relu, .kernel = &kernel, .bias = &bias, .variant = options_.variant};
}

Var Conv2D::record(Var x) {
  if (!built()) build(x.shape());
  Tape& tape = x.tape();
  const Var k = tape.parameter(kernel, name + ".kernel"), b = tape.parameter(bias, name + ".bias");
  const Var z = conv2d(x, k, b, options_.variant);
  return options_.activation == Activation::relu ? relu(z) : z;
}

ConstView Conv2D::forward(const Tensor& x) {
  if (!built()) build(x.shape());  // Keras builds a layer at its first call
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
