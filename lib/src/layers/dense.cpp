#include "nn/layers/dense.hpp"

#include <fmt/format.h>

#include "nn/error.hpp"
#include "nn/init.hpp"
#include "nn/optimizer.hpp"

namespace nn {

namespace {

// The kernel (in, out) from the seed; empty for in = 0 (made at build).
Tensor glorot_kernel(std::size_t in, const DenseOptions& o) {
  if (o.units == 0) throw Error("Dense: units must be at least 1");
  if (in == 0) return Tensor();
  Tensor k({in, o.units});
  glorot_uniform(k, in, o.units, o.seed, o.init_scale);
  return k;
}

}  // namespace

Dense::Dense(const DenseOptions& options)
    : kernel("kernel", glorot_kernel(options.input_dim, options)), bias("bias", Tensor({options.units})),
      options_(options) {}

void Dense::build(const Shape& x) {
  if (!built() && x.rank() == 2 && x[1] > 0) kernel = Parameter("kernel", glorot_kernel(x[1], options_));
  output_shape(x);  // checks x against the kernel
}

Shape Dense::output_shape(const Shape& x) const {
  if (!built() && x.rank() != 2)
    throw Error(fmt::format("Dense: input {} is not (batch, features): put a Flatten before it", x.str()));
  if (x.rank() != 2 || (built() && x[1] != kernel.value.dim(0)))
    throw Error(fmt::format("Dense: input {} does not match input_dim {}", x.str(), kernel.value.dim(0)));
  return {x[0], options_.units};
}

// [snippet dense-record]
Var Dense::record(Var x) {
  if (!built()) build(x.shape());
  Tape& tape = x.tape();
  const Var w = tape.parameter(kernel, name + ".kernel"), b = tape.parameter(bias, name + ".bias");
  const Var z = dense(x, w, b);  // z = x W + b
  return options_.activation == Activation::relu ? relu(z) : z;
}
// [end snippet dense-record]

ConstView Dense::forward(const Tensor& x) {
  if (!built()) build(x.shape());  // Keras builds a layer at its first call
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
