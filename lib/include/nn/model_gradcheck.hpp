#pragma once
// The course's model checked in double (chapter 09's `ch09-sgd --gradcheck`
// and the tests): Conv2D(relu) -> MaxPooling2D -> Flatten -> Dense(relu) ->
// Dense rebuilt in double from the library's naive kernels (they are
// templates, written once; nothing here re-implements one), so that the
// differences are not drowned by float rounding. Part of nn_course: it knows
// the course's one architecture. The generic checks are in nn/gradcheck.hpp.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "nn/conv2d.hpp"
#include "nn/gradcheck.hpp"
#include "nn/model.hpp"
#include "nn/tensor.hpp"

namespace nn {

// The smallest |v|: how far the closest pre-activation is from the ReLU's kink.
double smallest_magnitude(std::span<const double> v);

// Over the pool x pool windows of a (shape (N, H, W, C)) whose maximum is
// positive: the smallest gap between the maximum and the runner-up. A step
// smaller than half of it cannot change which input wins a window.
double smallest_pool_gap(const Shape& shape, std::size_t pool, std::span<const double> a);

// Conv2D(relu) then MaxPooling2D in double, from the naive kernels: the
// reference of the fused step (nn/fused.hpp).
struct ConvReluPool {
  std::vector<double> z;       // the convolution before the ReLU: (N, OH, OW, C_out)
  std::vector<double> a;       // after it
  std::vector<double> pooled;  // (N, OH / pool, OW / pool, C_out)
};
ConvReluPool conv_relu_pool(const Conv2DDims& d, std::size_t pool, std::span<const double> x,
                            std::span<const double> kernel, std::span<const double> bias);
// The kernel and bias gradients of that chain for d loss / d pooled = dpooled.
void conv_relu_pool_backward(const Conv2DDims& d, std::size_t pool, std::span<const double> x,
                             std::span<const double> kernel, const ConvReluPool& pass,
                             std::span<const double> dpooled, std::vector<double>& dkernel,
                             std::vector<double>& dbias);

// The course's model in double: Conv2D(relu) -> MaxPooling2D -> Flatten ->
// Dense(relu) -> Dense -> softmax with categorical cross-entropy from the
// logits (the model's loss), on a batch of conv.n images.
struct DoubleModel {
  Conv2DDims conv;
  std::size_t pool = 2, hidden = 0, classes = 0;
  // In the order of Sequential::named_parameters(): conv2d.kernel, conv2d.bias,
  // dense.kernel, dense.bias, dense_1.kernel, dense_1.bias.
  std::array<std::vector<double>, 6> w;
  // A planted bug, to see what a broken gradient looks like: the layer named
  // here ("conv2d", "dense" or "dense_1") gives its kernel and bias gradients
  // with the wrong sign. Empty: no bug.
  std::string broken;

  struct Pass {
    ConvReluPool conv;
    std::vector<double> hidden_z, hidden_a, logits, p;
  };
  // The weights of a float model of that architecture, for a batch x of
  // shape (N, H, W, C_in).
  static DoubleModel of(Sequential& model, const Shape& x);
  std::size_t flat() const;  // the Flatten width: 5408 for the course's model
  Pass forward(std::span<const double> x) const;
  // The layers after the pooling, on pass.conv.pooled (fills the rest of pass).
  void forward_dense(Pass& pass) const;
  double loss(std::span<const double> x, std::span<const double> y) const;
  // The loss from pass.conv.pooled on: for a step in a Dense weight, the
  // convolution's output stays the same and need not be recomputed.
  double loss_from_pooled(Pass& pass, std::span<const double> y) const;
  // d loss / d w, in the order of w.
  std::array<std::vector<double>, 6> gradients(std::span<const double> x, std::span<const double> y) const;
};

// The whole model's check: for each weight tensor, the analytic gradient of
// the double model against central differences with step eps, on every
// entry, except the (5408, 100) Dense kernel, of which `dense_samples`
// entries drawn from `seed` are checked.
struct TensorGradientCheck {
  std::string name;                   // "conv2d.kernel", ...
  std::vector<std::size_t> which;     // the entries checked (empty: all)
  std::vector<double> analytic;       // the backward pass's gradient there
  std::vector<double> numeric;        // central differences there
  std::size_t checked() const { return numeric.size(); }
  // The largest |analytic - numeric| / max(|analytic|, |numeric|) over the
  // entries where that denominator is above `floor` (below it, both are
  // rounding noise of a zero gradient).
  double max_relative_error(double floor = 1e-8) const;
  double max_abs_error() const;
};
// How far the model's units are from a kink on a batch: the smallest
// |pre-activation| of the convolution and of Dense(100), and the smallest gap
// between a pooling window's maximum and its runner-up. A central difference
// is exact (up to rounding) only where no step of h crosses a kink.
struct KinkMargins {
  double conv = 0, pool_gap = 0, hidden = 0;
  // A step of h in a conv weight moves a conv unit by at most h (the pixels
  // are in [0, 1]), so 4h leaves room; it moves a Dense(100) unit through
  // many pooled values at once: 400h leaves room for that.
  bool clear(double h) const { return conv > 4 * h && pool_gap > 4 * h && hidden > 400 * h; }
};
KinkMargins kink_margins(Sequential& model, const Tensor& x);

struct ModelGradientCheck {
  double eps = 0;
  double loss = 0;
  KinkMargins margins;
  std::vector<TensorGradientCheck> tensors;
};
ModelGradientCheck check_model_gradients(Sequential& model, const Tensor& x, const Tensor& y, double eps,
                                         std::size_t dense_samples, std::uint64_t seed,
                                         const std::string& broken = "");

}  // namespace nn
