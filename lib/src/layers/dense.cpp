#include "nn/layers/dense.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/init.hpp"
#include "nn/optimizer.hpp"

namespace nn {

namespace {

Tensor glorot_kernel(const DenseOptions& o) {
  if (o.units == 0 || o.input_dim == 0) throw Error("Dense: units and input_dim must be at least 1");
  Tensor k({o.input_dim, o.units});
  glorot_uniform(k, o.input_dim, o.units, o.seed);
  return k;
}

}  // namespace

Dense::Dense(const DenseOptions& options)
    : kernel("kernel", glorot_kernel(options)), bias("bias", Tensor({options.units})), options_(options) {}

Shape Dense::output_shape(const Shape& x) const {
  if (x.rank() != 2 || x[1] != options_.input_dim)
    throw Error(fmt::format("Dense: input {} does not match input_dim {}", x.str(), options_.input_dim));
  return {x[0], options_.units};
}

ConstView Dense::forward(const Tensor& x) {
  ensure_shape(y_, output_shape(x.shape()));
  dense_forward(x, kernel.value, bias.value, y_, options_.variant);
  if (options_.activation == Activation::relu) relu_inplace(y_);
  return y_;
}

ConstView Dense::backward(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx) {
  // Through the activation first, then the matrix products.
  const Tensor& dz = activation_backward(options_.activation, y, dy, relu_grad_);
  dense_backward(x, kernel.value, dz, options_.variant, kernel.grad, bias.grad, need_dx ? &dx_ : nullptr);
  return need_dx ? ConstView(dx_) : ConstView();
}

ConstView Dense::backward_and_update(const Tensor& x, const Tensor& y, const Tensor& dy, bool need_dx,
                                     Optimizer& optimizer) {
  if (options_.variant != DenseVariant::fast) return Layer::backward_and_update(x, y, dy, need_dx, optimizer);
  const Tensor& dz = activation_backward(options_.activation, y, dy, relu_grad_);
  dense_backward_update(x, kernel.value, dz, kernel.grad, bias.grad, need_dx ? &dx_ : nullptr,
                        [&](const float* g, std::size_t lo, std::size_t n) { optimizer.update_block(kernel, g, lo, n); });
  optimizer.update(bias);
  return need_dx ? ConstView(dx_) : ConstView();
}

}  // namespace nn
